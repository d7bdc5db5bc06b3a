//! GPU admission and assignment, pure: which GPU of an inventory each version of
//! a GPU machine class gets, and which CUDA base a `-cuda` runtime is built on.
//!
//! Each version on `small-gpu` or `large-gpu` gets one GPU with at least its
//! class's memory, by UUID. A GPU belongs to one version unless every version
//! on it allows sharing (`share_gpu: true`), and then their needs add up to at
//! most its memory. Assignment is greedy in `service@version` order, each taking
//! the smallest GPU that still fits, so an unchanged file keeps its assignment
//! and adding a service does not move those sorted before it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One GPU of the host, as NVML says it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_total: u64,
    /// Free now (for `doctor`; admission goes by the total).
    #[serde(default)]
    pub memory_free: u64,
}

/// The GPUs of the host, or why there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInventory {
    pub gpus: Vec<Gpu>,
    /// Why no GPU is usable, when `gpus` is empty (no NVML library, no driver, ...).
    pub problem: Option<String>,
}

/// One version that needs a GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuRequest {
    /// `service@version`.
    pub id: String,
    /// The machine class's name, for messages.
    pub class: String,
    /// The least memory the GPU must have.
    pub memory: u64,
    pub share: bool,
}

/// Why a request cannot be placed: the request and what the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaced {
    pub request: GpuRequest,
    pub host: String,
}

/// `service@version` -> GPU UUID, or every request that does not fit.
pub fn assign(
    requests: &[GpuRequest],
    inventory: &GpuInventory,
) -> Result<BTreeMap<String, String>, Vec<Unplaced>> {
    let mut sorted: Vec<&GpuRequest> = requests.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    // GPU index -> (memory promised, every holder shares)
    let mut used: BTreeMap<u32, (u64, bool)> = BTreeMap::new();
    let mut by_size: Vec<&Gpu> = inventory.gpus.iter().collect();
    by_size.sort_by_key(|g| (g.memory_total, g.index));
    let mut out = BTreeMap::new();
    let mut unplaced = Vec::new();
    for r in sorted {
        let fits = by_size.iter().find(|g| match used.get(&g.index) {
            None => g.memory_total >= r.memory,
            Some((promised, shared)) => r.share && *shared && g.memory_total >= promised + r.memory,
        });
        match fits {
            Some(g) => {
                let e = used.entry(g.index).or_insert((0, true));
                e.0 += r.memory;
                e.1 &= r.share;
                out.insert(r.id.clone(), g.uuid.clone());
            }
            None => unplaced.push(Unplaced {
                request: r.clone(),
                host: describe(inventory, &used),
            }),
        }
    }
    if unplaced.is_empty() {
        Ok(out)
    } else {
        Err(unplaced)
    }
}

/// What the host has, in words, for a refusal.
fn describe(inventory: &GpuInventory, used: &BTreeMap<u32, (u64, bool)>) -> String {
    if let Some(why) = &inventory.problem {
        return format!("this host has no usable GPU ({why})");
    }
    if inventory.gpus.is_empty() {
        return "this host has no GPU".to_string();
    }
    let seen: Vec<String> = inventory
        .gpus
        .iter()
        .map(|g| {
            let taken = match used.get(&g.index) {
                None => String::new(),
                Some((m, true)) => format!(", {} GiB promised to sharing services", m >> 30),
                Some((_, false)) => ", taken by another service".to_string(),
            };
            format!(
                "GPU {} {} with {} MiB{taken}",
                g.index,
                g.name,
                g.memory_total >> 20
            )
        })
        .collect();
    format!("this host has {}", seen.join("; "))
}

/// The CUDA versions berth has bases for, newest first (baseimages/python-cuda).
pub const CUDA_BASES: [(u32, u32); 5] = [(12, 8), (12, 6), (12, 4), (12, 2), (11, 8)];

/// The CUDA base for a `-cuda` runtime: the newest not newer than what the
/// driver supports. Without a driver (no NVML: a build host, or a CPU-only
/// run), the newest base, said so in `why`. A driver older than every base is
/// an error naming both.
/// No CUDA base berth has runs on this driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the NVIDIA driver supports CUDA {}.{}, older than every CUDA base berth has (the oldest is {}.{})", driver.0, driver.1, oldest.0, oldest.1)]
pub struct CudaTooOld {
    pub driver: (u32, u32),
    pub oldest: (u32, u32),
}

pub fn cuda_base(driver_cuda: Option<(u32, u32)>) -> Result<((u32, u32), String), CudaTooOld> {
    match driver_cuda {
        None => Ok((
            CUDA_BASES[0],
            "no NVIDIA driver here: the newest base, which runs on CPU too".to_string(),
        )),
        Some(d) => CUDA_BASES
            .iter()
            .find(|b| **b <= d)
            .map(|b| (*b, format!("the driver supports CUDA {}.{}", d.0, d.1)))
            .ok_or(CudaTooOld {
                driver: d,
                oldest: CUDA_BASES[CUDA_BASES.len() - 1],
            }),
    }
}

/// `12.4` -> (12, 4), as NVML's `major.minor` reads.
pub fn parse_cuda(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
