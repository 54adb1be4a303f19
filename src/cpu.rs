//! The CPU reference path on ndarray: the same semantics as the GPU path, step by step.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis, s};

use crate::error::Result;
use crate::layer::{Padding, RnnForward, RnnOutput, SimpleRnn};

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
        self.forward_padded(input, initial_state, Padding::None)
    }

    /// [`CpuRnn::forward`] over padded sequences: a Keras mask or per-sequence lengths.
    ///
    /// # Errors
    /// As [`SimpleRnn::check_padded_input`].
    pub fn forward_padded(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        let layer = &self.layer;
        layer.check_padded_input(&input, initial_state.as_ref(), &padding)?;
        let (n, t, d) = input.dim();
        let m = layer.units();
        let config = layer.config();
        let schedule = layer.schedule(t, padding);

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
        let mut real = vec![true; n];

        for step in 0..t {
            for (b, is_real) in real.iter_mut().enumerate() {
                let time = schedule.input_time(b, step);
                *is_real = time.is_some();
                match time {
                    Some(time) => next.row_mut(b).assign(&projected.slice(s![b, time, ..])),
                    None => next.row_mut(b).fill(0.0),
                }
            }
            general_mat_mul(1.0, &h, layer.recurrent_kernel(), 1.0, &mut next);
            for (b, mut row) in next.axis_iter_mut(Axis(0)).enumerate() {
                if !real[b] {
                    // A padded step keeps the state.
                    row.assign(&h.row(b));
                    continue;
                }
                let row = row
                    .as_slice_mut()
                    .expect("rows of a standard array are contiguous");
                if let Some(clip) = config.clip {
                    row.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
                }
                config.activation.apply_row(row);
            }
            std::mem::swap(&mut h, &mut next);
            if let Some(seq) = sequences.as_mut() {
                let carried = schedule.padded_output_is_state();
                for b in (0..n).filter(|b| real[*b] || carried) {
                    seq.slice_mut(s![b, schedule.output_position(b, step), ..])
                        .assign(&h.row(b));
                }
            }
        }
        Ok(schedule.finish(sequences, h))
    }
}

impl RnnForward for CpuRnn {
    fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    fn forward_padded(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        CpuRnn::forward_padded(self, input, initial_state, padding)
    }

    fn backend_name(&self) -> &'static str {
        "cpu"
    }
}
