//! `berth rollback`'s decision: which version to make active again.

/// Why no rollback target can be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackRefusal {
    pub why: String,
    pub help: String,
}

/// The version to roll `service` back to: `to` when it is declared, else the
/// newest version in `history` (oldest first) that is not `current` and is still
/// declared. Refuses a version that is already active.
pub fn target(
    service: &str,
    declared: &[String],
    current: &str,
    history: &[String],
    to: Option<&str>,
) -> Result<String, RollbackRefusal> {
    let target = match to {
        Some(v) if declared.iter().any(|d| d == v) => v.to_string(),
        Some(v) => {
            return Err(RollbackRefusal {
                why: format!("`{service}` declares no version {v}"),
                help: format!("pick one of {}", declared.join(", ")),
            })
        }
        None => history
            .iter()
            .rev()
            .find(|v| *v != current && declared.contains(v))
            .cloned()
            .ok_or_else(|| RollbackRefusal {
                why: format!(
                    "no version of `{service}` other than {current} was active before and is still declared"
                ),
                help: format!(
                    "name one with `berth rollback {service} --to VERSION` ({})",
                    declared.join(", ")
                ),
            })?,
    };
    Ok(target)
}
