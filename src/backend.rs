//! Choosing where a layer runs, at run time.

use crate::cpu::CpuRnn;
use crate::error::Result;
use crate::gpu::{GpuContext, GpuOptions, GpuRnn};
use crate::layer::{RnnForward, SimpleRnn};

/// Where layers run: the CPU reference path or a GPU context (shared by every layer built on it).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// [`CpuRnn`], on ndarray.
    Cpu,
    /// [`GpuRnn`] on this context's device.
    Gpu(GpuContext),
}

impl Backend {
    /// A GPU backend on the best adapter ([`GpuContext::chosen_adapter`]), a software one
    /// (lavapipe, WARP, SwiftShader) too when it is the only one.
    ///
    /// # Errors
    /// As [`GpuContext::new`]: [`crate::RnnError::NoAdapter`] when there is no adapter.
    pub fn gpu() -> Result<Backend> {
        Ok(Backend::Gpu(GpuContext::new_blocking(
            GpuOptions::default(),
        )?))
    }

    /// The fast backend for this machine: a hardware GPU when there is one, else the CPU, with
    /// a one-line note saying why it is the CPU. A software adapter (device type
    /// [`wgpu::DeviceType::Cpu`]: lavapipe, WARP, SwiftShader) runs the same work 50-100 times
    /// slower than the CPU path on the same cores, so `auto` takes it only when
    /// [`crate::ADAPTER_NAME_VARIABLE`] names it; [`Backend::gpu`] takes it as it is.
    pub fn auto() -> (Backend, Option<String>) {
        let options = GpuOptions::default();
        let named = crate::gpu::adapter_name_from_env().is_some();
        let adapter = GpuContext::chosen_adapter(&options);
        let adapter = adapter
            .as_ref()
            .map(|info| (info.name.as_str(), info.device_type));
        if let Err(note) = auto_takes(adapter, named) {
            return (Backend::Cpu, Some(note));
        }
        match GpuContext::new_blocking(options) {
            Ok(ctx) => (Backend::Gpu(ctx), None),
            Err(e) => (Backend::Cpu, Some(format!("running on the CPU: {e}"))),
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

/// Whether [`Backend::auto`] runs on `adapter`, the name and type of the one a context would
/// open (`named` when the user named it): `Err` with the note saying why the CPU runs instead.
fn auto_takes(
    adapter: std::result::Result<(&str, wgpu::DeviceType), &crate::RnnError>,
    named: bool,
) -> std::result::Result<(), String> {
    match adapter {
        Err(e) => Err(format!("running on the CPU: {e}")),
        Ok((name, wgpu::DeviceType::Cpu)) if !named => Err(format!(
            "running on the CPU: the only GPU adapter, {name}, is a software one, slower than \
             the CPU path (--backend gpu or {}=NAME runs on it anyway)",
            crate::ADAPTER_NAME_VARIABLE
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAVAPIPE: &str = "llvmpipe (LLVM 15.0.6, 256 bits)";

    #[test]
    fn auto_runs_the_cpu_path_when_the_only_adapter_is_software() {
        let software = (LAVAPIPE, wgpu::DeviceType::Cpu);
        let note = auto_takes(Ok(software), false).unwrap_err();
        assert!(
            note.contains("llvmpipe") && note.contains("software"),
            "{note}"
        );
        assert!(!note.contains('\n'), "one line: {note}");
        // Named by the user, it is used.
        assert_eq!(auto_takes(Ok(software), true), Ok(()));
    }

    #[test]
    fn auto_takes_any_hardware_adapter() {
        for kind in [
            wgpu::DeviceType::DiscreteGpu,
            wgpu::DeviceType::IntegratedGpu,
            wgpu::DeviceType::VirtualGpu,
            wgpu::DeviceType::Other,
        ] {
            assert_eq!(auto_takes(Ok((LAVAPIPE, kind)), false), Ok(()));
        }
    }

    #[test]
    fn auto_without_an_adapter_says_why() {
        let e = crate::RnnError::NoAdapter("none found".into());
        assert!(
            auto_takes(Err(&e), false)
                .unwrap_err()
                .contains("none found")
        );
    }
}
