//! Run-time device dispatch: one generic function, instantiated per compiled backend.

use burn::tensor::backend::AutodiffBackend;

use crate::error::TrainError;

/// Which CPU code runs the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuKind {
    /// `"cpu"`: the native kernels (`crate::native`) for the work that has them (the
    /// encode stage, the text-only classifier's fine-tuning), burn's Flex backend for the
    /// rest. Flex was measured against ndarray on the 2-core dev machine (busy, so ranges):
    /// training examples/s, batch 16 — demo-profile encoder (h64, 1 layer) on Spider: flex
    /// 630-960 vs ndarray 430-570; Model 4 (4018 rule columns): flex 76 vs ndarray 35;
    /// seq-32 bench, h256 4 layers: flex 41-42 vs ndarray 36-37; MiniLM-sized: flex 11-14
    /// vs ndarray 9-10. All are bitwise reproducible run to run.
    Native,
    /// `"cpu:ndarray"`: burn's ndarray backend for everything.
    NdArray,
    /// `"cpu:flex"`: burn's Flex backend for everything.
    Flex,
}

/// A parsed `[train] device` value: what the training crate runs on. It travels beside
/// the [`crate::TrainConfig`], never in it, so no cache key depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu(CpuKind),
    Cuda(usize),
}

impl Default for Device {
    fn default() -> Self {
        Device::Cpu(CpuKind::Native)
    }
}

impl Device {
    /// Whether the work runs on the native CPU kernels where it has them.
    pub(crate) fn native_cpu(self) -> bool {
        self == Device::Cpu(CpuKind::Native)
    }

    /// Batches padded to a fixed length: a GPU compiles one kernel per shape.
    pub(crate) fn static_len(self, max_len: usize) -> Option<usize> {
        matches!(self, Device::Cuda(_)).then_some(max_len)
    }
}

/// Spelt as the configuration spells it.
impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu(CpuKind::Native) => f.write_str("cpu"),
            Device::Cpu(CpuKind::NdArray) => f.write_str("cpu:ndarray"),
            Device::Cpu(CpuKind::Flex) => f.write_str("cpu:flex"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Parse `"cpu"`, `"cpu:ndarray"`, `"cpu:flex"`, `"cuda"` or `"cuda:N"`.
pub fn parse_device(s: &str) -> Result<Device, TrainError> {
    let bad = || TrainError::BadDevice {
        given: s.to_string(),
    };
    match s.trim() {
        "cpu" => Ok(Device::Cpu(CpuKind::Native)),
        "cpu:ndarray" => Ok(Device::Cpu(CpuKind::NdArray)),
        "cpu:flex" => Ok(Device::Cpu(CpuKind::Flex)),
        "cuda" => Ok(Device::Cuda(0)),
        other => {
            let n = other.strip_prefix("cuda:").ok_or_else(bad)?;
            n.parse::<usize>().map(Device::Cuda).map_err(|_| bad())
        }
    }
}

/// Work that runs on any autodiff backend.
pub(crate) trait BackendTask {
    type Out;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out;
}

/// Run `task` on the backend `device` names.
pub(crate) fn dispatch<T: BackendTask>(device: Device, task: T) -> Result<T::Out, TrainError> {
    use burn::backend::Autodiff;
    match device {
        Device::Cpu(CpuKind::NdArray) => {
            use burn::backend::ndarray::{NdArray, NdArrayDevice};
            Ok(task.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu))
        }
        Device::Cpu(CpuKind::Flex | CpuKind::Native) => {
            use burn::backend::flex::{Flex, FlexDevice};
            Ok(task.run::<Autodiff<Flex>>(FlexDevice))
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(n) => {
            use burn::backend::cuda::{Cuda, CudaDevice};
            // burn-cuda panics when no driver/GPU is present; report it as an error.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                task.run::<Autodiff<Cuda<f32, i32>>>(CudaDevice::new(n))
            }))
            .map_err(|p| {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                TrainError::Config {
                    field: "[train] device",
                    value: device.to_string(),
                    fix: format!("CUDA failed ({msg}): check the GPU index, the driver (libcuda) and nvidia-smi, or use device = \"cpu\""),
                }
            })
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => Err(TrainError::NoCuda {
            given: device.to_string(),
        }),
    }
}
