//! The GPU path: WGSL kernels run through wgpu on Vulkan, Metal, DX12 or a software adapter.

mod context;
pub(crate) mod model;
mod plan;
mod projection;
mod rnn;
pub mod shaders;

pub use context::{AdapterSummary, GpuContext, GpuOptions, StepStrategy};
pub use rnn::GpuRnn;
