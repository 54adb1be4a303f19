//! The CPU path: the same semantics as the GPU path, on ndarray arrays with `gemm`'s SIMD
//! kernels, one core per slice of the batch.

mod gated;
mod kernels;
mod split;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, s};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::cell::Cell;
use crate::error::Result;
use crate::layer::{Padding, RnnForward, RnnOutput, Schedule, SimpleRnn, state_rows};
use kernels::{PaddedRows, matmul_acc_strided, matmul_strided, tanh_in_place};

/// Runs a [`SimpleRnn`] on the CPU, on every core. It cross-checks the GPU path and is the fallback
/// when no GPU adapter exists.
///
/// ```
/// use ndarray::{Array1, Array2, Array3};
/// use wgpu_rnn::{Activation, CpuRnn, SimpleRnn, SimpleRnnConfig};
///
/// let config = SimpleRnnConfig { activation: Activation::Relu, ..Default::default() };
/// let layer = SimpleRnn::new(
///     Array2::from_elem((3, 4), 0.1),  // kernel, D × M
///     Array2::zeros((4, 4)),           // recurrent_kernel, M × M
///     Some(Array1::from_elem(4, 0.5)), // bias, M
///     config,
/// )?;
/// let out = CpuRnn::new(layer).forward(Array3::ones((2, 5, 3)).view(), None)?;
/// // Without return_sequences: the last step's output, N × M: relu(3 · 0.1 + 0.5).
/// assert_eq!(out.output().shape(), &[2, 4]);
/// assert!(out.output().iter().all(|&v| (v - 0.8).abs() < 1e-6));
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct CpuRnn {
    layer: SimpleRnn,
    weights: Weights,
}

/// The layer's weight matrices laid out for the products ([`PaddedRows`]).
#[derive(Clone, Debug)]
struct Weights {
    kernel: PaddedRows,
    recurrent: PaddedRows,
    projection: Option<PaddedRows>,
}

impl CpuRnn {
    /// Wraps a layer for the CPU.
    pub fn new(layer: SimpleRnn) -> Self {
        let weights = Weights {
            kernel: PaddedRows::new(layer.kernel().view()),
            recurrent: PaddedRows::new(layer.recurrent_kernel().view()),
            projection: layer.projection().map(|p| PaddedRows::new(p.view())),
        };
        CpuRnn { layer, weights }
    }

