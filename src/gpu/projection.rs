//! A projection GEMM, `P = X · W + b` (`shaders/projection.wgsl`), cut into bounded dispatches:
//! the layers' input projections and Dense layers.

use bytemuck::{Pod, Zeroable};

use crate::gpu::context::{ContextInner, DYNAMIC_PARAMS_SIZE};
use crate::gpu::plan::{GemmDispatch, GemmKernel, ROWS_GEMM, TILED_GEMM, gemm_dispatches};

/// One dispatch's parameters (`Dims` in `shaders/projection.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Dims {
    rows: u32,
    k: u32,
    cols: u32,
    row0: u32,
    k_begin: u32,
    k_end: u32,
    accumulate: u32,
    _pad: u32,
}

const _: () = assert!(std::mem::size_of::<Dims>() as u64 == DYNAMIC_PARAMS_SIZE);

/// A `rows` × `k` × `cols` projection as the dispatches [`gemm_dispatches`] cuts it into; each
/// reads its own [`Dims`] at a dynamic offset of the uniform buffer bound at binding 4.
pub(crate) struct Projection {
    kernel: GemmKernel,
    rows: usize,
    k: usize,
    cols: usize,
    dispatches: Vec<GemmDispatch>,
}

impl Projection {
    /// The dispatches of a `rows` × `k` × `cols` projection on this device: the row-broadcast
    /// kernel on a CPU implementation of the API (lavapipe, WARP, SwiftShader run a workgroup's
    /// threads in SIMD lanes, where a value all of them read costs one load), the 64 × 64
    /// tiles staged in workgroup memory on a GPU.
    pub(crate) fn new(inner: &ContextInner, rows: usize, k: usize, cols: usize) -> Self {
        let most = u64::from(inner.limits.max_compute_workgroups_per_dimension);
        let kernel = if inner.info.device_type == wgpu::DeviceType::Cpu {
            ROWS_GEMM
        } else {
            TILED_GEMM
        };
        Projection {
            kernel,
            rows,
            k,
            cols,
            dispatches: gemm_dispatches(kernel, rows as u64, k as u64, cols as u64, most),
        }
    }

    /// How many dispatches, and so how many parameter slots the uniform buffer needs.
    pub(crate) fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }

    /// The uniform bytes: one [`Dims`] every `stride` bytes, in dispatch order.
    pub(crate) fn params_bytes(&self, stride: u64) -> Vec<u8> {
        let stride = stride as usize;
        let mut bytes = vec![0u8; self.dispatches.len() * stride];
        for (i, d) in self.dispatches.iter().enumerate() {
            let dims = Dims {
                rows: self.rows as u32,
                k: self.k as u32,
                cols: self.cols as u32,
                row0: d.row0 as u32,
                k_begin: d.k_begin as u32,
                k_end: d.k_end as u32,
                accumulate: u32::from(d.accumulate),
                _pad: 0,
            };
            bytes[i * stride..i * stride + std::mem::size_of::<Dims>()]
                .copy_from_slice(bytemuck::bytes_of(&dims));
        }
        bytes
    }

    /// Encodes every dispatch with `bind_group` (whose binding 4 is the buffer of
    /// [`Projection::params_bytes`] at `stride`), on the vec4 pipeline when *k* and the columns
    /// allow it.
    pub(crate) fn encode(
        &self,
        inner: &ContextInner,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        stride: u64,
    ) {
        let vectorized = self.k.is_multiple_of(4) && self.cols.is_multiple_of(4);
        let pipelines = if self.kernel == ROWS_GEMM {
            &inner.projection_rows
        } else {
            &inner.projection
        };
        pass.set_pipeline(&pipelines[usize::from(vectorized)]);
        let column_tiles = (self.cols as u64).div_ceil(self.kernel.tile_cols) as u32;
        for (i, d) in self.dispatches.iter().enumerate() {
            pass.set_bind_group(0, bind_group, &[(i as u64 * stride) as u32]);
            pass.dispatch_workgroups(
                column_tiles,
                d.rows.div_ceil(self.kernel.tile_rows) as u32,
                1,
            );
        }
    }
}
