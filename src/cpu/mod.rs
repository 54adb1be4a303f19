//! The CPU path: the same semantics as the GPU path, on ndarray arrays with `gemm`'s SIMD
//! kernels, one core per slice of the batch.

mod kernels;

use ndarray::{Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut2, ArrayViewMut3, Axis, s};
use rayon::prelude::*;

use crate::activation::Activation;
use crate::cell::Cell;
use crate::error::Result;
use crate::layer::{Padding, RnnForward, RnnOutput, Schedule, SimpleRnn, state_rows};
use kernels::{matmul_acc, matmul_acc_strided, tanh_in_place};

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
        let run = |(i, (final_state, sequences, final_cell)): (usize, Outputs<'_>)| {
            let slice = Slice {
                b0: i * rows,
                input: input.view(),
                initial_state: initial_state.as_ref().map(|h| h.view()),
                initial_cell: initial_cell.as_ref().map(|c| c.view()),
                schedule: &schedule,
                parallel_gemm: one_slice,
                chunk_floats,
            };
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

    /// Runs every step for the batch rows `b0..b0 + final_state.nrows()`, writing their final
    /// state and (when given) their sequence output.
    fn run_slice(
        &self,
        slice: Slice<'_, '_>,
        mut final_state: ArrayViewMut2<'_, f32>,
        mut sequences: Option<ArrayViewMut3<'_, f32>>,
    ) {
        let layer = &self.layer;
        let config = layer.config();
        let (d, m) = (layer.input_dim(), layer.units());
        let (_, t, _) = slice.input.dim();
        let (b0, nb) = (slice.b0, final_state.nrows());
        let schedule = slice.schedule;
        let recurrent_kernel = standard_slice(layer.recurrent_kernel());
        let carried = schedule.padded_output_is_state();

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
            slice.project(layer, (s0, ns, nb), &mut x, &mut real, p);

            for s in 0..ns {
                let (done, rest) = p.split_at_mut(s * nb * m);
                let previous: &[f32] = if s == 0 {
                    &h
                } else {
                    &done[(s - 1) * nb * m..]
                };
                let current = &mut rest[..nb * m];
                matmul_acc(
                    (nb, m, m),
                    current,
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
                    if let Some(clip) = config.clip {
                        row.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
                    }
                    if config.activation == Activation::Tanh {
                        tanh_in_place(row);
                    } else {
                        layer.activate_row(row);
                    }
                }
                if let Some(seq) = sequences.as_mut() {
                    for (b, row) in current.chunks_exact(m).enumerate() {
                        if real[s * nb + b] || carried {
                            let at = schedule.output_position(b0 + b, s0 + s);
                            seq.slice_mut(s![b, at, ..])
                                .iter_mut()
                                .zip(row)
                                .for_each(|(o, v)| *o = *v);
                        }
                    }
                }
            }
            h.copy_from_slice(&p[(ns - 1) * nb * m..]);
        }
        final_state.iter_mut().zip(&h).for_each(|(o, v)| *o = *v);
    }
}

