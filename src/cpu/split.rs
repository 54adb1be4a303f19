//! One sequence on every core. A lone sequence's steps cannot run side by side, but each step's
//! units can: each worker owns a range of the units (their columns in every gate), projects and
//! steps them, and the workers exchange the state once per step. At a batch of one the step
//! product is a vector times the recurrent kernel, which one core can only stream from its own
//! cache (an LSTM of 128 units spent 78 % of its time there); split, each core streams its part.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};

use crossbeam_utils::Backoff;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, ArrayViewMut3};

use super::gated::{GateFunctions, gru_step_row, lstm_bias, lstm_step_row};
use super::kernels::{PaddedRows, matmul_acc_strided, padded_stride};
use super::{CpuRnn, Slice, fill_rows, simple_step_row, store_step};
use crate::cell::Cell;
use crate::layer::state_rows;

/// Multiply-adds per step below which one core runs a lone sequence: a step of 32 Ki
/// multiply-adds takes about a microsecond, which the exchange between cores would eat.
const SPLIT_STEP_MACS: usize = 1 << 15;

/// The fewest units a worker owns (a few vectors' worth).
const SPLIT_MIN_UNITS: usize = 32;

/// The fewest steps worth starting threads for.
const SPLIT_MIN_STEPS: usize = 64;

impl CpuRnn {
    /// How many workers [`CpuRnn::run_split`] would run a lone sequence of `t` steps on, given
    /// `threads` cores: 1 where it does not apply (a projected LSTM, peepholes, the reset-before
    /// GRU's second product, a row-wise activation, or too little work per step).
    pub(super) fn split_workers(&self, threads: usize, t: usize) -> usize {
        let layer = &self.layer;
        let (cell, config, m) = (layer.cell(), layer.config(), layer.units());
        let row_wise = [config.activation, config.recurrent_activation]
            .iter()
            .chain(config.output_activation.as_ref())
            .any(|a| a.is_row_wise());
        if layer.projection().is_some()
            || layer.peepholes().is_some()
            || cell == Cell::GruResetBefore
            || row_wise
            || t < SPLIT_MIN_STEPS
            || m * cell.gates() * m < SPLIT_STEP_MACS
        {
            return 1;
        }
        threads.min(m / SPLIT_MIN_UNITS).max(1)
    }

