//! `GpuRnn`: a SimpleRNN layer whose weights live on the GPU, run with one projection GEMM and
//! either one recurrent-step kernel per time step or one persistent kernel looping over the
//! steps, all encoded into one submission per chunk.

use std::sync::Mutex;

use bytemuck::{Pod, Zeroable};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, s};

use crate::cell::Cell;
use crate::error::{Result, RnnError};
use crate::gpu::auto::{StepChoice, StepPlans};
use crate::gpu::context::{
    ContextInner, DYNAMIC_PARAMS_SIZE, ErrorScope, GpuContext, StepStrategy, poisoned,
};
use crate::gpu::plan::{
    ChunkPlan, GATED_ROWS_PER_THREAD_LARGE, PersistentShape, PlanLimits, StepTile, check_weights,
    gated_persistent_rows, gated_persistent_steps_per_dispatch, gated_rows_per_thread,
    gated_step_spans, gated_step_workgroups, grid, persistent_shape, persistent_steps_per_dispatch,
    persistent_workgroups, plan, step_tile,
};
use crate::gpu::projection::Projection;
use crate::layer::{Padding, RnnForward, RnnOutput, Schedule, SimpleRnn, state_rows};

/// One step's parameters (`Step` in shaders/step_params.wgsl) for recurrent_step.wgsl and
/// softmax_rows.wgsl, or one persistent dispatch's (`step` then the first of `count` steps).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(crate) struct StepParams {
    pub(crate) n: u32,
    pub(crate) m: u32,
    pub(crate) step: u32,
    pub(crate) flags: u32,
    /// Steps of the whole sequence, for [`REVERSE_TIME`] and [`FLIP_OUTPUT`].
    pub(crate) t_len: u32,
    /// Steps one persistent dispatch runs.
    pub(crate) count: u32,
    /// The span of the recurrent product one gated-step dispatch walks.
    pub(crate) k_begin: u32,
    pub(crate) k_end: u32,
}

const STEP_WRITES_SEQUENCE: u32 = 1;
const SOFTMAX_WRITES_SEQUENCE: u32 = 2;
const SOFTMAX_TAKES_LOG: u32 = 4;
pub(crate) const READS_MASK: u32 = 8;
pub(crate) const PADDED_OUTPUT_IS_STATE: u32 = 16;
/// Step `s` reads P and the mask at input time `t_len - 1 - s`: the input stays in input order
/// on the GPU and the layer reads it backwards.
#[cfg(feature = "keras")]
pub(crate) const REVERSE_TIME: u32 = 32;
/// Step `s` stores its output at `t_len - 1 - s` (Bidirectional's backward sequence, which
/// Keras flips to input order).
#[cfg(feature = "keras")]
pub(crate) const FLIP_OUTPUT: u32 = 64;

/// Working buffers a model keeps for its next calls; concurrent callers beyond this many make
/// their own and free them when done.
const MAX_IDLE_WORKSPACES: usize = 2;

/// A [`SimpleRnn`] on the GPU: weights uploaded once, pipelines shared through a [`GpuContext`],
/// working buffers kept between calls and grown when a larger shape needs them.
///
/// `GpuRnn` is `Send + Sync`: concurrent [`GpuRnn::forward`] calls from several threads each
/// take their own working buffers and give correct results; at most two sets stay allocated
/// between calls.
///
/// ```no_run
/// use ndarray::{Array1, Array2, Array3};
/// use wgpu_rnn::{GpuContext, GpuRnn, SimpleRnn, SimpleRnnConfig};
///
/// // D = 3 input features, M = 4 units, in Keras's layout.
/// let layer = SimpleRnn::new(
///     Array2::from_elem((3, 4), 0.1),          // kernel, D × M
///     Array2::from_elem((4, 4), 0.05),         // recurrent_kernel, M × M
///     Some(Array1::zeros(4)),                  // bias, M
///     SimpleRnnConfig { return_sequences: true, ..Default::default() },
/// )?;
/// let ctx = GpuContext::new_blocking(Default::default())?; // one per program; share it
/// let model = GpuRnn::new(&ctx, layer)?;                  // weights uploaded once
/// let x = Array3::<f32>::ones((2, 10, 3));                 // N × T × D
/// let out = model.forward(x.view(), None)?;
/// assert_eq!(out.output().shape(), &[2, 10, 4]);           // N × T × M
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
pub struct GpuRnn {
    ctx: GpuContext,
    layer: SimpleRnn,
    kernel: wgpu::Buffer,
    /// U, followed for a gated cell by its vector (an LSTM's peepholes or a GRU's recurrent
    /// bias) when it has one.
    recurrent_kernel: wgpu::Buffer,
    bias: wgpu::Buffer,
    /// A gated cell's fused step kernels: per phase (two for [`Cell::GruResetBefore`] and a
    /// projected LSTM, else one), with one row per thread and with
    /// [`GATED_ROWS_PER_THREAD_LARGE`].
    gated: Vec<[wgpu::ComputePipeline; 2]>,
    /// A gated cell's persistent kernel and its rows per workgroup, unless the strategy never
    /// picks it or the layer's state does not fit workgroup memory.
    gated_persistent: Option<(u32, wgpu::ComputePipeline)>,
    /// How the steps of a chunk of each batch size run, chosen once per size (see
    /// [`StepStrategy`]), with a per-step tile that runs any size as the fallback.
    pub(crate) plans: StepPlans,
    /// The persistent kernel and its layout, unless the strategy never picks it, the layer's
    /// state does not fit workgroup memory, or not even one step fits one dispatch's loop
    /// budget.
    persistent: Option<(PersistentShape, wgpu::ComputePipeline)>,
    /// Idle working buffers; a forward takes one (or makes one) and gives it back.
    workspaces: Mutex<Vec<Workspace>>,
}

impl std::fmt::Debug for GpuRnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuRnn")
            .field("context", &self.ctx)
            .field("input_dim", &self.layer.input_dim())
            .field("units", &self.layer.units())
            .field("config", self.layer.config())
            .finish_non_exhaustive()
    }
}

