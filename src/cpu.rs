//! The CPU reference path on ndarray: the same semantics as the GPU path, step by step.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, s};

use crate::error::Result;
use crate::layer::{RnnForward, RnnOutput, SimpleRnn};

/// Runs a [`SimpleRnn`] on the CPU with ndarray. It cross-checks the GPU path and is the fallback
/// when no GPU adapter exists.
#[derive(Clone, Debug)]
pub struct CpuRnn {
    layer: SimpleRnn,
}

impl CpuRnn {
    /// Wraps a layer for the CPU.
    pub fn new(layer: SimpleRnn) -> Self {
        CpuRnn { layer }
    }

    /// The layer this runs.
    pub fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    /// Runs the layer on `input` (*N* × *T* × *D*) from `initial_state` (*N* × *M*, zeros when
    /// `None`): one GEMM projects all *N*·*T* rows, then one GEMM per step adds `h · recurrent_kernel`.
    ///
    /// # Errors
    /// As [`SimpleRnn::check_input`]: zero *N* or *T*, an input whose last axis is not *D*, an
    /// initial state that is not *N* × *M*.
    pub fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
    ) -> Result<RnnOutput> {
        let layer = &self.layer;
        layer.check_input(&input, initial_state.as_ref())?;
        let (n, t, d) = input.dim();
        let m = layer.units();
        let config = layer.config();

        let input = input.as_standard_layout();
        let rows = input
            .view()
            .into_shape_with_order((n * t, d))
            .expect("standard layout reshapes");
        let mut projected = rows.dot(layer.kernel());
        if let Some(bias) = layer.bias() {
            projected += bias;
        }
        let projected = projected
            .into_shape_with_order((n, t, m))
            .expect("N·T × M reshapes to N × T × M");

        let mut h = match initial_state {
            Some(h0) => h0.as_standard_layout().into_owned(),
            None => Array2::zeros((n, m)),
        };
        let mut next = Array2::<f32>::zeros((n, m));
        let mut sequences = config.return_sequences.then(|| Array3::zeros((n, t, m)));

        for step in 0..t {
            next.assign(&projected.slice(s![.., layer.input_step(step, t), ..]));
            general_mat_mul(1.0, &h, layer.recurrent_kernel(), 1.0, &mut next);
            for mut row in next.axis_iter_mut(Axis(0)) {
                config.activation.apply_row(
                    row.as_slice_mut()
                        .expect("rows of a standard array are contiguous"),
                );
            }
            std::mem::swap(&mut h, &mut next);
            if let Some(seq) = sequences.as_mut() {
                seq.slice_mut(s![.., step, ..]).assign(&h);
            }
        }
        Ok(RnnOutput {
            sequences,
            final_state: h,
        })
    }
}

impl RnnForward for CpuRnn {
    fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
    ) -> Result<RnnOutput> {
        CpuRnn::forward(self, input, initial_state)
    }

    fn backend_name(&self) -> &'static str {
        "cpu"
    }
}
