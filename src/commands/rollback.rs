//! `berth rollback SERVICE [--to VERSION]`: make the version that was active
//! before (or the one named) active again, when it is still declared and runs
//! healthy. It holds until the file's `active` for that service changes.

use std::path::Path;

use crate::converge::{self, Context};
use crate::core::desired::container_name;
use crate::core::plan::Options;
use crate::core::spec::{ActiveHold, Spec};
use crate::shell::{probe, state};

use super::{apply, CommandError, Output};

pub async fn run(
    out: &Output,
    file: &Path,
    service: &str,
    to: Option<&str>,
    release: bool,
) -> Result<u8, CommandError> {
    let dir = &out.settings.state_dir;
    let spec = converge::load(&out.settings, file)?;
    let Some(svc) = spec.services.iter().find(|s| s.name == service) else {
        return Err(CommandError::ServiceFind {
            service: service.into(),
            file: file.into(),
        });
    };
    let declared: Vec<String> = svc.versions.iter().map(|v| v.version.to_string()).collect();
    let current = svc.active.to_string();
    let history = state::history(dir, &spec.project)
        .remove(service)
        .unwrap_or_default();
    let file_active = svc
        .file_active
        .clone()
        .unwrap_or_else(|| svc.active.clone());
    // `--release` is a rollback to what the file says.
    let release_to = release.then(|| file_active.to_string());
    let to = release_to.as_deref().or(to);
    let target = crate::core::rollback::target(service, &declared, &current, &history, to)
        .map_err(|r| CommandError::RollbackRefuse {
            why: r.why,
            help: r.help,
        })?;
    if target == current && (!release || !state::holds(dir, &spec.project).contains_key(service)) {
        println!("`{service}` already runs {target} as its active version: nothing to do.");
        return Ok(0);
    }
    let ctx = out.connect().await?;
    let held = apply::lock(&ctx, &spec.project, "rollback").await?;
    // Only to a version that serves now: a rollback is for when things are bad.
    let health = health_now(&ctx, &spec, service, &target).await?;
    if health != "healthy" {
        return Err(CommandError::RollbackRefuse {
            why: format!("{service}@{target} is {health}, so it cannot take over"),
            help: format!(
                "`berth status` shows why; `berth logs {service}@{target}` shows its logs"
            ),
        });
    }
    let before = state::holds(dir, &spec.project);
    let mut holds = before.clone();
    if target == file_active.to_string() {
        holds.remove(service);
    } else {
        holds.insert(
            service.to_string(),
            ActiveHold {
                version: semver::Version::parse(&target).expect("declared versions parse"),
                file_active: file_active.clone(),
            },
        );
    }
    state::write_holds(dir, &spec.project, &holds).map_err(converge::ConvergeError::from)?;
    let result = async {
        let spec = converge::load(&out.settings, file)?;
        let opts = Options {
            allow_empty: false,
            retry_failed: true,
        };
        let done = converge::converge(&ctx, &held, &spec, file, opts, None).await?;
        apply::report(&ctx, &done.plan).await
    }
    .await;
    if let Err(e) = result {
        // Nothing changes hands when the switch failed: the hold goes too.
        let _ = state::write_holds(dir, &spec.project, &before);
        return Err(e);
    }
    println!("Rolled back `{service}` to {target} (it was {current}).");
    if target != file_active.to_string() {
        println!(
            "The file still says `active: \"{file_active}\"`; berth keeps {target} active until that changes. To keep it, set `active: \"{target}\"` under `services.{service}` in {}.",
            file.display()
        );
    }
    Ok(0)
}

/// healthy | unhealthy | not published | the state of a container not running.
async fn health_now(
    ctx: &Context,
    spec: &Spec,
    service: &str,
    version: &str,
) -> Result<String, CommandError> {
    let observed = ctx.engine.observe(&spec.project).await?;
    let name = container_name(&spec.project, service, version);
    Ok(match observed.containers.iter().find(|c| c.name == name) {
        Some(c) if c.state == "running" => match c.ports.iter().find_map(|p| p.public) {
            Some(port) => probe::health(port, &c.health_check()).await.to_string(),
            None => "not published".into(),
        },
        Some(c) => c.state.clone(),
        None => "not running".into(),
    })
}