impl GpuRnn {
    /// Uploads the layer's weights to the context's device.
    ///
    /// # Errors
    /// [`RnnError::DeviceLimit`] when a weight matrix is larger than one storage binding may be;
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    pub fn new(ctx: &GpuContext, layer: SimpleRnn) -> Result<Self> {
        let inner = &ctx.inner;
        inner.check_alive()?;
        let (d, m) = (layer.input_dim(), layer.units());
        let cell = layer.cell();
        let gm = cell.gates() * m;
        check_weights(d, m, cell.gates(), &plan_limits(inner))?;
        let activation = layer.config().activation;
        let projected = layer.projection().is_some();
        let phases = match cell {
            Cell::Simple => 0,
            Cell::GruResetBefore => 2,
            // The cell, then the projection.
            _ if projected => 2,
            _ => 1,
        };
        let gated = (1..=phases as u32)
            .map(|phase| {
                Ok([
                    inner.gated_pipeline(&layer, phase, 1)?,
                    inner.gated_pipeline(&layer, phase, GATED_ROWS_PER_THREAD_LARGE)?,
                ])
            })
            .collect::<Result<Vec<_>>>()?;
        let gated_persistent = match (cell, inner.options.strategy) {
            (Cell::Simple, _) | (_, StepStrategy::PerStep) => None,
            // A projected LSTM runs step by step.
            _ if projected => None,
            _ => {
                let buffers = gated_state_buffers(cell);
                let storage = u64::from(inner.limits.max_compute_workgroup_storage_size);
                match gated_persistent_rows(m, buffers, storage).filter(|&rows| {
                    gated_persistent_steps_per_dispatch(m, cell.gates(), phases, rows, 1) > 0
                }) {
                    Some(rows) => {
                        let floats = (buffers * u64::from(rows) * m as u64) as u32;
                        Some((rows, inner.gated_persistent_pipeline(&layer, rows, floats)?))
                    }
                    None => None,
                }
            }
        };
        // The tile for one row fits the loop budget at this width, so it runs any batch.
        let fallback = step_tile(1, m, inner.step_device())
            .ok_or_else(|| RnnError::DeviceLimit(format!("no per-step tile runs {m} units")))?;
        let fallback = (fallback, inner.step_pipeline(&layer, fallback)?);
        let persistent = match inner.options.strategy {
            // The persistent kernel runs the simple cell only.
            _ if cell != Cell::Simple => None,
            StepStrategy::PerStep | StepStrategy::Sliced => None,
            StepStrategy::Auto | StepStrategy::Persistent => {
                match persistent_shape(
                    m,
                    u64::from(inner.limits.max_compute_workgroup_storage_size),
                    activation.is_row_wise(),
                )
                .filter(|shape| {
                    persistent_steps_per_dispatch(m, *shape, activation.is_row_wise(), 1) > 0
                }) {
                    Some(shape) => Some((shape, inner.persistent_pipeline(&layer, shape)?)),
                    None => None,
                }
            }
        };
        let scope = ErrorScope::push(&inner.device);
        let kernel = inner.upload_weights("rnn.kernel", standard_slice(layer.kernel()));
        // U, then the cell's vector, then a projection's W_hr, as gated_step.wgsl reads them;
        // for the simple cell U, then its activation's slope per unit (M of them), as the
        // recurrent kernels' `UNIT_SLOPES` read them.
        let vector = layer.peepholes().or(layer.recurrent_bias());
        let slopes = layer.slopes_per_unit();
        let u_and_vector: Vec<f32> = standard_slice(layer.recurrent_kernel())
            .iter()
            .chain(vector.into_iter().flatten())
            .chain(layer.projection().map(standard_slice).into_iter().flatten())
            .copied()
            .chain(slopes.into_iter().flatten())
            .collect();
        let cap = plan_limits(inner).max_binding_bytes;
        if 4 * u_and_vector.len() as u64 > cap {
            return Err(RnnError::DeviceLimit(format!(
                "the recurrent weights take {} bytes, more than one storage binding may hold \
                 ({cap})",
                4 * u_and_vector.len()
            )));
        }
        let recurrent_kernel = inner.upload_weights("rnn.recurrent_kernel", &u_and_vector);
        let bias = match layer.bias() {
            Some(b) => inner.upload_weights("rnn.bias", &b.to_vec()),
            None => inner.upload_weights("rnn.bias", &vec![0.0f32; gm]),
        };
        pollster::block_on(scope.pop())?;
        Ok(GpuRnn {
            ctx: ctx.clone(),
            layer,
            kernel,
            recurrent_kernel,
            bias,
            gated,
            gated_persistent,
            plans: StepPlans::new(fallback),
            persistent,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// [`GpuContext::new_blocking`] with default options, then [`GpuRnn::new`]: the shortest way
    /// to a model on the best GPU found.
    ///
    /// # Errors
    /// As [`GpuContext::new`] (no adapter) and [`GpuRnn::new`].
    pub fn with_default_context(layer: SimpleRnn) -> Result<Self> {
        let ctx = GpuContext::new_blocking(Default::default())?;
        GpuRnn::new(&ctx, layer)
    }

    /// The layer this runs.
    pub fn layer(&self) -> &SimpleRnn {
        &self.layer
    }

    /// The context (device, queue, pipelines) this model runs on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Runs the layer on `input` (*N* × *T* × *D*) from `initial_state` (*N* × *M*, zeros when
    /// `None`).
    ///
    /// The input is uploaded time-major (reversed under `go_backwards`), projected by one GEMM,
    /// then the steps run with the state kept on the GPU, one kernel per step or one persistent
    /// kernel for all (see [`crate::StepStrategy`]); all of it goes in one submission with one
    /// readback, unless the shape passes the device's buffer limits (or
    /// [`crate::GpuOptions::max_chunk_bytes`]), in which case it is split into chunks over
    /// batch and time, one submission each.
    ///
    /// # Errors
    /// As [`SimpleRnn::check_input`] for shapes; [`RnnError::DeviceLimit`] when even one batch
    /// row does not fit a buffer; [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device
    /// fails.
    pub fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
    ) -> Result<RnnOutput> {
        self.forward_padded(input, initial_state, Padding::None)
    }

    /// [`GpuRnn::forward`] over padded sequences: a Keras mask or per-sequence lengths. Padded
    /// steps keep the state on the GPU through a per-step mask.
    ///
    /// # Errors
    /// As [`SimpleRnn::check_padded_input`] and [`GpuRnn::forward`].
    pub fn forward_padded(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        self.forward_states(input, initial_state, None, padding)
    }

    /// [`GpuRnn::forward_padded`] from an initial state and, for an LSTM, an initial cell state
    /// (*N* × *M*, zeros when `None`); the cell state stays on the GPU between chunks like the
    /// state does.
    ///
    /// # Errors
    /// As [`GpuRnn::forward_padded`] and [`SimpleRnn::check_initial_cell`].
    pub fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        initial_cell: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        let inner = &*self.ctx.inner;
        inner.check_alive()?;
        self.layer
            .check_padded_input(&input, initial_state.as_ref(), &padding)?;
        self.layer
            .check_initial_cell(input.dim().0, initial_cell.as_ref())?;
        let (n, t, d) = input.dim();
        let gates = self.layer.cell().gates();
        let chunk = plan(n, t, d, self.layer.units(), gates, &plan_limits(inner))?;
        let schedule = self.layer.schedule(t, padding);

        let mut workspace = self.take_workspace(chunk)?;
        let states = (initial_state, initial_cell);
        let result = self.run_chunks(&mut workspace, chunk, input, states, &schedule);
        // A workspace that saw an error may hold a mapped buffer; drop it rather than reuse it.
        // Past MAX_IDLE_WORKSPACES the GPU memory goes back: a burst of concurrent callers does
        // not keep its buffers for the model's lifetime.
        if result.is_ok() {
            let mut idle = self.workspaces.lock().map_err(poisoned)?;
            if idle.len() < MAX_IDLE_WORKSPACES {
                idle.push(workspace);
            }
        }
        result
    }

    /// Columns of the input projection: *G*·*M*.
    fn gate_columns(&self) -> usize {
        self.layer.cell().gates() * self.layer.units()
    }

    fn run_chunks(
        &self,
        ws: &mut Workspace,
        chunk: ChunkPlan,
        input: ArrayView3<'_, f32>,
        (initial_state, initial_cell): (Option<ArrayView2<'_, f32>>, Option<ArrayView2<'_, f32>>),
        schedule: &Schedule<'_>,
    ) -> Result<RnnOutput> {
        let inner = &*self.ctx.inner;
        let (n, t, d) = input.dim();
        // h and the output are `w` wide (P under a projection), c is M wide.
        let (m, w) = (self.layer.units(), self.layer.state_size());
        let config = *self.layer.config();
        let input = input.as_standard_layout();
        let mut sequences = config
            .return_sequences
            .then(|| Array3::<f32>::zeros((n, t, w)));
        let mut final_state = Array2::<f32>::zeros((n, w));
        let has_cell = self.layer.cell().has_cell_state();
        let mut final_cell = has_cell.then(|| Array2::<f32>::zeros((n, m)));

        for b0 in (0..n).step_by(chunk.batch) {
            let nb = chunk.batch.min(n - b0);
            let h0 = state_rows(initial_state.as_ref(), b0..b0 + nb, w);
            inner
                .queue
                .write_buffer(&ws.state[0], 0, bytemuck::cast_slice(&h0));
            if let Some(gated) = &ws.gated {
                let c0 = state_rows(initial_cell.as_ref(), b0..b0 + nb, m);
                inner
                    .queue
                    .write_buffer(&gated.cell, 0, bytemuck::cast_slice(&c0));
            }
            let mut current = 0;

            for s0 in (0..t).step_by(chunk.steps) {
                let ns = chunk.steps.min(t - s0);
                let last_chunk = s0 + ns == t;

                // Time-major input: row (s, b) is batch row b0 + b at processing step s0 + s;
                // padded steps read zeros and are marked 0 in the mask.
                let mut x: Vec<f32> = Vec::with_capacity(ns * nb * d);
                let mut mask: Vec<u32> = Vec::with_capacity(ns * nb);
                for step in s0..s0 + ns {
                    for b in b0..b0 + nb {
                        match schedule.input_time(b, step) {
                            Some(time) => {
                                x.extend(input.slice(s![b, time, ..]).iter());
                                mask.push(1);
                            }
                            None => {
                                x.extend(std::iter::repeat_n(0.0, d));
                                mask.push(0);
                            }
                        }
                    }
                }
                inner.queue.write_buffer(&ws.x, 0, bytemuck::cast_slice(&x));
                if schedule.has_padding() {
                    inner
                        .queue
                        .write_buffer(&ws.mask, 0, bytemuck::cast_slice(&mask));
                }
                self.write_params(ws, nb, ns, schedule);

                let scope = ErrorScope::push(&inner.device);
                let mut encoder =
                    inner
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("rnn.forward"),
                        });
                current = self.encode_chunk(&mut encoder, ws, nb, ns, current);

                let seq_bytes = if config.return_sequences {
                    (ns * nb * w * 4) as u64
                } else {
                    0
                };
                let state_bytes = (nb * w * 4) as u64;
                let cell_bytes = (nb * m * 4) as u64;
                if seq_bytes > 0 {
                    encoder.copy_buffer_to_buffer(&ws.sequence, 0, &ws.readback, 0, seq_bytes);
                }
                // The last chunk also reads back h and, for an LSTM, c after it.
                let mut read_bytes = seq_bytes;
                if last_chunk {
                    encoder.copy_buffer_to_buffer(
                        &ws.state[current],
                        0,
                        &ws.readback,
                        seq_bytes,
                        state_bytes,
                    );
                    read_bytes += state_bytes;
                    if let (true, Some(gated)) = (has_cell, &ws.gated) {
                        encoder.copy_buffer_to_buffer(
                            &gated.cell,
                            0,
                            &ws.readback,
                            read_bytes,
                            cell_bytes,
                        );
                        read_bytes += cell_bytes;
                    }
                }
                inner.queue.submit([encoder.finish()]);
                let values = if read_bytes > 0 {
                    read_back(inner, &ws.readback, read_bytes)?
                } else {
                    Vec::new()
                };
                pollster::block_on(scope.pop())?;
                inner.check_alive()?;

                if let Some(seq) = sequences.as_mut() {
                    for s in 0..ns {
                        for b in 0..nb {
                            let at = (s * nb + b) * w;
                            let position = schedule.output_position(b0 + b, s0 + s);
                            seq.slice_mut(s![b0 + b, position, ..])
                                .iter_mut()
                                .zip(&values[at..at + w])
                                .for_each(|(o, v)| *o = *v);
                        }
                    }
                }
                if last_chunk {
                    let at = (seq_bytes / 4) as usize;
                    let state = &values[at..at + nb * w];
                    final_state
                        .slice_mut(s![b0..b0 + nb, ..])
                        .iter_mut()
                        .zip(state)
                        .for_each(|(o, v)| *o = *v);
                    if let Some(final_cell) = final_cell.as_mut() {
                        let cell = &values[at + nb * w..at + nb * (w + m)];
                        final_cell
                            .slice_mut(s![b0..b0 + nb, ..])
                            .iter_mut()
                            .zip(cell)
                            .for_each(|(o, v)| *o = *v);
                    }
                }
            }
        }
        let mut out = schedule.finish(sequences, final_state);
        out.final_cell = final_cell;
        Ok(out)
    }

    /// Encodes the projection and `ns` steps; returns which state buffer holds the last state.
    fn encode_chunk(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        ws: &Workspace,
        nb: usize,
        ns: usize,
        current: usize,
    ) -> usize {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("rnn.chunk"),
            timestamp_writes: None,
        });
        self.encode_steps(&mut pass, &ws.bindings, nb, ns, current)
    }

    /// Encodes the projection and `ns` steps over `nb` rows into `pass`, reading the state from
    /// `bindings`' state buffer `current`; returns which state buffer holds the last state (as
    /// [`GpuRnn::final_state_index`] says beforehand).
    pub(crate) fn encode_steps(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bindings: &ChunkBindings,
        nb: usize,
        ns: usize,
        current: usize,
    ) -> usize {
        let gated_persistent = self.gated_persistent_for(nb);
        self.encode_steps_with(pass, bindings, (nb, ns, current), gated_persistent)
    }

    /// [`GpuRnn::encode_steps`] with a gated cell's persistent kernel given (or `None`: the
    /// fused step), as [`GpuRnn::gated_persistent_if`] returns it.
    fn encode_steps_with(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bindings: &ChunkBindings,
        (nb, ns, mut current): (usize, usize, usize),
        gated_persistent: Option<(&(u32, wgpu::ComputePipeline), usize)>,
    ) -> usize {
        let inner = &*self.ctx.inner;
        let (d, m) = (self.layer.input_dim(), self.layer.units());
        let row_softmax = self.layer.config().activation.is_row_wise();
        Projection::new(inner, ns * nb, d, self.gate_columns()).encode(
            inner,
            pass,
            &bindings.projection,
            bindings.params_stride,
        );

        let most = u64::from(inner.limits.max_compute_workgroups_per_dimension);
        if let (Some(gated), Some(((rows, pipeline), per_dispatch))) =
            (&bindings.gated, gated_persistent)
        {
            // The dispatches' parameters follow the per-step ones; h alternates between the
            // two buffers from one dispatch to the next.
            let first = ns * self.step_slots();
            let (x, y) = persistent_workgroups(nb, *rows, most);
            pass.set_pipeline(pipeline);
            for i in 0..ns.div_ceil(per_dispatch) {
                let offset = ((first + i) as u64 * bindings.params_stride) as u32;
                pass.set_bind_group(0, &gated.step[current], &[offset]);
                pass.dispatch_workgroups(x, y, 1);
                current = 1 - current;
            }
            return current;
        }
        if let Some(gated) = &bindings.gated {
            // Per step, per phase: one fused dispatch per span of the product's depth, each
            // with its own parameter slot.
            let wide = usize::from(gated_rows_per_thread(nb) != 1);
            let (gx, gy) = gated_step_workgroups(nb, m);
            let spans: Vec<usize> = self
                .phase_depths()
                .iter()
                .map(|&k| gated_step_spans(k as u64).len())
                .collect();
            let mut slot = 0u64;
            for _ in 0..ns {
                for (phase, &count) in self.gated.iter().zip(&spans) {
                    pass.set_pipeline(&phase[wide]);
                    for _ in 0..count {
                        let offset = (slot * bindings.params_stride) as u32;
                        pass.set_bind_group(0, &gated.step[current], &[offset]);
                        pass.dispatch_workgroups(gx as u32, gy as u32, 1);
                        slot += 1;
                    }
                }
                current = 1 - current;
            }
            return current;
        }
        if let Some(((shape, pipeline), per_dispatch)) = self.persistent_for(nb) {
            // The dispatches' parameters follow the `ns` per-step ones; the state alternates
            // between the two buffers from one dispatch to the next.
            let (x, y) = persistent_workgroups(nb, shape.rows, most);
            pass.set_pipeline(pipeline);
            for i in 0..ns.div_ceil(per_dispatch) {
                let offset = ((ns + i) as u64 * bindings.params_stride) as u32;
                pass.set_bind_group(0, &bindings.step[current], &[offset]);
                pass.dispatch_workgroups(x, y, 1);
                current = 1 - current;
            }
            return current;
        }

        let (tile, step_pipeline) = self.step_tile_for(nb);
        let step_groups = tile.workgroups(nb, m, most);
        let softmax_groups = grid(nb as u64, most);
        for s in 0..ns {
            let offset = (s as u64 * bindings.params_stride) as u32;
            pass.set_pipeline(&step_pipeline);
            pass.set_bind_group(0, &bindings.step[current], &[offset]);
            pass.dispatch_workgroups(step_groups.0, step_groups.1, step_groups.2);
            current = 1 - current;
            if row_softmax {
                pass.set_pipeline(&inner.softmax);
                pass.set_bind_group(0, &bindings.softmax[current], &[offset]);
                pass.dispatch_workgroups(softmax_groups.0, softmax_groups.1, 1);
            }
        }
        current
    }

    /// Which of the two state buffers holds the last state after [`GpuRnn::encode_steps`] of
    /// `ns` steps over `nb` rows starting from buffer 0: every dispatch, persistent or per-step,
    /// writes the other buffer.
    #[cfg(feature = "keras")]
    pub(crate) fn final_state_index(&self, nb: usize, ns: usize) -> usize {
        if let Some((_, per_dispatch)) = self.gated_persistent_for(nb) {
            return ns.div_ceil(per_dispatch) % 2;
        }
        if !self.gated.is_empty() {
            return ns % 2;
        }
        match self.persistent_for(nb) {
            Some((_, per_dispatch)) => ns.div_ceil(per_dispatch) % 2,
            None => ns % 2,
        }
    }

    /// The persistent kernel, and the most steps one of its dispatches runs, when the strategy
    /// picks it for a chunk of `nb` rows.
    pub(crate) fn persistent_for(
        &self,
        nb: usize,
    ) -> Option<(&(PersistentShape, wgpu::ComputePipeline), usize)> {
        let persistent = self.persistent.as_ref()?;
        match self.step_choice(nb) {
            StepChoice::Persistent => Some((persistent, self.persistent_steps(nb)?)),
            StepChoice::Tiled(_) => None,
        }
    }

    /// The per-step tile and its pipeline for a chunk of `nb` rows, when the persistent kernel
    /// does not run it.
    fn step_tile_for(&self, nb: usize) -> (StepTile, wgpu::ComputePipeline) {
        match self.step_choice(nb) {
            StepChoice::Tiled(tile) => self.plans.pipeline(&self.ctx.inner, &self.layer, tile),
            StepChoice::Persistent => self.plans.fallback(),
        }
    }

    /// The most steps one persistent dispatch over `nb` rows runs, when the kernel was built and
    /// runs at least one.
    pub(crate) fn persistent_steps(&self, nb: usize) -> Option<usize> {
        let (shape, _) = self.persistent.as_ref()?;
        let row_wise = self.layer.config().activation.is_row_wise();
        let steps = persistent_steps_per_dispatch(self.layer.units(), *shape, row_wise, nb);
        (steps > 0).then_some(steps as usize)
    }

    /// How the steps of a chunk of `nb` rows run, decided on the first chunk of that size and
    /// kept for the model's life, so that every part of a forward agrees (see
    /// [`crate::gpu::auto`]).
    pub(crate) fn step_choice(&self, nb: usize) -> StepChoice {
        self.plans.choice(self, nb)
    }

    /// The persistent kernel and its layout, when it was built for this layer.
    pub(crate) fn persistent_kernel(&self) -> Option<&(PersistentShape, wgpu::ComputePipeline)> {
        self.persistent.as_ref()
    }

    /// The layer's recurrent kernel on the device (U, *M* × *G*·*M*).
    pub(crate) fn recurrent_kernel_buffer(&self) -> &wgpu::Buffer {
        &self.recurrent_kernel
    }

    /// The persistent gated kernel, and the most steps one of its dispatches runs, when the
    /// strategy picks it for a chunk of `nb` rows: always under [`StepStrategy::Persistent`]
    /// (where it runs the layer), never under the per-step strategies, and under
    /// [`StepStrategy::Auto`] when it was the faster of the two on this device
    /// ([`crate::gpu::auto`]).
    pub(crate) fn gated_persistent_for(
        &self,
        nb: usize,
    ) -> Option<(&(u32, wgpu::ComputePipeline), usize)> {
        self.gated_persistent.as_ref()?;
        let persistent = match self.ctx.inner.options.strategy {
            StepStrategy::Persistent => true,
            StepStrategy::Auto => self.step_choice(nb) == StepChoice::Persistent,
            _ => false,
        };
        self.gated_persistent_if(nb, persistent)
    }

    /// The persistent gated kernel and its steps per dispatch when `persistent` and it runs a
    /// chunk of `nb` rows.
    pub(crate) fn gated_persistent_if(
        &self,
        nb: usize,
        persistent: bool,
    ) -> Option<(&(u32, wgpu::ComputePipeline), usize)> {
        let kernel = self.gated_persistent.as_ref().filter(|_| persistent)?;
        let (m, cell) = (self.layer.units(), self.layer.cell());
        let phases = if cell == Cell::GruResetBefore { 2 } else { 1 };
        let per_dispatch =
            gated_persistent_steps_per_dispatch(m, cell.gates(), phases, kernel.0, nb) as usize;
        (per_dispatch > 0).then_some((kernel, per_dispatch))
    }

    /// Runs `steps` steps of a gated cell over `nb` rows on scratch buffers, on the persistent
    /// kernel or the fused step, and waits for them: the wall time ([`crate::gpu::auto`]).
    ///
    /// # Errors
    /// [`RnnError::DeviceLimit`] when the scratch buffers do not fit; [`RnnError::Gpu`] when the
    /// device fails.
    pub(crate) fn time_gated_steps(
        &self,
        nb: usize,
        steps: usize,
        persistent: bool,
    ) -> Result<std::time::Duration> {
        let inner = &*self.ctx.inner;
        let ws = self.create_workspace(ChunkPlan { batch: nb, steps })?;
        let run = self.gated_persistent_if(nb, persistent);
        let projection = Projection::new(
            inner,
            steps * nb,
            self.layer.input_dim(),
            self.gate_columns(),
        );
        inner
            .queue
            .write_buffer(&ws.dims, 0, &projection.params_bytes(ws.params_stride));
        let per_dispatch = run.map(|(_, per)| per);
        let bytes = self.step_params_bytes_with(nb, steps, ws.params_stride, 0, per_dispatch);
        inner.queue.write_buffer(&ws.params, 0, &bytes);
        crate::gpu::auto::timed_pass(inner, "rnn.auto.gated", |pass| {
            self.encode_steps_with(pass, &ws.bindings, (nb, steps, 0), run);
            Ok(())
        })
    }

    fn write_params(&self, ws: &Workspace, nb: usize, ns: usize, schedule: &Schedule<'_>) {
        let inner = &*self.ctx.inner;
        let projection =
            Projection::new(inner, ns * nb, self.layer.input_dim(), self.gate_columns());
        inner
            .queue
            .write_buffer(&ws.dims, 0, &projection.params_bytes(ws.params_stride));
        let order = if schedule.has_padding() {
            READS_MASK
        } else {
            0
        } | if schedule.padded_output_is_state() {
            PADDED_OUTPUT_IS_STATE
        } else {
            0
        };
        let bytes = self.step_params_bytes(nb, ns, ws.params_stride, order);
        inner.queue.write_buffer(&ws.params, 0, &bytes);
    }

    /// The uniform bytes of `ns` steps over `nb` rows, one [`StepParams`] every `stride` bytes,
    /// then, when the persistent kernel runs them, one for each of its dispatches: at most
    /// [`GpuRnn::params_slots`] in all. `order` holds the mask and direction flags
    /// ([`READS_MASK`], [`PADDED_OUTPUT_IS_STATE`], [`REVERSE_TIME`], [`FLIP_OUTPUT`]); the
    /// sequence and softmax flags follow from the layer.
    pub(crate) fn step_params_bytes(
        &self,
        nb: usize,
        ns: usize,
        stride: u64,
        order: u32,
    ) -> Vec<u8> {
        let gated_per_dispatch = self.gated_persistent_for(nb).map(|(_, per)| per);
        self.step_params_bytes_with(nb, ns, stride, order, gated_per_dispatch)
    }

    /// [`GpuRnn::step_params_bytes`] with a gated cell's persistent steps per dispatch given
    /// (`None`: the fused step).
    fn step_params_bytes_with(
        &self,
        nb: usize,
        ns: usize,
        stride: u64,
        order: u32,
        gated_per_dispatch: Option<usize>,
    ) -> Vec<u8> {
        let config = self.layer.config();
        let flags = match (config.return_sequences, config.activation.is_row_wise()) {
            (false, _) => 0,
            (true, false) => STEP_WRITES_SEQUENCE,
            (true, true) => SOFTMAX_WRITES_SEQUENCE,
        } | if config.activation == crate::Activation::LogSoftmax {
            SOFTMAX_TAKES_LOG
        } else {
            0
        } | order;
        // The persistent kernel stores the sequence itself, whatever the activation.
        let persistent_flags = order
            | if config.return_sequences {
                STEP_WRITES_SEQUENCE
            } else {
                0
            };
        let m = self.layer.units();
        let step = |step: usize, count: usize, flags: u32| StepParams {
            n: nb as u32,
            m: m as u32,
            step: step as u32,
            flags,
            t_len: ns as u32,
            count: count as u32,
            k_begin: 0,
            k_end: m as u32,
        };
        if !self.gated.is_empty() {
            // One slot per step, phase and span of the phase's product.
            let spans: Vec<(u64, u64)> = self
                .phase_depths()
                .iter()
                .flat_map(|&k| gated_step_spans(k as u64))
                .collect();
            let mut slots: Vec<StepParams> = (0..ns)
                .flat_map(|s| {
                    spans.iter().map(move |&(k_begin, k_end)| StepParams {
                        k_begin: k_begin as u32,
                        k_end: k_end as u32,
                        ..step(s, 1, flags)
                    })
                })
                .collect();
            // Then one per persistent dispatch.
            if let Some(per_dispatch) = gated_per_dispatch {
                slots.extend(
                    (0..ns)
                        .step_by(per_dispatch)
                        .map(|s| step(s, per_dispatch.min(ns - s), flags)),
                );
            }
            return slot_bytes(&slots, stride);
        }
        let mut slots: Vec<StepParams> = (0..ns).map(|s| step(s, 1, flags)).collect();
        if let Some((_, per_dispatch)) = self.persistent_for(nb) {
            slots.extend(
                (0..ns)
                    .step_by(per_dispatch)
                    .map(|s| step(s, per_dispatch.min(ns - s), persistent_flags)),
            );
        }
        slot_bytes(&slots, stride)
    }

    /// Parameter slots [`GpuRnn::step_params_bytes`] fills at most for `ns` steps: one per step
    /// and one per persistent dispatch, of which there are no more than steps; for a gated
    /// cell one per step and span of its product, and the persistent ones.
    pub(crate) fn params_slots(&self, ns: usize) -> u64 {
        ns.max(1) as u64 * (self.step_slots() as u64 + 1)
    }

    /// The depth of each phase's product for a gated cell: *M*, or for a projected LSTM *P*
    /// (the cell's product over h) then *M* (the projection's).
    fn phase_depths(&self) -> Vec<usize> {
        let (m, w) = (self.layer.units(), self.layer.state_size());
        match self.gated.len() {
            2 if self.layer.projection().is_some() => vec![w, m],
            phases => vec![m; phases],
        }
    }

    /// Parameter slots one step takes: one, or for a gated cell one per span of each phase's
    /// product.
    fn step_slots(&self) -> usize {
        self.phase_depths()
            .iter()
            .map(|&k| gated_step_spans(k as u64).len())
            .sum::<usize>()
            .max(1)
    }

    fn take_workspace(&self, chunk: ChunkPlan) -> Result<Workspace> {
        let idle = self.workspaces.lock().map_err(poisoned)?.pop();
        match idle {
            Some(ws) if ws.capacity.batch >= chunk.batch && ws.capacity.steps >= chunk.steps => {
                Ok(ws)
            }
            Some(ws) => {
                let grown = ChunkPlan {
                    batch: ws.capacity.batch.max(chunk.batch),
                    steps: ws.capacity.steps.max(chunk.steps),
                };
                // The plan keeps each of `chunk`'s buffers in bounds, but the union of two plans
                // may not be: fall back to exactly what this call needs.
                self.create_workspace(grown)
                    .or_else(|_| self.create_workspace(chunk))
            }
            None => self.create_workspace(chunk),
        }
    }

    fn create_workspace(&self, capacity: ChunkPlan) -> Result<Workspace> {
        let inner = &*self.ctx.inner;
        let limits = plan_limits(inner);
        let (d, m) = (self.layer.input_dim() as u64, self.layer.units() as u64);
        let w = self.layer.state_size() as u64;
        let gm = self.gate_columns() as u64;
        let (nb, ns) = (capacity.batch as u64, capacity.steps as u64);
        let seq_len = if self.layer.config().return_sequences {
            ns * nb * w
        } else {
            1
        };
        // The readback holds the sequence chunk, h and (LSTM) c.
        let bytes = [
            ns * nb * d,
            ns * nb * gm,
            seq_len,
            ns * nb * w + nb * (w + m),
        ]
        .map(|e| 4 * e);
        if bytes
            .iter()
            .any(|b| *b > limits.max_binding_bytes.min(limits.max_buffer_bytes))
        {
            return Err(RnnError::DeviceLimit(format!(
                "working buffers for {nb} rows × {ns} steps exceed the device's buffer limits"
            )));
        }
        let scope = ErrorScope::push(&inner.device);
        let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            inner.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let storage = U::STORAGE | U::COPY_DST | U::COPY_SRC;
        let x = buffer("rnn.input", bytes[0], storage);
        let projected = buffer("rnn.projected", bytes[1], U::STORAGE);
        let sequence = buffer("rnn.sequence", bytes[2], storage);
        let state = [
            buffer("rnn.state.0", 4 * nb * w, storage),
            buffer("rnn.state.1", 4 * nb * w, storage),
        ];
        let readback = buffer("rnn.readback", bytes[3], U::MAP_READ | U::COPY_DST);
        let mask = buffer("rnn.mask", 4 * ns * nb, U::STORAGE | U::COPY_DST);
        let params_stride = inner.params_stride();
        let params = buffer(
            "rnn.step_params",
            self.params_slots(ns as usize) * params_stride,
            U::UNIFORM | U::COPY_DST,
        );
        // Smaller chunks cut their projection into no more dispatches than the largest.
        let projection = Projection::new(inner, (ns * nb) as usize, d as usize, gm as usize);
        let dims = buffer(
            "rnn.projection_dims",
            projection.dispatch_count() as u64 * params_stride,
            U::UNIFORM | U::COPY_DST,
        );
        let gated = (!self.gated.is_empty()).then(|| GatedBuffers {
            cell: buffer("rnn.cell_state", 4 * nb * m, storage),
            partial: buffer("rnn.step_partial", 4 * nb * gm, U::STORAGE),
        });

        let bindings = self.chunk_bindings(ChunkBuffers {
            x: &x,
            projected: &projected,
            state: [&state[0], &state[1]],
            sequence: &sequence,
            params: &params,
            params_stride,
            dims: &dims,
            mask: &mask,
            gated: gated.as_ref(),
        });
        pollster::block_on(scope.pop())?;
        Ok(Workspace {
            capacity,
            x,
            mask,
            sequence,
            state,
            readback,
            params,
            params_stride,
            dims,
            gated,
            bindings,
        })
    }

    /// The bind groups of a chunk over these buffers, with this layer's weights.
    pub(crate) fn chunk_bindings(&self, buffers: ChunkBuffers<'_>) -> ChunkBindings {
        let inner = &*self.ctx.inner;
        let ChunkBuffers {
            x,
            projected,
            state,
            sequence,
            params,
            params_stride,
            dims,
            mask,
            gated,
        } = buffers;
        let params_binding = dynamic_params(params);
        let gated = gated.map(|g| GatedBindings {
            step: [0, 1].map(|i| {
                bind_group(
                    inner,
                    "rnn.gated_step.bind",
                    &inner.gated_layout,
                    &[
                        self.recurrent_kernel.as_entire_binding(),
                        projected.as_entire_binding(),
                        state[i].as_entire_binding(),
                        state[1 - i].as_entire_binding(),
                        g.cell.as_entire_binding(),
                        sequence.as_entire_binding(),
                        dynamic_params(params),
                        mask.as_entire_binding(),
                        g.partial.as_entire_binding(),
                    ],
                )
            }),
        });
        let projection = bind_group(
            inner,
            "rnn.projection.bind",
            &inner.projection_layout,
            &[
                x.as_entire_binding(),
                self.kernel.as_entire_binding(),
                self.bias.as_entire_binding(),
                projected.as_entire_binding(),
                dynamic_params(dims),
            ],
        );
        let step = [0, 1].map(|i| {
            bind_group(
                inner,
                "rnn.recurrent_step.bind",
                &inner.step_layout,
                &[
                    self.recurrent_kernel.as_entire_binding(),
                    projected.as_entire_binding(),
                    state[i].as_entire_binding(),
                    state[1 - i].as_entire_binding(),
                    sequence.as_entire_binding(),
                    params_binding.clone(),
                    mask.as_entire_binding(),
                ],
            )
        });
        let softmax = [0, 1].map(|i| {
            bind_group(
                inner,
                "rnn.softmax_rows.bind",
                &inner.softmax_layout,
                &[
                    state[i].as_entire_binding(),
                    sequence.as_entire_binding(),
                    params_binding.clone(),
                    mask.as_entire_binding(),
                ],
            )
        });
        ChunkBindings {
            projection,
            step,
            softmax,
            gated,
            params_stride,
        }
    }
}