    /// The layer this runs.
    pub fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    /// Runs the layer on `input` (*N* × *T* × *D*) from `initial_state` (*N* × *M*, zeros when
    /// `None`). Each core takes a slice of the batch and runs all its steps: per chunk of time one
    /// GEMM projects the slice's rows, then one GEMM per step adds `h · recurrent_kernel` in place.
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
        self.forward_states(input, initial_state, None, padding)
    }

    /// [`CpuRnn::forward_padded`] from an initial state and, for an LSTM, an initial cell state
    /// (*N* × *M*, zeros when `None`).
    ///
    /// # Errors
    /// As [`SimpleRnn::check_padded_input`] and [`SimpleRnn::check_initial_cell`].
    pub fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        initial_cell: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        self.forward_in_chunks(input, initial_state, initial_cell, padding, CHUNK_FLOATS)
    }

    /// [`CpuRnn::forward_states`] with each slice keeping at most about `chunk_floats` floats
    /// of input and projection at a time.
    fn forward_in_chunks(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        initial_cell: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
        chunk_floats: usize,
    ) -> Result<RnnOutput> {
        let layer = &self.layer;
        layer.check_padded_input(&input, initial_state.as_ref(), &padding)?;
        layer.check_initial_cell(input.dim().0, initial_cell.as_ref())?;
        let (n, t, _) = input.dim();
        let (m, width) = (layer.units(), layer.state_size());
        let schedule = layer.schedule(t, padding);
        let input = input.as_standard_layout();
        let initial_state = initial_state.map(|h| h.as_standard_layout().into_owned());
        let initial_cell = initial_cell.map(|c| c.as_standard_layout().into_owned());

        let mut sequences = layer
            .config()
            .return_sequences
            .then(|| Array3::<f32>::zeros((n, t, width)));
        let mut final_state = Array2::<f32>::zeros((n, width));
        let has_cell = layer.cell().has_cell_state();
        // Zero rows when the cell has no cell state, so that the slices below line up.
        let mut final_cell = Array2::<f32>::zeros((if has_cell { n } else { 0 }, m));

        // Sequences are independent: each core runs all the steps of its own slice of the batch,
        // so no thread waits for another between steps.
        let slices = rayon::current_num_threads().clamp(1, n);
        let rows = n.div_ceil(slices);
        let finals: Vec<ArrayViewMut2<'_, f32>> =
            final_state.axis_chunks_iter_mut(Axis(0), rows).collect();
        let mut cells: Vec<Option<ArrayViewMut2<'_, f32>>> = match has_cell {
            true => final_cell
                .axis_chunks_iter_mut(Axis(0), rows)
                .map(Some)
                .collect(),
            false => finals.iter().map(|_| None).collect(),
        };
        let seqs: Vec<Option<ArrayViewMut3<'_, f32>>> = match sequences.as_mut() {
            Some(seq) => seq.axis_chunks_iter_mut(Axis(0), rows).map(Some).collect(),
            None => finals.iter().map(|_| None).collect(),
        };
        let one_slice = finals.len() == 1;
        type Outputs<'v> = (
            ArrayViewMut2<'v, f32>,
            Option<ArrayViewMut3<'v, f32>>,
            Option<ArrayViewMut2<'v, f32>>,
        );
        let run = |(i, (mut final_state, mut sequences, mut final_cell)): (usize, Outputs<'_>)| {
            let slice = Slice {
                b0: i * rows,
                input: input.view(),
                initial_state: initial_state.as_ref().map(|h| h.view()),
                initial_cell: initial_cell.as_ref().map(|c| c.view()),
                schedule: &schedule,
                parallel_gemm: one_slice,
                chunk_floats,
            };
            // A lone sequence takes every core when its steps are large enough.
            let workers = match one_slice && n == 1 {
                true => self.split_workers(rayon::current_num_threads(), t),
                false => 1,
            };
            let outputs = (&mut final_state, &mut sequences, &mut final_cell);
            if workers > 1 && self.run_split(workers, &slice, outputs) {
                return;
            }
            match layer.cell() {
                Cell::Simple => self.run_slice(slice, final_state, sequences),
                cell => self.run_gated_slice(cell, slice, final_state, sequences, final_cell),
            }
        };
        let outputs: Vec<Outputs<'_>> = finals
            .into_iter()
            .zip(seqs)
            .zip(cells.drain(..))
            .map(|((f, s), c)| (f, s, c))
            .collect();
        if one_slice {
            outputs.into_iter().enumerate().for_each(run);
        } else {
            outputs.into_par_iter().enumerate().for_each(run);
        }
        let mut out = schedule.finish(sequences, final_state);
        out.final_cell = has_cell.then_some(final_cell);
        Ok(out)
    }

    /// The layer's bias, *G*·*M*.
    fn bias(&self) -> Option<&[f32]> {
        self.layer.bias().map(|b| b.as_slice().expect("owned"))
    }

    /// Runs every step for the batch rows `b0..b0 + final_state.nrows()`, writing their final
    /// state and (when given) their sequence output.
    fn run_slice(
        &self,
        slice: Slice<'_, '_>,
        mut final_state: ArrayViewMut2<'_, f32>,
        mut sequences: Option<ArrayViewMut3<'_, f32>>,
    ) {
        let layer = &self.layer;
        let (d, m) = (layer.input_dim(), layer.units());
        let (_, t, _) = slice.input.dim();
        let (b0, nb) = (slice.b0, final_state.nrows());
        let schedule = slice.schedule;
        let recurrent_kernel = self.weights.recurrent.strided();

        // Time is processed in chunks so that memory stays bounded for any length; within a
        // chunk, P is time-major, so step s of the slice is one contiguous nb × m block that the
        // step's GEMM updates in place and that then serves as the state.
        let chunk = (slice.chunk_floats / (nb * (d + m)).max(1)).clamp(1, t);
        let mut x = vec![0.0f32; chunk * nb * d];
        let mut p = vec![0.0f32; chunk * nb * m];
        let mut real = vec![true; chunk * nb];
        let mut h = state_rows(slice.initial_state.as_ref(), b0..b0 + nb, m);

        for s0 in (0..t).step_by(chunk) {
            let ns = chunk.min(t - s0);
            let p = &mut p[..ns * nb * m];
            let kernel = (&self.weights.kernel, self.bias());
            slice.project(kernel, (s0, ns, nb), (&mut x, &mut real), (p, m));

            for s in 0..ns {
                let (done, rest) = p.split_at_mut(s * nb * m);
                let previous: &[f32] = if s == 0 {
                    &h
                } else {
                    &done[(s - 1) * nb * m..]
                };
                let current = &mut rest[..nb * m];
                matmul_acc_strided(
                    (nb, m, m),
                    (current, m),
                    previous,
                    recurrent_kernel,
                    slice.parallel_gemm && nb * m * m >= PARALLEL_STEP_FLOPS,
                );
                for (b, row) in current.chunks_exact_mut(m).enumerate() {
                    if !real[s * nb + b] {
                        // A padded step keeps the state.
                        row.copy_from_slice(&previous[b * m..(b + 1) * m]);
                        continue;
                    }
                    simple_step_row(row, layer, 0);
                }
                if let Some(seq) = sequences.as_mut() {
                    let real = &real[s * nb..(s + 1) * nb];
                    store_step(seq, schedule, (b0, s0 + s), current, real);
                }
            }
            h.copy_from_slice(&p[(ns - 1) * nb * m..]);
        }
        final_state.iter_mut().zip(&h).for_each(|(o, v)| *o = *v);
    }
}

