//! Where a version runs on a swarm, from its machine class and what the
//! nodes offer: reservations, the CPU limit a node accepts, class
//! constraints, GPUs as a generic resource, and the node that holds its keeps.

use serde::{Deserialize, Serialize};

use super::diag::Diagnostic;
use super::hash::ContainerConfig;
use super::spec::{Machine, Version};

/// What a swarm's nodes offer, for placement.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmFacts {
    /// The CPUs of the largest node, in billionths: a node refuses a task
    /// whose CPU limit is above its own CPUs.
    pub max_nano_cpus: i64,
    /// How many nodes advertise the generic resource `NVIDIA-GPU`.
    pub gpu_nodes: usize,
    /// How many nodes there are.
    pub nodes: usize,
    /// The ID of the manager berth talks to, where keeps' volumes are made.
    pub this_node: String,
}

/// Swarm placement from the machine class: a quarter of the class's memory
/// reserved on the node (services idle far below their limit; a node is
/// filled at most four times over, as a scheduler with requests below limits
/// does; CPU is shared, and held to the class by the limit), and the CPU limit
/// held to the largest node's CPUs, since a node refuses a task whose limit is
/// above its own (a 4-CPU class on 2-CPU nodes). A node labelled
/// `berth.class=<class>` takes that class and the smaller ones of its kind, an
/// unlabelled node any class it has the resources for; a GPU class reserves
/// one `NVIDIA-GPU`, which some node must advertise.
pub(crate) fn place(
    config: &mut ContainerConfig,
    v: &Version,
    swarm: &SwarmFacts,
) -> Result<(), Vec<Diagnostic>> {
    config.placement.reserve_memory = v.machine.memory_bytes() / RESERVE_SHARE;
    if swarm.max_nano_cpus > 0 && config.nano_cpus > swarm.max_nano_cpus {
        config.nano_cpus = swarm.max_nano_cpus;
    }
    config.placement.constraints = smaller_classes(v.machine)
        .iter()
        .map(|m| format!("node.labels.{LABEL_CLASS}!={}", m.name()))
        .collect();
    // A keep is a volume on the manager berth made it through: the version
    // runs there, so it finds its data again.
    if !v.keeps.is_empty() {
        config
            .placement
            .constraints
            .push(format!("node.id=={}", swarm.this_node));
    }
    if v.machine.gpu_memory_bytes().is_some() {
        if swarm.gpu_nodes == 0 {
            return Err(vec![Diagnostic::new("D006",
                Some(v.pos),
                format!(
                    "{}: machine class `{}` needs a node that advertises the generic resource {GPU_RESOURCE}; none of the swarm's {} node(s) does",
                    v.id(),
                    v.machine.name(),
                    swarm.nodes
                ),
                format!("advertise the GPU on its node (`\"node-generic-resources\": [\"{GPU_RESOURCE}=GPU-<uuid>\"]` in that daemon's daemon.json, with the NVIDIA runtime as its default), or choose a CPU class (small, medium, large)"),
            )]);
        }
        config.placement.reserve_gpus = 1;
    }
    Ok(())
}

/// The class memory is reserved on the node at one part in this many.
pub const RESERVE_SHARE: i64 = 4;

/// The node label that names the classes a node is for.
pub const LABEL_CLASS: &str = "berth.class";
/// The generic resource a swarm node advertises its GPUs as.
pub const GPU_RESOURCE: &str = "NVIDIA-GPU";

/// The classes of the same kind (CPU, GPU) below `m`, whose nodes it avoids.
fn smaller_classes(m: Machine) -> &'static [Machine] {
    match m {
        Machine::Small | Machine::SmallGpu => &[],
        Machine::Medium => &[Machine::Small],
        Machine::Large => &[Machine::Small, Machine::Medium],
        Machine::LargeGpu => &[Machine::SmallGpu],
    }
}