/// The buffers a chunk's bind groups hold: the input (rows × *D*), the projection and sequence
/// output (rows × *M*), the two state buffers (*N* × *M*), the step parameters (a
/// [`StepParams`] every `params_stride` bytes), the projection's [`Dims`] and the mask.
pub(crate) struct ChunkBuffers<'a> {
    pub(crate) x: &'a wgpu::Buffer,
    pub(crate) projected: &'a wgpu::Buffer,
    pub(crate) state: [&'a wgpu::Buffer; 2],
    pub(crate) sequence: &'a wgpu::Buffer,
    pub(crate) params: &'a wgpu::Buffer,
    pub(crate) params_stride: u64,
    pub(crate) dims: &'a wgpu::Buffer,
    pub(crate) mask: &'a wgpu::Buffer,
    /// A gated cell's buffers (`None` for the simple cell).
    pub(crate) gated: Option<&'a GatedBuffers>,
}

/// The buffers only a gated cell needs: the cell state (*N* × *M*, LSTM, updated in place;
/// GRU binds it unused) and the step's partial products (*N* × *G*·*M*: the sums of a product
/// cut into spans, and a reset-before GRU's gates between its two phases).
pub(crate) struct GatedBuffers {
    pub(crate) cell: wgpu::Buffer,
    pub(crate) partial: wgpu::Buffer,
}