    /// Runs the one sequence of `slice` on `workers` threads (this one and `workers - 1`
    /// started for the call), each owning a range of the units; the results are those of
    /// [`CpuRnn::run_slice`] and [`CpuRnn::run_gated_slice`]. Returns false, having computed
    /// nothing, when the system would not start a thread (the caller then runs the slice on
    /// this one).
    pub(super) fn run_split(
        &self,
        workers: usize,
        slice: &Slice<'_, '_>,
        (final_state, sequences, final_cell): (
            &mut ArrayViewMut2<'_, f32>,
            &mut Option<ArrayViewMut3<'_, f32>>,
            &mut Option<ArrayViewMut2<'_, f32>>,
        ),
    ) -> bool {
        let m = self.layer.units();
        // Ranges a multiple of 16 units wide (whole vectors), the last one taking the rest.
        let per = (m / workers).next_multiple_of(16).min(m);
        let ranges: Vec<(usize, usize)> = (0..m)
            .step_by(per)
            .map(|j0| (j0, (j0 + per).min(m)))
            .collect();
        let h0 = state_rows(slice.initial_state.as_ref(), 0..1, m);
        let shared = Shared {
            // Two buffers: step s reads one while the workers write step s + 1's into the other.
            h: [0, 1].map(|_| h0.iter().map(|v| AtomicU32::new(v.to_bits())).collect()),
            barrier: StepBarrier::new(ranges.len()),
            start: AtomicU8::new(WAIT),
        };
        let cells: Option<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            // Every worker waits for the start, so that none reaches the first barrier before
            // all of them exist: a worker that failed to start would leave the others waiting
            // there for ever.
            let mut handles = Vec::with_capacity(ranges.len() - 1);
            for &range in &ranges[1..] {
                let shared = &shared;
                let started = std::thread::Builder::new()
                    .name("wgpu-rnn-cpu".into())
                    .spawn_scoped(scope, move || {
                        shared
                            .started()
                            .then(|| self.split_worker(range, slice, shared, None))
                    });
                match started {
                    Ok(handle) => handles.push(handle),
                    Err(_) => {
                        shared.start.store(ABORT, Ordering::Release);
                        return None;
                    }
                }
            }
            shared.start.store(GO, Ordering::Release);
            let first = self.split_worker(ranges[0], slice, &shared, sequences.as_mut());
            let rest = handles.into_iter().map(|h| {
                h.join()
                    .expect("a worker panicked")
                    .expect("every worker started")
            });
            Some(std::iter::once(first).chain(rest).collect())
        });
        let Some(mut cells) = cells else {
            return false;
        };
        let t = slice.input.dim().1;
        load(
            final_state
                .as_slice_mut()
                .expect("a row of the final state"),
            &shared.h[t % 2],
        );
        if let Some(final_cell) = final_cell {
            let c: Vec<f32> = cells.drain(..).flatten().collect();
            final_cell.iter_mut().zip(&c).for_each(|(o, v)| *o = *v);
        }
        true
    }

    /// One worker of [`CpuRnn::run_split`]: every step of units `j0 .. j1`. The first worker
    /// also writes the sequence output. Returns the worker's part of the final cell state.
    fn split_worker(
        &self,
        (j0, j1): (usize, usize),
        slice: &Slice<'_, '_>,
        shared: &Shared,
        mut sequences: Option<&mut ArrayViewMut3<'_, f32>>,
    ) -> Vec<f32> {
        let layer = &self.layer;
        let (cell, d, m) = (layer.cell(), layer.input_dim(), layer.units());
        let (u, g) = (j1 - j0, cell.gates());
        let gu = g * u;
        // The worker's columns of every gate, packed as a layer of u units would have them.
        let kernel = PaddedRows::new(unit_columns(layer.kernel().view(), g, m, (j0, j1)).view());
        let recurrent =
            PaddedRows::new(unit_columns(layer.recurrent_kernel().view(), g, m, (j0, j1)).view());
        let vector = |v: Option<&ndarray::Array1<f32>>| {
            v.map(|v| unit_columns(v.view().insert_axis(ndarray::Axis(0)), g, m, (j0, j1)))
        };
        let (bias, recurrent_bias) = (vector(layer.bias()), vector(layer.recurrent_bias()));
        let bias = bias.as_ref().map(|b| b.as_slice().expect("standard"));
        let recurrent_bias = recurrent_bias
            .as_ref()
            .map(|b| b.as_slice().expect("standard"));
        let fns = GateFunctions::of(layer);
        // As in the one-core path, an LSTM adds its bias as it takes the gates.
        let (projection, lstm_bias) = match cell {
            Cell::Lstm => ((&kernel, None), lstm_bias(bias, gu)),
            _ => ((&kernel, bias), Vec::new()),
        };

        let (_, t, _) = slice.input.dim();
        let ps = padded_stride(gu);
        let chunk = (slice.chunk_floats / (d + ps)).clamp(1, t);
        let mut x = vec![0.0f32; chunk * d];
        let mut p = vec![0.0f32; chunk * ps];
        let mut real = vec![true; chunk];
        let mut r = vec![0.0f32; if cell == Cell::Gru { gu } else { 0 }];
        let mut h = vec![0.0f32; m];
        let mut own = vec![0.0f32; u];
        let mut c = state_rows(slice.initial_cell.as_ref(), 0..1, m)[j0..j1].to_vec();
        let mut scratch = vec![0.0f32; u];
        for s0 in (0..t).step_by(chunk) {
            let ns = chunk.min(t - s0);
            let p = &mut p[..ns * ps];
            slice.project(projection, (s0, ns, 1), (&mut x, &mut real), (p, ps));
            for s in 0..ns {
                let step = s0 + s;
                let (read, write) = (&shared.h[step % 2], &shared.h[(step + 1) % 2]);
                load(&mut h, read);
                if let Some(seq) = sequences.as_mut().filter(|_| step > 0) {
                    write_output(seq, slice, step - 1, &h);
                }
                own.copy_from_slice(&h[j0..j1]);
                if real[s] {
                    let pre = &mut p[s * ps..][..gu];
                    match cell {
                        Cell::Simple => {
                            matmul_acc_strided((1, m, u), (pre, u), &h, recurrent.strided(), false);
                            simple_step_row(pre, layer, j0);
                            own.copy_from_slice(pre);
                        }
                        Cell::Lstm => {
                            matmul_acc_strided(
                                (1, m, gu),
                                (pre, gu),
                                &h,
                                recurrent.strided(),
                                false,
                            );
                            lstm_step_row(
                                (pre, &lstm_bias),
                                (&mut own, &mut c),
                                &fns,
                                &mut scratch,
                            );
                        }
                        _ => {
                            fill_rows((&mut r, gu), recurrent_bias, gu);
                            let r = &mut r[..];
                            matmul_acc_strided((1, m, gu), (r, gu), &h, recurrent.strided(), false);
                            gru_step_row(cell, pre, r, &mut own, &fns, &mut scratch);
                        }
                    }
                }
                write[j0..j1]
                    .iter()
                    .zip(&own)
                    .for_each(|(w, v)| w.store(v.to_bits(), Ordering::Relaxed));
                shared.barrier.wait();
            }
        }
        if let Some(seq) = sequences.as_mut() {
            load(&mut h, &shared.h[t % 2]);
            write_output(seq, slice, t - 1, &h);
        }
        c
    }
}