impl CpuRnn {
    /// [`CpuRnn::run_slice`] for a gated cell (LSTM, GRU): the projection covers the *G*·*M*
    /// gate columns, each step's recurrent GEMM fills its own *nb* × *G*·*M* block (from the
    /// recurrent bias or zeros), and [`Cell::step_row`] combines the two into *h* and *c*.
    fn run_gated_slice(
        &self,
        cell: Cell,
        slice: Slice<'_, '_>,
        mut final_state: ArrayViewMut2<'_, f32>,
        mut sequences: Option<ArrayViewMut3<'_, f32>>,
        final_cell: Option<ArrayViewMut2<'_, f32>>,
    ) {
        let layer = &self.layer;
        let (d, m) = (layer.input_dim(), layer.units());
        let gm = cell.gates() * m;
        let (_, t, _) = slice.input.dim();
        let (b0, nb) = (slice.b0, final_state.nrows());
        let schedule = slice.schedule;
        let recurrent_kernel = standard_slice(layer.recurrent_kernel());
        let carried = schedule.padded_output_is_state();
        // h is P wide for a projected LSTM; the cell's own output o·act(c), M wide, goes to
        // `full` and through the projection.
        let width = layer.state_size();
        let projection = layer.projection().map(standard_slice);
        let mut full = vec![0.0f32; if projection.is_some() { nb * m } else { 0 }];
        let mut projected = vec![0.0f32; if projection.is_some() { nb * width } else { 0 }];
        let mut h = state_rows(slice.initial_state.as_ref(), b0..b0 + nb, width);
        let mut c = state_rows(slice.initial_cell.as_ref(), b0..b0 + nb, m);

        let chunk = (slice.chunk_floats / (nb * (d + gm)).max(1)).clamp(1, t);
        let mut x = vec![0.0f32; chunk * nb * d];
        let mut p = vec![0.0f32; chunk * nb * gm];
        let mut r = vec![0.0f32; nb * gm];
        let mut scratch = vec![0.0f32; m];
        // GRU (reset_after=False): q·h, the left side of the candidate's product.
        let mut reset = vec![
            0.0f32;
            if cell == Cell::GruResetBefore {
                nb * m
            } else {
                0
            }
        ];
        let mut real = vec![true; chunk * nb];
        let fns = GateFunctions::of(layer);
        for s0 in (0..t).step_by(chunk) {
            let ns = chunk.min(t - s0);
            let p = &mut p[..ns * nb * gm];
            slice.project(layer, (s0, ns, nb), &mut x, &mut real, p);
            for s in 0..ns {
                let bias = layer.recurrent_bias().map(|b| b.as_slice().expect("owned"));
                fill_rows(&mut r, bias, gm);
                let parallel = slice.parallel_gemm && nb * m * gm >= PARALLEL_STEP_FLOPS;
                let real = &real[s * nb..(s + 1) * nb];
                let p = &p[s * nb * gm..(s + 1) * nb * gm];
                if cell == Cell::GruResetBefore {
                    // z and q from h · U[:, ..2M]; then the candidate's product (q·h) · U[:, 2M..].
                    let zq = 2 * m;
                    matmul_acc_strided(
                        (nb, m, zq),
                        (&mut r, gm),
                        &h,
                        (recurrent_kernel, gm),
                        parallel,
                    );
                    for b in 0..nb {
                        let gates = &mut r[b * gm..][..zq];
                        gru_reset_gates(&p[b * gm..][..zq], gates, &fns);
                        let q = &gates[m..];
                        let rows = b * m..(b + 1) * m;
                        reset[rows.clone()]
                            .iter_mut()
                            .zip(q.iter().zip(&h[rows]))
                            .for_each(|(o, (q, h))| *o = q * h);
                    }
                    matmul_acc_strided(
                        (nb, m, m),
                        (&mut r[zq..], gm),
                        &reset,
                        (&recurrent_kernel[zq..], gm),
                        parallel,
                    );
                } else {
                    matmul_acc((nb, width, gm), &mut r, &h, recurrent_kernel, parallel);
                }
                for b in 0..nb {
                    // A padded step keeps h and c.
                    if real[b] {
                        let out = match projection {
                            Some(_) => &mut full[b * m..][..m],
                            None => &mut h[b * m..][..m],
                        };
                        gated_step_row(
                            cell,
                            &p[b * gm..][..gm],
                            &mut r[b * gm..][..gm],
                            (out, &mut c[b * m..][..m]),
                            &fns,
                            &mut scratch,
                        );
                    }
                }
                if let Some(projection) = projection {
                    projected.fill(0.0);
                    matmul_acc((nb, m, width), &mut projected, &full, projection, parallel);
                    for b in (0..nb).filter(|&b| real[b]) {
                        h[b * width..][..width].copy_from_slice(&projected[b * width..][..width]);
                    }
                }
                if let Some(seq) = sequences.as_mut() {
                    for b in (0..nb).filter(|&b| real[b] || carried) {
                        let at = schedule.output_position(b0 + b, s0 + s);
                        seq.slice_mut(s![b, at, ..])
                            .iter_mut()
                            .zip(&h[b * width..][..width])
                            .for_each(|(o, v)| *o = *v);
                    }
                }
            }
        }
        final_state.iter_mut().zip(&h).for_each(|(o, v)| *o = *v);
        if let Some(mut final_cell) = final_cell {
            final_cell.iter_mut().zip(&c).for_each(|(o, v)| *o = *v);
        }
    }
}

/// What a gated cell applies to its gates' pre-activations, from the layer's options.
struct GateFunctions<'a> {
    /// The candidate's activation (Keras's `activation`).
    act: Activation,
    /// The gates' activation (`recurrent_activation`).
    rec: Activation,
    /// An LSTM's cell state activation.
    out: Activation,
    clip: Option<f32>,
    input_forget: bool,
    /// An LSTM's peepholes, 3·*M*: i, f, o.
    peepholes: Option<&'a [f32]>,
}

impl<'a> GateFunctions<'a> {
    fn of(layer: &'a SimpleRnn) -> Self {
        let config = layer.config();
        GateFunctions {
            act: config.activation,
            rec: config.recurrent_activation,
            out: config.cell_output_activation(),
            clip: config.clip,
            input_forget: config.input_forget,
            peepholes: layer.peepholes().map(|p| p.as_slice().expect("owned")),
        }
    }

    /// Clips (when asked) and activates one gate block in place.
    fn apply(&self, activation: Activation, values: &mut [f32]) {
        if let Some(clip) = self.clip {
            values.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
        }
        activate_in_place(activation, values);
    }
}

/// A GRU's gates z and q (reset) for one row, in place in `r` (2·*M*: the recurrent products,
/// to which the input products `x` are added).
fn gru_reset_gates(x: &[f32], r: &mut [f32], fns: &GateFunctions<'_>) {
    r.iter_mut().zip(x).for_each(|(r, x)| *r += x);
    fns.apply(fns.rec, r);
}

