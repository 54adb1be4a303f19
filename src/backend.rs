//! Choosing where a layer runs, at run time.

use crate::cpu::CpuRnn;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuOptions, GpuRnn};
use crate::layer::{RnnForward, SimpleRnn};

/// Where layers run: the CPU reference path or a GPU context (shared by every layer built on it).
#[derive(Clone, Debug)]
pub enum Backend {
    /// [`CpuRnn`], on ndarray.
    Cpu,
    /// [`GpuRnn`] on this context's device.
    Gpu(GpuContext),
}

impl Backend {
    /// A GPU backend on the best adapter, or `None` with the reason when there is none.
    pub fn gpu() -> std::result::Result<Backend, crate::RnnError> {
        Ok(Backend::Gpu(GpuContext::new_blocking(
            GpuOptions::default(),
        )?))
    }

    /// A GPU when one is found, else the CPU; the error says why there is no GPU.
    pub fn auto() -> (Backend, Option<crate::RnnError>) {
        match Backend::gpu() {
            Ok(b) => (b, None),
            Err(e) => (Backend::Cpu, Some(e)),
        }
    }

    /// Builds a layer on this backend.
    ///
    /// # Errors
    /// As [`GpuRnn::new`] on a GPU; never on the CPU.
    pub fn build(&self, layer: SimpleRnn) -> Result<Box<dyn RnnForward>> {
        Ok(match self {
            Backend::Cpu => Box::new(CpuRnn::new(layer)),
            Backend::Gpu(ctx) => Box::new(GpuRnn::new(ctx, layer)?),
        })
    }

    /// `"cpu"` or `"gpu"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Gpu(_) => "gpu",
        }
    }
}
