//! The catalog: machine classes and runtimes, with their names and limits.

#[allow(unused_imports)]
use super::*;

/// The version an unversioned service gets (`image:` without `version:`).
pub const UNVERSIONED: &str = "0.0.0";

/// The port the service contract says a service listens on.
pub const DEFAULT_PORT: u16 = 8000;

/// Where the services run: one Docker engine, or a Docker Swarm through its
/// manager.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EngineKind {
    #[default]
    Docker,
    Swarm,
}

impl EngineKind {
    pub const ALL: [EngineKind; 2] = [EngineKind::Docker, EngineKind::Swarm];

    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Docker => "docker",
            EngineKind::Swarm => "swarm",
        }
    }

    /// What this engine can do. Validation, planning and the converge path
    /// read these, never which engine it is, so a new engine is one more row.
    pub fn capabilities(self) -> Capabilities {
        match self {
            EngineKind::Docker => Capabilities {
                rolls_out: false,
                replicas: false,
                placement: false,
                registry: false,
                secrets_as_files: false,
                host_ports: true,
                health_command: false,
                host_gpus: true,
                assets: true,
                jobs: true,
                serve_network: true,
            },
            EngineKind::Swarm => Capabilities {
                rolls_out: true,
                replicas: true,
                placement: true,
                registry: true,
                secrets_as_files: true,
                host_ports: false,
                health_command: true,
                host_gpus: false,
                assets: false,
                jobs: false,
                serve_network: false,
            },
        }
    }

    /// `engine: NAME` for each engine that has `capability`, joined by "or",
    /// for the help of a file that asks what its engine lacks.
    pub fn offering(capability: fn(&Capabilities) -> bool) -> String {
        EngineKind::ALL
            .iter()
            .filter(|k| capability(&k.capabilities()))
            .map(|k| format!("`engine: {}`", k.name()))
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// What an engine can do, as data (see [`EngineKind::capabilities`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// It rolls a version out itself (start-first, health-checked, rolled
    /// back on failure): berth deploys a version, never starts one on
    /// probation and renames it.
    pub rolls_out: bool,
    /// More than one task per version (`replicas`).
    pub replicas: bool,
    /// Versions placed on the nodes of a cluster: class constraints, memory
    /// reserved, GPUs as the nodes' generic resources.
    pub placement: bool,
    /// Its nodes pull built images from a `registry`.
    pub registry: bool,
    /// Secrets reach a version as files, never in its definition.
    pub secrets_as_files: bool,
    /// A version's port is published on this host's loopback (`publish`).
    pub host_ports: bool,
    /// The engine runs a health `command` in each task.
    pub health_command: bool,
    /// This host's GPUs, handed out by berth from the NVML inventory.
    pub host_gpus: bool,
    /// `assets` mounted from this host's cache.
    pub assets: bool,
    /// `job: true` versions, run to completion.
    pub jobs: bool,
    /// A version that can be switched to (its service declares more than
    /// one) also joins the project's serve network, where a gateway
    /// on this host reaches it and no name ever moves: a switch moves the
    /// service's name on the scope networks without touching the address the
    /// gateways route to.
    pub serve_network: bool,
}

/// Machine classes: enforced container limits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Machine {
    Small,
    Medium,
    Large,
    SmallGpu,
    LargeGpu,
}

impl Machine {
    pub const ALL: [Machine; 5] = [
        Machine::Small,
        Machine::Medium,
        Machine::Large,
        Machine::SmallGpu,
        Machine::LargeGpu,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Machine::Small => "small",
            Machine::Medium => "medium",
            Machine::Large => "large",
            Machine::SmallGpu => "small-gpu",
            Machine::LargeGpu => "large-gpu",
        }
    }

    /// CPUs, in units of 10^-9 CPUs as the engine counts them.
    pub fn nano_cpus(self) -> i64 {
        let cpus = match self {
            Machine::Small => 2,
            Machine::Medium | Machine::SmallGpu => 4,
            Machine::Large => 8,
            Machine::LargeGpu => 16,
        };
        cpus * 1_000_000_000
    }

    pub fn memory_bytes(self) -> i64 {
        let gib = match self {
            Machine::Small => 4,
            Machine::Medium | Machine::SmallGpu => 8,
            Machine::Large | Machine::LargeGpu => 16,
        };
        gib << 30
    }

    /// The least GPU memory a class needs, or `None` for a CPU-only class.
    pub fn gpu_memory_bytes(self) -> Option<u64> {
        match self {
            Machine::SmallGpu => Some(4 << 30),
            Machine::LargeGpu => Some(8 << 30),
            _ => None,
        }
    }
}

/// Runtimes that berth builds images for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Runtime {
    #[serde(rename = "python3.11")]
    Python311,
    #[serde(rename = "python3.12")]
    Python312,
    #[serde(rename = "python3.13")]
    Python313,
    #[serde(rename = "python3.11-cuda")]
    Python311Cuda,
    #[serde(rename = "python3.12-cuda")]
    Python312Cuda,
    #[serde(rename = "python3.13-cuda")]
    Python313Cuda,
    #[serde(rename = "node20")]
    Node20,
    #[serde(rename = "node22")]
    Node22,
}

impl Runtime {
    pub const ALL: [Runtime; 8] = [
        Runtime::Python311,
        Runtime::Python312,
        Runtime::Python313,
        Runtime::Python311Cuda,
        Runtime::Python312Cuda,
        Runtime::Python313Cuda,
        Runtime::Node20,
        Runtime::Node22,
    ];

    /// Built on an NVIDIA CUDA base.
    pub fn is_cuda(self) -> bool {
        matches!(
            self,
            Runtime::Python311Cuda | Runtime::Python312Cuda | Runtime::Python313Cuda
        )
    }

    /// The Python version (`3.12`) of a Python runtime.
    pub fn python(self) -> Option<&'static str> {
        match self {
            Runtime::Python311 | Runtime::Python311Cuda => Some("3.11"),
            Runtime::Python312 | Runtime::Python312Cuda => Some("3.12"),
            Runtime::Python313 | Runtime::Python313Cuda => Some("3.13"),
            Runtime::Node20 | Runtime::Node22 => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Python311 => "python3.11",
            Runtime::Python312 => "python3.12",
            Runtime::Python313 => "python3.13",
            Runtime::Python311Cuda => "python3.11-cuda",
            Runtime::Python312Cuda => "python3.12-cuda",
            Runtime::Python313Cuda => "python3.13-cuda",
            Runtime::Node20 => "node20",
            Runtime::Node22 => "node22",
        }
    }
}

pub(super) fn parse_named<T: Copy>(
    all: &[T],
    name: fn(T) -> &'static str,
    text: &str,
) -> Option<T> {
    all.iter().copied().find(|v| name(*v) == text)
}

pub(super) fn list_names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
}
