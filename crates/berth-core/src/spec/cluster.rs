//! What the file's engine decides: `engine`, `registry`, `replicas`, and what
//! the engine cannot run (its `Capabilities` say), each refused at its place,
//! never half-done.

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
                    "S049",
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
        if !self.engine.capabilities().registry {
            let engines = EngineKind::offering(|c| c.registry);
            self.err(
                "S050",
                at,
                format!("`registry` is for {engines} (one engine builds and runs its own images)"),
                format!("remove `registry`, or add {engines}"),
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
                "S051",
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
            Some(r) if !self.engine.capabilities().replicas && r.value != 1 => {
                let engines = EngineKind::offering(|c| c.replicas);
                self.err("S052",
                    Pos::from(r.referenced),
                    format!("{id}: `replicas: {}` needs {engines}: one engine runs one container per version", r.value),
                    format!("remove `replicas`, or add {engines} at the top and point DOCKER_HOST at its manager"),
                );
                1
            }
            Some(r) if r.value > 100 => {
                self.err(
                    "S053",
                    Pos::from(r.referenced),
                    format!("{id}: `replicas: {}` is more than 100", r.value),
                    "use at most 100 replicas per version",
                );
                1
            }
            Some(r) => r.value,
        }
    }

    /// What the file's engine cannot run, by its capabilities: a cluster's
    /// nodes pull a package's image from a `registry`; a keep is one volume
    /// on one node; assets, host ports and jobs need an engine that has them.
    pub(super) fn engine_limits(&mut self, services: &[Service], registry: Option<&str>) {
        let caps = self.engine.capabilities();
        let engine = self.engine.name();
        for v in services.iter().flat_map(|s| &s.versions) {
            if caps.registry && matches!(v.source, Source::Package(_)) && registry.is_none() {
                self.err("S054",
                    v.pos,
                    format!("{}: building from a `package` on `engine: {engine}` needs a `registry`", v.id()),
                    "add `registry: HOST:PORT` at the top: berth pushes the image there, so that every node can pull it (scripts/swarm-lab shows one from Debian's docker-registry package)",
                );
            }
            if !v.keeps.is_empty() && v.replicas > 1 {
                self.err("S055",
                    v.pos,
                    format!("{}: `keeps` with `replicas: {}`: a keep is one volume on one node, written by one task", v.id(), v.replicas),
                    "run one replica of a version that keeps data, or keep the data in a database the replicas share",
                );
            }
            let unsupported = [
                (
                    !caps.assets && !v.assets.is_empty(),
                    "`assets`",
                    "leave them out for now".to_string(),
                ),
                (
                    !caps.host_ports && v.publish.is_some(),
                    "`publish`",
                    "leave it out: the gateway reaches the tasks".to_string(),
                ),
                (
                    !caps.jobs && v.job,
                    "`job`",
                    format!("run jobs on {} for now", EngineKind::offering(|c| c.jobs)),
                ),
            ];
            for (used, what, help) in unsupported {
                if used {
                    self.err(
                        "S056",
                        v.pos,
                        format!(
                            "{}: {what} is not supported on `engine: {engine}` yet",
                            v.id()
                        ),
                        help,
                    );
                }
            }
        }
    }
}