/// One step of a gated cell for one row, as `src/cell.rs` describes it: `x` and `r` are the
/// row's input and recurrent products (*G*·*M* each, biases included; `r` is overwritten with
/// the gates; for [`Cell::GruResetBefore`] its z and q blocks hold the gates already and its
/// candidate block the product of q·h), `h` and `c` the state, updated in place. Each
/// activation runs over a whole gate block at once, so the common ones vectorise
/// ([`activate_in_place`]).
fn gated_step_row(
    cell: Cell,
    x: &[f32],
    r: &mut [f32],
    (h, c): (&mut [f32], &mut [f32]),
    fns: &GateFunctions<'_>,
    scratch: &mut [f32],
) {
    let m = h.len();
    match cell {
        Cell::Simple => unreachable!("the simple cell has its own step"),
        Cell::Lstm => {
            // Gates i, f, c, o.
            r.iter_mut().zip(x).for_each(|(r, x)| *r += x);
            let (i_f, rest) = r.split_at_mut(2 * m);
            let (g, o) = rest.split_at_mut(m);
            if let Some(p) = fns.peepholes {
                i_f.iter_mut()
                    .zip(p[..2 * m].iter().zip(c.iter().chain(c.iter())))
                    .for_each(|(v, (p, c))| *v += p * c);
            }
            let (i, f) = i_f.split_at_mut(m);
            fns.apply(fns.rec, i);
            if fns.input_forget {
                f.iter_mut().zip(i.iter()).for_each(|(f, i)| *f = 1.0 - i);
            } else {
                fns.apply(fns.rec, f);
            }
            fns.apply(fns.act, g);
            for j in 0..m {
                c[j] = f[j] * c[j] + i[j] * g[j];
            }
            if let Some(p) = fns.peepholes {
                o.iter_mut()
                    .zip(p[2 * m..].iter().zip(c.iter()))
                    .for_each(|(v, (p, c))| *v += p * c);
            }
            fns.apply(fns.rec, o);
            scratch.copy_from_slice(c);
            activate_in_place(fns.out, scratch);
            for j in 0..m {
                h[j] = o[j] * scratch[j];
            }
        }
        Cell::Gru | Cell::GruResetBefore => {
            let (zq, cand) = r.split_at_mut(2 * m);
            if cell == Cell::Gru {
                // The candidate's recurrent product goes inside the reset gate.
                gru_reset_gates(&x[..2 * m], zq, fns);
                for j in 0..m {
                    scratch[j] = x[2 * m + j] + zq[m + j] * cand[j];
                }
            } else {
                // The gates were made before the candidate's product, which holds q·h already.
                for j in 0..m {
                    scratch[j] = x[2 * m + j] + cand[j];
                }
            }
            fns.apply(fns.act, scratch);
            let z = &zq[..m];
            for j in 0..m {
                h[j] = z[j] * h[j] + (1.0 - z[j]) * scratch[j];
            }
        }
    }
}

/// `activation` of every element, in place: tanh and sigmoid (as ½ + ½·tanh(x/2)) through the
/// vectorised tanh, the others element by element.
fn activate_in_place(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Tanh => tanh_in_place(values),
        Activation::Sigmoid => {
            values.iter_mut().for_each(|v| *v *= 0.5);
            tanh_in_place(values);
            values.iter_mut().for_each(|v| *v = 0.5 + 0.5 * *v);
        }
        other => values.iter_mut().for_each(|v| *v = other.apply(*v)),
    }
}

/// Sets every `width`-wide row of `rows` to `bias`, or to zeros without one.
fn fill_rows(rows: &mut [f32], bias: Option<&[f32]>, width: usize) {
    match bias {
        Some(bias) => rows
            .chunks_exact_mut(width)
            .for_each(|row| row.copy_from_slice(bias)),
        None => rows.fill(0.0),
    }
}

/// Floats of input and projection one slice keeps per chunk of time (4 MiB each way at most).
const CHUNK_FLOATS: usize = 1 << 20;

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
    /// The input projection `x · kernel + bias` of processing steps `s0 .. s0 + ns` for the
    /// slice's `nb` rows into `p` (time-major, the kernel's columns per row), gathering the
    /// input into `x` and the real steps into `real` first.
    fn project(
        &self,
        layer: &SimpleRnn,
        (s0, ns, nb): (usize, usize, usize),
        x: &mut [f32],
        real: &mut [bool],
        p: &mut [f32],
    ) {
        let (d, columns) = layer.kernel().dim();
        self.gather_input(s0, ns, nb, x, real);
        fill_rows(
            p,
            layer.bias().map(|b| b.as_slice().expect("owned")),
            columns,
        );
        matmul_acc(
            (ns * nb, d, columns),
            p,
            &x[..ns * nb * d],
            standard_slice(layer.kernel()),
            self.parallel_gemm,
        );
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

fn standard_slice(a: &Array2<f32>) -> &[f32] {
    a.as_slice()
        .expect("SimpleRnn keeps its weights in standard layout")
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
}