/// A gated cell's bind groups: `step[i]` reads `state[i]` and writes `state[1 - i]`.
pub(crate) struct GatedBindings {
    pub(crate) step: [wgpu::BindGroup; 2],
}

/// Rows × *M* buffers of workgroup memory the persistent gated kernel takes: *h* twice, then c
/// (LSTM), or z and q·h (reset-before GRU).
fn gated_state_buffers(cell: Cell) -> u64 {
    match cell {
        Cell::Lstm => 3,
        Cell::GruResetBefore => 4,
        _ => 2,
    }
}

/// `slots` as uniform bytes, one every `stride` bytes.
fn slot_bytes(slots: &[StepParams], stride: u64) -> Vec<u8> {
    let stride = stride as usize;
    let mut bytes = vec![0u8; slots.len() * stride];
    for (i, params) in slots.iter().enumerate() {
        bytes[i * stride..i * stride + DYNAMIC_PARAMS_SIZE as usize]
            .copy_from_slice(bytemuck::bytes_of(params));
    }
    bytes
}

/// A bind group of `resources` at bindings 0, 1, … in order.
pub(crate) fn bind_group(
    inner: &ContextInner,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    resources: &[wgpu::BindingResource<'_>],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: r.clone(),
        })
        .collect();
    inner.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

