//! The role a container plays for its service version, read from and written into
//! its name: `<project>-<service>-<version>` is the canonical one; a replace starts
//! its successor as `-next-<hash12>`, moves the predecessor aside as `-old-<id12>`,
//! and keeps one that failed its health gate as `-failed-<id12>`. Every place that
//! makes or reads such a name goes through here.

use std::fmt;

use super::desired::container_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContainerRole {
    /// Under the version's own name: what serves.
    Canonical,
    /// A successor on probation while its health gate runs.
    Next,
    /// A predecessor moved aside while its successor takes over.
    Old,
    /// Kept stopped for inspection after failing its health gate.
    Failed,
}

impl ContainerRole {
    pub const ALL: [ContainerRole; 4] = [
        ContainerRole::Canonical,
        ContainerRole::Next,
        ContainerRole::Old,
        ContainerRole::Failed,
    ];

    /// The infix a temporary role puts after the canonical name.
    fn infix(self) -> Option<&'static str> {
        match self {
            ContainerRole::Canonical => None,
            ContainerRole::Next => Some("-next-"),
            ContainerRole::Old => Some("-old-"),
            ContainerRole::Failed => Some("-failed-"),
        }
    }

    /// The name of a container in this role: `canonical` itself, or
    /// `canonical-<role>-<tag>` (tag: a hash or an ID, shortened to 12).
    pub fn name(self, canonical: &str, tag: &str) -> String {
        match self.infix() {
            None => canonical.to_string(),
            Some(infix) => format!("{canonical}{infix}{}", super::hash::short(tag)),
        }
    }

    /// The role a container named `name` plays for the version whose canonical
    /// name is `canonical`; `None` when the name is not one berth makes for it.
    pub fn of(name: &str, canonical: &str) -> Option<ContainerRole> {
        let rest = name.strip_prefix(canonical)?;
        if rest.is_empty() {
            return Some(ContainerRole::Canonical);
        }
        ContainerRole::ALL.into_iter().find(|r| {
            r.infix()
                .and_then(|i| rest.strip_prefix(i))
                .is_some_and(|tag| !tag.is_empty() && !tag.contains('-'))
        })
    }

    /// The canonical names `name` may play a role for: itself, and the name
    /// before each role's infix that a valid tag follows. [`ContainerRole::of`]
    /// (`name`, `canonical`) is `Some` only for these.
    pub fn canonicals(name: &str) -> impl Iterator<Item = &str> {
        let roles = ContainerRole::ALL.into_iter().filter_map(move |r| {
            let i = name.rfind(r.infix()?)?;
            let tag = &name[i + r.infix()?.len()..];
            (!tag.is_empty() && !tag.contains('-')).then(|| &name[..i])
        });
        std::iter::once(name).chain(roles)
    }

    /// The role of an owned container from its name and its service/version labels.
    pub fn of_labelled(
        name: &str,
        project: &str,
        service: &str,
        version: &str,
    ) -> Option<ContainerRole> {
        ContainerRole::of(name, &container_name(project, service, version))
    }

    /// Whether a gateway may route to a running container in this role: the
    /// canonical one, and a predecessor while the renames of a replace happen.
    pub fn may_serve(self) -> bool {
        matches!(self, ContainerRole::Canonical | ContainerRole::Old)
    }
}

impl fmt::Display for ContainerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerRole::Canonical => "canonical",
            ContainerRole::Next => "next",
            ContainerRole::Old => "old",
            ContainerRole::Failed => "failed",
        })
    }
}