/// Writes the slice's state after processing step `step` (`rows`, one row of the output's width
/// per batch row from `b0`) into its sequence output where the schedule puts each row: at a real
/// step (`real[b]`), and at a padded one when the schedule outputs the carried state (else the
/// zeros stay).
fn store_step(
    seq: &mut ArrayViewMut3<'_, f32>,
    schedule: &Schedule<'_>,
    (b0, step): (usize, usize),
    rows: &[f32],
    real: &[bool],
) {
    let carried = schedule.padded_output_is_state();
    let width = seq.dim().2;
    for (b, row) in rows.chunks_exact(width).enumerate() {
        if real[b] || carried {
            let at = schedule.output_position(b0 + b, step);
            seq.slice_mut(s![b, at, ..])
                .iter_mut()
                .zip(row)
                .for_each(|(o, v)| *o = *v);
        }
    }
}

/// The simple cell's step for one row of pre-activations (both products and the bias) of units
/// `first_unit ..`, in place: the clip, when asked, then the activation (with each unit's slope
/// when the layer has them).
fn simple_step_row(row: &mut [f32], layer: &SimpleRnn, first_unit: usize) {
    let config = layer.config();
    if let Some(clip) = config.clip {
        row.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
    }
    if config.activation == Activation::Tanh && layer.unit_slopes().is_none() {
        tanh_in_place(row);
    } else {
        layer.activate_row(row, first_unit);
    }
}

/// Sets the first `width` floats of every `stride`-long row of `rows` to `bias`, or to zeros
/// without one.
fn fill_rows((rows, stride): (&mut [f32], usize), bias: Option<&[f32]>, width: usize) {
    for row in rows.chunks_mut(stride) {
        let row = &mut row[..width];
        match bias {
            Some(bias) => row.copy_from_slice(bias),
            None => row.fill(0.0),
        }
    }
}

/// Floats of input and projection one slice keeps per chunk of time (512 KiB at most): small
/// enough that a chunk's projection is still in the core's L2 when its steps read it (at
/// 1 Mi floats an LSTM at 64 × 100 × 64 × 256 took 28-29 ms, at this size 24.5-25.5 ms).
const CHUNK_FLOATS: usize = 1 << 17;

/// Multiply-adds per step above which a lone slice lets `gemm` use every core for the step.
const PARALLEL_STEP_FLOPS: usize = 1 << 18;

/// What [`CpuRnn::run_slice`] reads: the whole input and where its rows start.
struct Slice<'a, 's> {
    b0: usize,
    input: ArrayView3<'a, f32>,
    initial_state: Option<ArrayView2<'a, f32>>,
    initial_cell: Option<ArrayView2<'a, f32>>,
    schedule: &'a Schedule<'s>,
    parallel_gemm: bool,
    chunk_floats: usize,
}