impl RnnForward for GpuRnn {
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
        GpuRnn::forward_states(self, input, initial_state, initial_cell, padding)
    }

    fn backend_name(&self) -> &'static str {
        "gpu"
    }
}

/// Working buffers for chunks of up to `capacity` rows and steps, with their bind groups.
struct Workspace {
    capacity: ChunkPlan,
    x: wgpu::Buffer,
    /// Per (step, row): 1 for a real step, 0 for padding (read only when the forward is padded).
    mask: wgpu::Buffer,
    sequence: wgpu::Buffer,
    state: [wgpu::Buffer; 2],
    readback: wgpu::Buffer,
    params: wgpu::Buffer,
    params_stride: u64,
    dims: wgpu::Buffer,
    gated: Option<GatedBuffers>,
    bindings: ChunkBindings,
}

/// The bind groups [`GpuRnn::encode_steps`] dispatches with, over one input, projection, pair of
/// state buffers, sequence output, step parameters and mask.
pub(crate) struct ChunkBindings {
    pub(crate) projection: wgpu::BindGroup,
    /// `step[i]` reads `state[i]` and writes `state[1 - i]`.
    pub(crate) step: [wgpu::BindGroup; 2],
    /// `softmax[i]` normalises `state[i]` in place.
    pub(crate) softmax: [wgpu::BindGroup; 2],
    /// A gated cell's bind groups.
    pub(crate) gated: Option<GatedBindings>,
    /// Bytes between consecutive steps' parameters.
    pub(crate) params_stride: u64,
}

