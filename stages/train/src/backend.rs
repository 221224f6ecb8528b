//! Run-time device dispatch: one generic function, instantiated per compiled backend.

use burn::tensor::backend::AutodiffBackend;

use crate::error::TrainError;

/// The CPU backend `"cpu"` maps to: Flex. Measured on the 2-core dev machine (busy with
/// other builds, so ranges): training examples/s, batch 16 — demo-profile encoder
/// (h64, 1 layer) on Spider: flex 630-960 vs ndarray 430-570; Model 4 (4018 rule columns):
/// flex 76 vs ndarray 35; seq-32 bench, h256 4 layers: flex 41-42 vs ndarray 36-37;
/// MiniLM-sized: flex 11-14 vs ndarray 9-10. Both are bitwise reproducible run to run.
/// `"cpu:ndarray"` and `"cpu:flex"` pick one explicitly.
pub const DEFAULT_CPU: CpuKind = CpuKind::Flex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuKind {
    NdArray,
    Flex,
}

/// A parsed `[train] device` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu(CpuKind),
    Cuda(usize),
}

/// Parse `"cpu"`, `"cpu:ndarray"`, `"cpu:flex"` or `"cuda:N"`.
pub fn parse_device(s: &str) -> Result<Device, TrainError> {
    let bad = || TrainError::BadDevice {
        given: s.to_string(),
    };
    match s.trim() {
        "cpu" => Ok(Device::Cpu(DEFAULT_CPU)),
        "cpu:ndarray" => Ok(Device::Cpu(CpuKind::NdArray)),
        "cpu:flex" => Ok(Device::Cpu(CpuKind::Flex)),
        "cuda" => Ok(Device::Cuda(0)),
        other => {
            let n = other.strip_prefix("cuda:").ok_or_else(bad)?;
            n.parse::<usize>().map(Device::Cuda).map_err(|_| bad())
        }
    }
}

/// Whether `device` asks for the native CPU path ([`crate::native`]): plain `"cpu"` does,
/// for the work that has one (the encode stage); an explicit `"cpu:flex"` or
/// `"cpu:ndarray"` keeps burn on that backend.
pub(crate) fn native_cpu(device: &str) -> Result<bool, TrainError> {
    parse_device(device)?;
    Ok(device.trim() == "cpu")
}

/// Work that runs on any autodiff backend.
pub(crate) trait BackendTask {
    type Out;
    fn run<B: AutodiffBackend>(self, device: B::Device) -> Self::Out;
}

/// Run `task` on the backend `device` names.
pub(crate) fn dispatch<T: BackendTask>(device: &str, task: T) -> Result<T::Out, TrainError> {
    use burn::backend::Autodiff;
    match parse_device(device)? {
        Device::Cpu(CpuKind::NdArray) => {
            use burn::backend::ndarray::{NdArray, NdArrayDevice};
            Ok(task.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu))
        }
        Device::Cpu(CpuKind::Flex) => {
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