impl Slice<'_, '_> {
    /// The input projection `x · kernel + bias` (without `bias`: `x · kernel`) of processing
    /// steps `s0 .. s0 + ns` for the slice's `nb` rows into `p` (time-major, the kernel's
    /// columns per row, rows `p_stride` floats apart), gathering the input into `x` and the
    /// real steps into `real` first.
    fn project(
        &self,
        (kernel, bias): (&PaddedRows, Option<&[f32]>),
        (s0, ns, nb): (usize, usize, usize),
        (x, real): (&mut [f32], &mut [bool]),
        (p, p_stride): (&mut [f32], usize),
    ) {
        let d = self.input.dim().2;
        let columns = kernel.cols();
        self.gather_input(s0, ns, nb, x, real);
        let (x, shape) = (&x[..ns * nb * d], (ns * nb, d, columns));
        match bias {
            Some(bias) => {
                fill_rows((&mut *p, p_stride), Some(bias), columns);
                matmul_acc_strided(
                    shape,
                    (p, p_stride),
                    x,
                    kernel.strided(),
                    self.parallel_gemm,
                );
            }
            None => matmul_strided(
                shape,
                (p, p_stride),
                x,
                kernel.strided(),
                self.parallel_gemm,
            ),
        }
    }

    /// The time-major input rows of processing steps `s0 .. s0 + ns` for the slice's `nb` rows
    /// into `x`, zeros at padded steps, and which (step, row) pairs are real into `real`.
    fn gather_input(&self, s0: usize, ns: usize, nb: usize, x: &mut [f32], real: &mut [bool]) {
        let d = self.input.dim().2;
        for s in 0..ns {
            for b in 0..nb {
                let row = &mut x[(s * nb + b) * d..][..d];
                match self.schedule.input_time(self.b0 + b, s0 + s) {
                    Some(time) => {
                        real[s * nb + b] = true;
                        row.iter_mut()
                            .zip(self.input.slice(s![self.b0 + b, time, ..]))
                            .for_each(|(o, v)| *o = *v);
                    }
                    None => {
                        real[s * nb + b] = false;
                        row.fill(0.0);
                    }
                }
            }
        }
    }
}

