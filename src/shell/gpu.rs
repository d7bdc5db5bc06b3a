//! GPUs, through NVML. A missing library or driver means "no usable GPU", with the
//! reason, never a crash: most hosts have none.

use nvml_wrapper::Nvml;

use crate::core::desired::{Gpu, GpuInventory};

/// What `doctor` prints about the driver, beside the inventory.
#[derive(Debug, Clone, Default)]
pub struct Driver {
    pub version: String,
    /// The newest CUDA version the driver supports, as `major.minor`.
    pub cuda: String,
}

/// The host's GPUs, or why there are none.
pub fn inventory() -> (GpuInventory, Option<Driver>) {
    let nvml = match Nvml::init() {
        Ok(n) => n,
        Err(e) => {
            let why = match e {
                nvml_wrapper::error::NvmlError::LibloadingError(_) => {
                    "the NVML library libnvidia-ml.so is not installed, so no NVIDIA driver is usable".to_string()
                }
                nvml_wrapper::error::NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".to_string(),
                nvml_wrapper::error::NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".to_string(),
                other => format!("NVML failed to start: {other}"),
            };
            return (
                GpuInventory {
                    gpus: Vec::new(),
                    problem: Some(why),
                },
                None,
            );
        }
    };
    let driver = Driver {
        version: nvml.sys_driver_version().unwrap_or_default(),
        cuda: nvml
            .sys_cuda_driver_version()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10))
            .unwrap_or_default(),
    };
    let count = match nvml.device_count() {
        Ok(c) => c,
        Err(e) => {
            return (
                GpuInventory {
                    gpus: Vec::new(),
                    problem: Some(format!("NVML cannot count GPUs: {e}")),
                },
                Some(driver),
            )
        }
    };
    let mut gpus = Vec::new();
    for index in 0..count {
        let Ok(d) = nvml.device_by_index(index) else {
            continue;
        };
        gpus.push(Gpu {
            index,
            uuid: d.uuid().unwrap_or_default(),
            name: d.name().unwrap_or_default(),
            memory_total: d.memory_info().map(|m| m.total).unwrap_or(0),
            memory_free: d.memory_info().map(|m| m.free).unwrap_or(0),
        });
    }
    let problem = gpus.is_empty().then(|| "NVML reports no GPU".to_string());
    (GpuInventory { gpus, problem }, Some(driver))
}