/// The state the workers exchange, the barrier that ends each step, and the start gate.
struct Shared {
    /// The state, as f32 bits, in two buffers that alternate by step.
    h: [Vec<AtomicU32>; 2],
    barrier: StepBarrier,
    /// [`WAIT`] until every worker exists, then [`GO`], or [`ABORT`] when one could not start.
    start: AtomicU8,
}

const WAIT: u8 = 0;
const GO: u8 = 1;
const ABORT: u8 = 2;

impl Shared {
    /// Waits at the start gate: true to run, false when the run was called off.
    fn started(&self) -> bool {
        let backoff = Backoff::new();
        loop {
            match self.start.load(Ordering::Acquire) {
                WAIT => backoff.snooze(),
                state => return state == GO,
            }
        }
    }
}

/// Copies the exchanged state into `h`.
fn load(h: &mut [f32], shared: &[AtomicU32]) {
    h.iter_mut()
        .zip(shared)
        .for_each(|(h, v)| *h = f32::from_bits(v.load(Ordering::Relaxed)));
}

/// Writes the lone sequence's state after processing step `step` into its output.
fn write_output(seq: &mut ArrayViewMut3<'_, f32>, slice: &Slice<'_, '_>, step: usize, h: &[f32]) {
    let real = slice.schedule.input_time(slice.b0, step).is_some();
    store_step(seq, slice.schedule, (slice.b0, step), h, &[real]);
}

/// The columns of units `j0 .. j1` in each of the `gates` blocks of `m` columns of `a`, packed
/// side by side.
fn unit_columns(
    a: ArrayView2<'_, f32>,
    gates: usize,
    m: usize,
    (j0, j1): (usize, usize),
) -> Array2<f32> {
    let u = j1 - j0;
    Array2::from_shape_fn((a.nrows(), gates * u), |(row, col)| {
        a[[row, (col / u) * m + j0 + col % u]]
    })
}

/// A barrier for the workers of one forward. A step lasts about a microsecond, so waiting
/// workers spin before they yield (a blocking barrier's wake-up takes longer than the step);
/// yielding keeps a machine with more workers than free cores moving.
struct StepBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl StepBarrier {
    fn new(parties: usize) -> Self {
        StepBarrier {
            parties,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
        }
    }

    /// Returns once every party has called `wait` for this generation; what each party wrote
    /// before its call is visible to all after theirs.
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
        } else {
            let backoff = Backoff::new();
            while self.generation.load(Ordering::Acquire) == generation {
                backoff.snooze();
            }
        }
    }
}
