//! The GPU path: WGSL kernels run through wgpu on Vulkan, Metal, DX12 or a software adapter.

mod auto;
mod context;
#[cfg(feature = "keras")]
pub(crate) mod model;
#[cfg(feature = "keras")]
mod model_layers;
#[cfg(feature = "keras")]
mod model_plan;
mod plan;
mod projection;
mod rnn;
pub mod shaders;

pub(crate) use context::adapter_name_from_env;
pub use context::{ADAPTER_NAME_VARIABLE, AdapterSummary, GpuContext, GpuOptions, StepStrategy};
pub use rnn::GpuRnn;