/// A uniform buffer of parameter slots, bound one slot wide for dynamic offsets.
pub(crate) fn dynamic_params(buffer: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer,
        offset: 0,
        size: wgpu::BufferSize::new(DYNAMIC_PARAMS_SIZE),
    })
}

fn plan_limits(inner: &ContextInner) -> PlanLimits {
    PlanLimits::new(&inner.limits, inner.options.max_chunk_bytes)
}

fn standard_slice(a: &Array2<f32>) -> &[f32] {
    a.as_slice()
        .expect("SimpleRnn keeps its weights in standard layout")
}

/// Maps the first `bytes` of `buffer`, waits for the GPU, and copies them out.
pub(crate) fn read_back(
    inner: &ContextInner,
    buffer: &wgpu::Buffer,
    bytes: u64,
) -> Result<Vec<f32>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    buffer.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
        let _ = sender.send(r);
    });
    inner
        .device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| RnnError::Gpu(format!("waiting for the GPU: {e}")))?;
    receiver
        .recv()
        .map_err(|_| RnnError::Gpu("the buffer mapping was dropped".into()))?
        .map_err(|e| RnnError::Gpu(format!("mapping the readback buffer: {e}")))?;
    let values = {
        let view = buffer
            .get_mapped_range(0..bytes)
            .map_err(|e| RnnError::Gpu(format!("reading the readback buffer: {e}")))?;
        bytemuck::pod_collect_to_vec::<u8, f32>(&view)
    };
    buffer.unmap();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GpuOptions, SimpleRnnConfig};

    fn context() -> GpuContext {
        GpuContext::new_blocking(GpuOptions::default())
            .expect("GPU tests need an adapter (apt-get install mesa-vulkan-drivers)")
    }

    fn layer() -> SimpleRnn {
        let kernel = Array2::from_shape_fn((3, 8), |(i, j)| (i + j) as f32 * 0.05);
        let recurrent = Array2::from_shape_fn((8, 8), |(i, j)| (i as f32 - j as f32) * 0.02);
        SimpleRnn::new(kernel, recurrent, None, SimpleRnnConfig::default()).unwrap()
    }

    #[test]
    fn concurrent_callers_leave_a_bounded_pool_of_buffers() {
        let model = GpuRnn::new(&context(), layer()).unwrap();
        let x = Array3::<f32>::ones((2, 5, 3));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..3 {
                        model.forward(x.view(), None).unwrap();
                    }
                });
            }
        });
        let idle = model.workspaces.lock().unwrap().len();
        assert!((1..=MAX_IDLE_WORKSPACES).contains(&idle), "{idle} idle");
    }

    #[test]
    fn a_lost_device_fails_every_call_clearly_and_a_new_context_works() {
        let ctx = context();
        let model = GpuRnn::new(&ctx, layer()).unwrap();
        let x = Array3::<f32>::ones((2, 5, 3));
        let before = model.forward(x.view(), None).unwrap();
        ctx.inner.device.destroy();
        let _ = ctx.inner.device.poll(wgpu::PollType::wait_indefinitely());
        for _ in 0..2 {
            match model.forward(x.view(), None) {
                Err(RnnError::DeviceLost(message)) => {
                    assert!(message.contains("new GpuContext"), "{message}")
                }
                other => panic!("expected DeviceLost, got {other:?}"),
            }
        }
        assert!(ctx.is_lost());
        let fresh = GpuRnn::new(&context(), layer()).unwrap();
        let after = fresh.forward(x.view(), None).unwrap();
        assert_eq!(after.final_state, before.final_state);
    }

    #[test]
    fn an_escaped_error_is_reported_once_and_the_context_goes_on() {
        let ctx = context();
        let model = GpuRnn::new(&ctx, layer()).unwrap();
        *ctx.inner.uncaptured.lock().unwrap() = Some("uncaptured GPU error: test".into());
        let x = Array3::<f32>::ones((1, 4, 3));
        assert!(matches!(
            model.forward(x.view(), None),
            Err(RnnError::Gpu(_))
        ));
        assert!(model.forward(x.view(), None).is_ok());
        assert!(!ctx.is_lost());
    }
}
