//! What the file's engine decides: `engine`, `registry`, `replicas`, and what
//! a swarm cannot run yet, each refused at its place, never half-done.

use super::validate::{pick, Validator};
use super::*;

impl Validator {
    /// Reads `engine` (before the services: `replicas` depends on it) and
    /// returns the `registry`, which only a swarm takes.
    pub(super) fn engine_and_registry(&mut self, raw: &RawFile) -> Option<String> {
        if let Some(e) = &raw.engine {
            match parse_named(&EngineKind::ALL, EngineKind::name, &e.value) {
                Some(kind) => self.engine = kind,
                None => self.err(
                    Pos::from(e.referenced),
                    format!("unknown engine `{}`", e.value),
                    format!(
                        "use one of {}",
                        list_names(&EngineKind::ALL, EngineKind::name)
                    ),
                ),
            }
        }
        let r = raw.registry.as_ref()?;
        let at = Pos::from(r.referenced);
        if self.engine != EngineKind::Swarm {
            self.err(
                at,
                "`registry` is for `engine: swarm` (one engine builds and runs its own images)",
                "remove `registry`, or add `engine: swarm`",
            );
            return None;
        }
        let ok = r.value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            self.err(
                at,
                format!("registry `{}` is not HOST:PORT", r.value),
                "write the registry's host and port, e.g. `registry: 10.231.0.1:5000`",
            );
            return None;
        }
        Some(r.value.clone())
    }

    /// A version's `replicas`: 1 to 100 on a swarm, only 1 on one engine.
    pub(super) fn replicas(&mut self, id: &str, s: &RawService, v: &RawVersion) -> u32 {
        match pick(&v.replicas, &s.replicas) {
            None => 1,
            Some(r) if self.engine != EngineKind::Swarm && r.value != 1 => {
                self.err(
                    Pos::from(r.referenced),
                    format!("{id}: `replicas: {}` needs `engine: swarm`: one engine runs one container per version", r.value),
                    "remove `replicas`, or add `engine: swarm` at the top and point DOCKER_HOST at a swarm manager",
                );
                1
            }
            Some(r) if r.value > 100 => {
                self.err(
                    Pos::from(r.referenced),
                    format!("{id}: `replicas: {}` is more than 100", r.value),
                    "use at most 100 replicas per version",
                );
                1
            }
            Some(r) => r.value,
        }
    }

    /// On a swarm, what it cannot run yet: secrets must become Swarm secrets
    /// (never environment in a service spec), keeps volumes pinned to a node;
    /// and a package's image must be pushed to a `registry` the nodes pull from.
    pub(super) fn swarm_limits(&mut self, services: &[Service], registry: Option<&str>) {
        if self.engine != EngineKind::Swarm {
            return;
        }
        for v in services.iter().flat_map(|s| &s.versions) {
            if matches!(v.source, Source::Package(_)) && registry.is_none() {
                self.err(
                    v.pos,
                    format!("{}: building from a `package` on `engine: swarm` needs a `registry`", v.id()),
                    "add `registry: HOST:PORT` at the top: berth pushes the image there, so that every node can pull it (scripts/swarm-lab shows one from Debian's docker-registry package)",
                );
            }
            if !v.keeps.is_empty() && v.replicas > 1 {
                self.err(
                    v.pos,
                    format!("{}: `keeps` with `replicas: {}`: a keep is one volume on one node, written by one task", v.id(), v.replicas),
                    "run one replica of a version that keeps data, or keep the data in a database the replicas share",
                );
            }
            let unsupported = [
                (!v.assets.is_empty(), "`assets`", "leave them out for now"),
                (
                    v.publish.is_some(),
                    "`publish`",
                    "leave it out: on a swarm the gateway reaches the tasks",
                ),
                (
                    v.job,
                    "`job`",
                    "run jobs on one engine (`engine: docker`) for now",
                ),
            ];
            for (used, what, help) in unsupported {
                if used {
                    self.err(
                        v.pos,
                        format!("{}: {what} is not supported on `engine: swarm` yet", v.id()),
                        help,
                    );
                }
            }
        }
    }
}