impl RnnForward for CpuRnn {
    fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        initial_cell: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        CpuRnn::forward_states(self, input, initial_state, initial_cell, padding)
    }

    fn backend_name(&self) -> &'static str {
        "cpu"
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array1, Array2, Array3};

    use super::*;
    use crate::layer::SimpleRnnConfig;

    fn ramp(shape: (usize, usize), scale: f32) -> Array2<f32> {
        Array2::from_shape_fn(shape, |(i, j)| {
            ((i * 7 + j * 3) % 11) as f32 * scale - 5.0 * scale
        })
    }

    #[test]
    fn chunks_and_slices_do_not_change_the_result() {
        let (n, t, d, m) = (5, 23, 3, 6);
        let input = Array3::from_shape_fn((n, t, d), |(b, s, k)| {
            ((b + 2 * s + 3 * k) % 7) as f32 * 0.3 - 1.0
        });
        let mask = Array2::from_shape_fn((n, t), |(b, s)| (s + b) % 4 != 1);
        let lengths = [23, 1, 7, 12, 20];
        for go_backwards in [false, true] {
            let config = SimpleRnnConfig {
                return_sequences: true,
                go_backwards,
                ..Default::default()
            };
            let layer = SimpleRnn::new(
                ramp((d, m), 0.1),
                ramp((m, m), 0.05),
                Some(Array1::from_elem(m, 0.1)),
                config,
            )
            .unwrap();
            let cpu = CpuRnn::new(layer);
            let h0 = ramp((n, m), 0.2);
            for padding in [
                Padding::None,
                Padding::Mask(mask.view()),
                Padding::Lengths(&lengths),
            ] {
                let whole = cpu
                    .forward_in_chunks(input.view(), Some(h0.view()), None, padding, usize::MAX)
                    .unwrap();
                for chunk_floats in [1, 20, 100] {
                    let chunked = cpu
                        .forward_in_chunks(
                            input.view(),
                            Some(h0.view()),
                            None,
                            padding,
                            chunk_floats,
                        )
                        .unwrap();
                    for (a, b) in chunked
                        .sequences
                        .iter()
                        .flatten()
                        .zip(whole.sequences.iter().flatten())
                    {
                        assert!((a - b).abs() < 1e-5, "{chunk_floats}: {a} vs {b}");
                    }
                    for (a, b) in chunked.final_state.iter().zip(&whole.final_state) {
                        assert!((a - b).abs() < 1e-5, "{chunk_floats}: {a} vs {b}");
                    }
                }
            }
        }
    }

    /// A lone sequence split over three cores by units gives what one core gives, for each
    /// cell, direction and padding, across chunks of time.
    #[test]
    fn a_lone_sequence_split_over_cores_matches_one_core() {
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        let (one, three) = (pool(1), pool(3));
        let (t, d) = (70, 5);
        let input = Array3::from_shape_fn((1, t, d), |(_, s, k)| {
            ((2 * s + 3 * k) % 7) as f32 * 0.3 - 1.0
        });
        let mask = Array2::from_shape_fn((1, t), |(_, s)| s % 5 != 2);
        let lengths = [53];
        let cases = [
            (Cell::Simple, 192, false),
            (Cell::Simple, 192, true),
            (Cell::Lstm, 96, false),
            (Cell::Gru, 112, false),
        ];
        for (cell, m, slopes) in cases {
            let g = cell.gates();
            for go_backwards in [false, true] {
                let activation = match slopes {
                    true => Activation::LeakyRelu {
                        negative_slope: 0.2,
                    },
                    false => Activation::Tanh,
                };
                let config = SimpleRnnConfig {
                    return_sequences: true,
                    go_backwards,
                    activation,
                    ..Default::default()
                };
                let recurrent_bias = (cell == Cell::Gru).then(|| Array1::from_elem(g * m, -0.05));
                let layer = SimpleRnn::gated(
                    cell,
                    ramp((d, g * m), 0.1),
                    ramp((m, g * m), 0.02),
                    Some(Array1::from_shape_fn(g * m, |j| (j % 5) as f32 * 0.05)),
                    recurrent_bias,
                    config,
                )
                .unwrap();
                // PReLU as the activation: a slope per unit, which each worker takes from its
                // first unit on.
                let layer = match slopes {
                    true => layer
                        .with_unit_slopes(Array1::from_shape_fn(m, |j| (j % 7) as f32 * 0.1 - 0.2))
                        .unwrap(),
                    false => layer,
                };
                let cpu = CpuRnn::new(layer);
                assert!(three.install(|| cpu.split_workers(rayon::current_num_threads(), t)) == 3);
                let h0 = ramp((1, m), 0.2);
                let c0 = (cell == Cell::Lstm).then(|| ramp((1, m), 0.1));
                for padding in [
                    Padding::None,
                    Padding::Mask(mask.view()),
                    Padding::Lengths(&lengths),
                ] {
                    let run = |pool: &rayon::ThreadPool, chunk_floats| {
                        pool.install(|| {
                            cpu.forward_in_chunks(
                                input.view(),
                                Some(h0.view()),
                                c0.as_ref().map(|c| c.view()),
                                padding,
                                chunk_floats,
                            )
                        })
                        .unwrap()
                    };
                    let want = run(&one, usize::MAX);
                    for chunk_floats in [usize::MAX, 2000] {
                        let got = run(&three, chunk_floats);
                        let what = format!(
                            "{cell:?}, slopes {slopes}, backwards {go_backwards}, {chunk_floats}"
                        );
                        let pairs = [(&got.sequences, &want.sequences)];
                        for (a, b) in pairs {
                            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
                            assert_eq!(a.dim(), b.dim());
                            for (a, b) in a.iter().zip(b) {
                                assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
                            }
                        }
                        for (a, b) in got.final_state.iter().zip(&want.final_state) {
                            assert!((a - b).abs() < 1e-5, "{what}: {a} vs {b}");
                        }
                        assert_eq!(got.final_cell.is_some(), cell == Cell::Lstm);
                        for (a, b) in got
                            .final_cell
                            .iter()
                            .flatten()
                            .zip(want.final_cell.iter().flatten())
                        {
                            assert!((a - b).abs() < 1e-5, "{what}: cell {a} vs {b}");
                        }
                    }
                }
            }
        }
    }
}
