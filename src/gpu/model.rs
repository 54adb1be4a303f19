//! A whole Keras model resident on the GPU: the input uploaded once, every layer's output kept in
//! device buffers for the next layer, the model's output read back once, and stateful layers'
//! carried state kept on the device between calls.
//!
//! Every intermediate is time-major (*T* × *N* × features, or *N* × features after a recurrent
//! layer without `return_sequences`), so that projections and Dense layers are one GEMM over all
//! *T* · *N* rows, and masks are *T* × *N* `u32`s (1 real, 0 padded).

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use ndarray::{Array2, ArrayD, IxDyn};
use wgpu::util::DeviceExt;

use crate::activation::Activation;
use crate::error::{Result, RnnError};
use crate::gpu::context::{ContextInner, ErrorScope, GpuContext};
use crate::gpu::plan::{
    DISPATCH_FMA_BUDGET, grid, masking_fits, persistent_workgroups, row_kernel_fits,
    step_workgroups,
};
use crate::gpu::projection::Projection;
use crate::gpu::rnn::{
    ChunkBindings, ChunkBuffers, FLIP_OUTPUT, GatedBuffers, GpuRnn, PADDED_OUTPUT_IS_STATE,
    READS_MASK, REVERSE_TIME, bind_group, dynamic_params, read_back,
};
use crate::keras::{KerasLayer, KerasModel, MergeMode};

/// The most steps one resident call runs; longer inputs take the per-layer path, which chunks
/// them (the step parameters of a call are one uniform buffer, and one submission should not
/// hold tens of thousands of dispatches).
const MAX_RESIDENT_STEPS: usize = 4096;

/// Threads of the element-wise model kernels (embedding, merge).
const ELEMENT_WG: u64 = 256;
/// Threads of the masking kernel.
const MASKING_WG: u64 = 64;

/// The 16-byte parameters of the model kernels (`Params` in embedding.wgsl, masking.wgsl,
/// rows_activation.wgsl and merge.wgsl; each names the four words its own way).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params([u32; 4]);

/// The model's input for one resident call.
pub(crate) enum ResidentInput<'a> {
    /// Token ids, *N* × *T* batch-major, already checked against the vocabulary.
    Ids { ids: &'a [u32], n: usize, t: usize },
    /// Features, *N* × *T* × *D* batch-major.
    Features {
        x: &'a [f32],
        n: usize,
        t: usize,
        d: usize,
    },
}

impl ResidentInput<'_> {
    fn key(&self) -> (bool, usize, usize, usize) {
        match *self {
            ResidentInput::Ids { n, t, .. } => (true, n, t, 0),
            ResidentInput::Features { n, t, d, .. } => (false, n, t, d),
        }
    }
}

/// One model layer as the resident path runs it.
enum Layer {
    Embedding {
        table: wgpu::Buffer,
        width: usize,
        mask_zero: bool,
    },
    Masking {
        mask_value: f32,
    },
    /// A SimpleRNN (one layer, no merge) or a Bidirectional (two, and how they merge).
    Recurrent {
        rnns: Vec<Arc<GpuRnn>>,
        merge: Option<MergeMode>,
    },
    Dense {
        kernel: wgpu::Buffer,
        bias: wgpu::Buffer,
        d: usize,
        units: usize,
        activation: Activation,
    },
    Activation(Activation),
    Identity,
}

/// A value flowing between layers on the device: `rows` rows of `width` floats, time-major; `t`
/// is `Some(T)` for a sequence (rows = *T* · *N*) and `None` for one row per sequence.
#[derive(Clone)]
struct Value {
    buffer: wgpu::Buffer,
    t: Option<usize>,
    width: usize,
}

/// One piece of recorded GPU work.
enum Work {
    Kernel {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: (u32, u32),
    },
    /// A Dense layer's GEMM, in bounded dispatches.
    Projection {
        projection: Projection,
        bind_group: wgpu::BindGroup,
    },
    Recurrent {
        rnn: Arc<GpuRnn>,
        bindings: ChunkBindings,
        n: usize,
        t: usize,
        final_index: usize,
    },
    /// Copies a stateful layer's final state into its carried buffer (only when stateful).
    Save {
        layer: usize,
        which: usize,
        from: wgpu::Buffer,
    },
}

/// Everything one input shape needs, built on the first call with that shape and kept for the
/// next ones.
struct Plan {
    key: (bool, usize, usize, usize),
    input: wgpu::Buffer,
    /// The first state buffer of each recurrent layer: (model layer, which, buffer, units).
    initial_states: Vec<(usize, usize, wgpu::Buffer, usize)>,
    /// The first cell-state buffer of each LSTM and GRU, zeroed by every call.
    initial_cells: Vec<wgpu::Buffer>,
    work: Vec<Work>,
    outputs: Vec<Value>,
    readback: wgpu::Buffer,
    readback_bytes: u64,
}

/// A [`KerasModel`] whose layers all run on the GPU with the data kept on the device (see the
/// module's documentation). Built by [`crate::KerasRunner`] on a GPU backend; shares the
/// recurrent layers' weights with the runner's per-layer path.
pub(crate) struct ResidentModel {
    ctx: GpuContext,
    layers: Vec<Layer>,
    /// The carried state of each recurrent layer of each model layer: buffer and batch size.
    carried: Vec<Vec<Option<(wgpu::Buffer, usize)>>>,
    plan: Option<Plan>,
}

impl ResidentModel {
    /// Uploads the weights of the layers that are not recurrent (`rnns` holds the recurrent
    /// ones, per model layer, already built).
    ///
    /// # Errors
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    pub(crate) fn new(
        ctx: &GpuContext,
        model: &KerasModel,
        rnns: &[Vec<Arc<GpuRnn>>],
    ) -> Result<Self> {
        let inner = &*ctx.inner;
        inner.check_alive()?;
        let scope = ErrorScope::push(&inner.device);
        let mut layers = Vec::new();
        for (index, layer) in model.layers().iter().enumerate() {
            layers.push(match layer {
                KerasLayer::Embedding {
                    table, mask_zero, ..
                } => Layer::Embedding {
                    table: inner.upload_weights("model.embedding_table", &standard(table)),
                    width: table.ncols(),
                    mask_zero: *mask_zero,
                },
                KerasLayer::Masking { mask_value, .. } => Layer::Masking {
                    mask_value: *mask_value,
                },
                KerasLayer::SimpleRnn { .. } => Layer::Recurrent {
                    rnns: rnns[index].clone(),
                    merge: None,
                },
                KerasLayer::Bidirectional { merge, .. } => Layer::Recurrent {
                    rnns: rnns[index].clone(),
                    merge: Some(*merge),
                },
                KerasLayer::Dense {
                    kernel,
                    bias,
                    activation,
                    ..
                } => {
                    let (d, units) = kernel.dim();
                    let bias = match bias {
                        Some(b) => b.to_vec(),
                        None => vec![0.0; units],
                    };
                    Layer::Dense {
                        kernel: inner.upload_weights("model.dense_kernel", &standard(kernel)),
                        bias: inner.upload_weights("model.dense_bias", &bias),
                        d,
                        units,
                        activation: *activation,
                    }
                }
                KerasLayer::Activation { activation, .. } => Layer::Activation(*activation),
                KerasLayer::Dropout { .. } => Layer::Identity,
            });
        }
        pollster::block_on(scope.pop())?;
        let carried = rnns.iter().map(|r| vec![None; r.len()]).collect();
        Ok(ResidentModel {
            ctx: ctx.clone(),
            layers,
            carried,
            plan: None,
        })
    }

    /// Prepares the buffers for `input`'s shape; false when the model cannot run resident on it
    /// (a shape the layers do not chain on, buffers past the device's limits or
    /// [`crate::GpuOptions::max_chunk_bytes`], too many steps): the caller then takes the
    /// per-layer path, which reports shape errors and chunks large work.
    ///
    /// # Errors
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    pub(crate) fn prepare(&mut self, input: &ResidentInput<'_>) -> Result<bool> {
        let key = input.key();
        if self.plan.as_ref().is_some_and(|p| p.key == key) {
            return Ok(true);
        }
        self.plan = None;
        let inner = &*self.ctx.inner;
        inner.check_alive()?;
        let scope = ErrorScope::push(&inner.device);
        let plan = Builder::new(inner).build(&self.layers, key);
        pollster::block_on(scope.pop())?;
        self.plan = plan;
        Ok(self.plan.is_some())
    }

    /// The batch size recurrent layer `which` of model layer `layer` holds state for, if any.
    pub(crate) fn carried_batch(&self, layer: usize, which: usize) -> Option<usize> {
        // usize::MAX marks a buffer made for a call that did not complete: it holds nothing.
        self.carried[layer][which]
            .as_ref()
            .map(|(_, n)| *n)
            .filter(|n| *n != usize::MAX)
    }

    /// Sets a layer's carried state from the host (*N* × *M*).
    pub(crate) fn set_carried(&mut self, layer: usize, which: usize, state: &Array2<f32>) {
        let buffer = self
            .ctx
            .inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("model.carried_state"),
                contents: bytemuck::cast_slice(&standard(state)),
                usage: state_usage(),
            });
        self.carried[layer][which] = Some((buffer, state.nrows()));
    }

    /// Reads every carried state back to the host and forgets it on the device: for a call that
    /// takes the per-layer path after resident ones. One readback per stateful layer.
    ///
    /// # Errors
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    #[allow(clippy::type_complexity)]
    pub(crate) fn take_carried(&mut self) -> Result<Vec<(usize, usize, Array2<f32>)>> {
        let inner = &*self.ctx.inner;
        let mut states = Vec::new();
        for (layer, per_layer) in self.carried.iter_mut().enumerate() {
            for (which, slot) in per_layer.iter_mut().enumerate() {
                let Some((buffer, n)) = slot.take().filter(|(_, n)| *n != usize::MAX) else {
                    continue;
                };
                let bytes = buffer.size();
                let readback = inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("model.state_readback"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                let scope = ErrorScope::push(&inner.device);
                let mut encoder =
                    inner
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                            label: Some("model.take_state"),
                        });
                encoder.copy_buffer_to_buffer(&buffer, 0, &readback, 0, bytes);
                inner.queue.submit([encoder.finish()]);
                let values = read_back(inner, &readback, bytes)?;
                pollster::block_on(scope.pop())?;
                let m = values.len() / n;
                let state = Array2::from_shape_vec((n, m), values).expect("N × M values");
                states.push((layer, which, state));
            }
        }
        Ok(states)
    }

    /// Forgets every carried state.
    pub(crate) fn reset_state(&mut self) {
        for layer in &mut self.carried {
            layer.iter_mut().for_each(|s| *s = None);
        }
    }

    /// Runs the prepared plan on `input` ([`ResidentModel::prepare`] returned true for its
    /// shape): one upload, one submission, one readback. `stateful[i]` says whether model
    /// layer `i` carries its state to the next call. Returns the model's outputs, batch first.
    ///
    /// # Errors
    /// [`RnnError::InvalidInput`] when `input` does not match the prepared shape;
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    pub(crate) fn run(
        &mut self,
        input: &ResidentInput<'_>,
        stateful: &[bool],
    ) -> Result<Vec<ArrayD<f32>>> {
        let inner = &*self.ctx.inner;
        inner.check_alive()?;
        let plan = self
            .plan
            .as_ref()
            .filter(|p| p.key == input.key())
            .ok_or_else(|| RnnError::InvalidInput("no resident plan for this shape".into()))?;
        let (n, t) = (plan.key.1, plan.key.2);
        match *input {
            ResidentInput::Ids { ids, .. } => {
                let time_major = transpose_to_time_major(ids, n, t, 1);
                inner
                    .queue
                    .write_buffer(&plan.input, 0, bytemuck::cast_slice(&time_major));
            }
            ResidentInput::Features { x, d, .. } => {
                let time_major = transpose_to_time_major(x, n, t, d);
                inner
                    .queue
                    .write_buffer(&plan.input, 0, bytemuck::cast_slice(&time_major));
            }
        }
        // Stateful layers that hold no state yet get a carried buffer to save into.
        for &(layer, which, _, m) in &plan.initial_states {
            if stateful[layer] && self.carried[layer][which].is_none() {
                let buffer = inner.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("model.carried_state"),
                    size: (4 * n * m) as u64,
                    usage: state_usage(),
                    mapped_at_creation: false,
                });
                self.carried[layer][which] = Some((buffer, usize::MAX));
            }
        }

        let scope = ErrorScope::push(&inner.device);
        let mut encoder = inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("model.forward"),
            });
        for (layer, which, h0, _) in &plan.initial_states {
            match &self.carried[*layer][*which] {
                // A fresh carried buffer (batch usize::MAX) holds nothing yet: start from zeros.
                Some((state, held)) if *held != usize::MAX => {
                    encoder.copy_buffer_to_buffer(state, 0, h0, 0, state.size());
                }
                _ => encoder.clear_buffer(h0, 0, None),
            }
        }
        for c0 in &plan.initial_cells {
            encoder.clear_buffer(c0, 0, None);
        }
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for work in &plan.work {
            match work {
                Work::Save { layer, which, from } => {
                    // Copies happen outside compute passes.
                    drop(pass.take());
                    if stateful[*layer]
                        && let Some((to, _)) = &self.carried[*layer][*which]
                    {
                        encoder.copy_buffer_to_buffer(from, 0, to, 0, to.size());
                    }
                }
                Work::Kernel {
                    pipeline,
                    bind_group,
                    groups,
                } => {
                    let pass = pass.get_or_insert_with(|| begin_pass(&mut encoder));
                    pass.set_pipeline(pipeline);
                    pass.set_bind_group(0, bind_group, &[]);
                    pass.dispatch_workgroups(groups.0, groups.1, 1);
                }
                Work::Projection {
                    projection,
                    bind_group,
                } => {
                    let pass = pass.get_or_insert_with(|| begin_pass(&mut encoder));
                    projection.encode(inner, pass, bind_group, inner.params_stride());
                }
                Work::Recurrent {
                    rnn,
                    bindings,
                    n,
                    t,
                    final_index,
                } => {
                    let pass = pass.get_or_insert_with(|| begin_pass(&mut encoder));
                    let last = rnn.encode_steps(pass, bindings, *n, *t, 0);
                    debug_assert_eq!(last, *final_index, "the plan bound the final state");
                }
            }
        }
        drop(pass);
        let mut offset = 0;
        for out in &plan.outputs {
            let bytes = out.buffer.size();
            encoder.copy_buffer_to_buffer(&out.buffer, 0, &plan.readback, offset, bytes);
            offset += bytes;
        }
        inner.queue.submit([encoder.finish()]);
        let values = read_back(inner, &plan.readback, plan.readback_bytes);
        pollster::block_on(scope.pop())?;
        let values = values?;
        inner.check_alive()?;
        for (layer, per_layer) in self.carried.iter_mut().enumerate() {
            for slot in per_layer.iter_mut().flatten() {
                if stateful[layer] {
                    slot.1 = n;
                }
            }
        }

        let mut outputs = Vec::with_capacity(plan.outputs.len());
        let mut at = 0;
        for out in &plan.outputs {
            let len = (out.buffer.size() / 4) as usize;
            let data = &values[at..at + len];
            at += len;
            outputs.push(match out.t {
                Some(t) => ArrayD::from_shape_vec(
                    IxDyn(&[n, t, out.width]),
                    transpose_to_time_major(data, t, n, out.width),
                )
                .expect("T × N × width values"),
                None => ArrayD::from_shape_vec(IxDyn(&[n, out.width]), data.to_vec())
                    .expect("N × width values"),
            });
        }
        Ok(outputs)
    }
}

/// Builds a [`Plan`]: walks the layers as the host path would, allocating each output and
/// recording the kernels, and gives up (None) where the host path would fail or the device's
/// limits would be passed.
struct Builder<'a> {
    inner: &'a ContextInner,
    /// The most bytes one buffer may hold.
    max_bytes: u64,
    max_groups: u64,
    fits: bool,
    work: Vec<Work>,
    initial_states: Vec<(usize, usize, wgpu::Buffer, usize)>,
    initial_cells: Vec<wgpu::Buffer>,
    dummy: wgpu::Buffer,
}

impl<'a> Builder<'a> {
    fn new(inner: &'a ContextInner) -> Self {
        let limits = &inner.limits;
        let max_bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(inner.options.max_chunk_bytes.unwrap_or(u64::MAX));
        let dummy = inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("model.unused"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Builder {
            inner,
            max_bytes,
            max_groups: u64::from(limits.max_compute_workgroups_per_dimension),
            fits: true,
            work: Vec::new(),
            initial_states: Vec::new(),
            initial_cells: Vec::new(),
            dummy,
        }
    }

    /// A storage buffer of `floats` 4-byte values; marks the plan as not fitting when too big.
    fn buffer(&mut self, label: &str, floats: usize, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let bytes = (4 * floats.max(1)) as u64;
        if bytes > self.max_bytes {
            self.fits = false;
        }
        self.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.min(self.max_bytes),
            usage,
            mapped_at_creation: false,
        })
    }

    fn storage(&mut self, label: &str, floats: usize) -> wgpu::Buffer {
        use wgpu::BufferUsages as U;
        self.buffer(label, floats, U::STORAGE | U::COPY_SRC | U::COPY_DST)
    }

    fn uniform(&self, label: &str, words: [u32; 4]) -> wgpu::Buffer {
        self.inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::bytes_of(&Params(words)),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Workgroups for `count` items of `per_group`, spilling into y past the per-dimension limit.
    fn groups(&mut self, count: usize, per_group: u64) -> (u32, u32) {
        let (x, y) = grid((count as u64).div_ceil(per_group), self.max_groups);
        if u64::from(y) > self.max_groups {
            self.fits = false;
        }
        (x, y)
    }

    fn kernel(
        &mut self,
        pipeline: &wgpu::ComputePipeline,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32),
    ) {
        let bind_group = bind_group(
            self.inner,
            label,
            layout,
            &buffers
                .iter()
                .map(|b| b.as_entire_binding())
                .collect::<Vec<_>>(),
        );
        self.work.push(Work::Kernel {
            pipeline: pipeline.clone(),
            bind_group,
            groups,
        });
    }

    fn build(mut self, layers: &[Layer], key: (bool, usize, usize, usize)) -> Option<Plan> {
        let (ids, n, t, d) = key;
        if t > MAX_RESIDENT_STEPS {
            return None;
        }
        let starts_with_embedding = matches!(layers.first(), Some(Layer::Embedding { .. }));
        if ids != starts_with_embedding {
            return None;
        }
        let input = self.storage("model.input", n * t * d.max(1));
        let mut values = vec![Value {
            buffer: input.clone(),
            t: Some(t),
            width: d,
        }];
        let mut mask: Option<wgpu::Buffer> = None;
        for (index, layer) in layers.iter().enumerate() {
            // As on the host path, a layer takes the first of two outputs.
            let x = values.swap_remove(0);
            values = match layer {
                Layer::Embedding {
                    table,
                    width,
                    mask_zero,
                } => {
                    if index != 0 {
                        return None;
                    }
                    let out = self.storage("model.embedded", t * n * width);
                    let mask_buffer = self.storage("model.mask", t * n);
                    let params = self.uniform(
                        "model.embedding.params",
                        [(t * n) as u32, *width as u32, u32::from(*mask_zero), 0],
                    );
                    let groups = self.groups(t * n * width, ELEMENT_WG);
                    let model = &self.inner.model;
                    let (pipeline, layout) =
                        (model.embedding.clone(), model.embedding_layout.clone());
                    self.kernel(
                        &pipeline,
                        "model.embedding.bind",
                        &layout,
                        &[&input, table, &out, &mask_buffer, &params],
                        groups,
                    );
                    mask = mask_zero.then_some(mask_buffer);
                    vec![Value {
                        buffer: out,
                        t: Some(t),
                        width: *width,
                    }]
                }
                Layer::Masking { mask_value } => {
                    x.t?;
                    if !masking_fits(x.width) {
                        return None;
                    }
                    let mask_buffer = self.storage("model.mask", t * n);
                    let params = self.uniform(
                        "model.masking.params",
                        [(t * n) as u32, x.width as u32, mask_value.to_bits(), 0],
                    );
                    let groups = self.groups(t * n, MASKING_WG);
                    let model = &self.inner.model;
                    let (pipeline, layout) = (model.masking.clone(), model.masking_layout.clone());
                    self.kernel(
                        &pipeline,
                        "model.masking.bind",
                        &layout,
                        &[&x.buffer, &mask_buffer, &params],
                        groups,
                    );
                    mask = Some(mask_buffer);
                    vec![x]
                }
                Layer::Recurrent { rnns, merge } => {
                    x.t?;
                    let mut outs = Vec::with_capacity(2);
                    for (which, rnn) in rnns.iter().enumerate() {
                        let flip = which == 1;
                        outs.push(self.recurrent(
                            index,
                            which,
                            rnn,
                            &x,
                            mask.as_ref(),
                            n,
                            t,
                            flip,
                        )?);
                    }
                    let return_sequences = rnns[0].layer().config().return_sequences;
                    if !return_sequences {
                        mask = None;
                    }
                    match merge {
                        None | Some(MergeMode::Separate) => outs,
                        Some(mode) => {
                            let (a, b) = (&outs[0], &outs[1]);
                            let rows = a.t.unwrap_or(1) * n;
                            let code = match mode {
                                MergeMode::Concat => 0,
                                MergeMode::Sum => 1,
                                MergeMode::Mul => 2,
                                _ => 3,
                            };
                            let width = if code == 0 { 2 * a.width } else { a.width };
                            vec![self.merge(a, b, rows, code, 0, width, &self.dummy.clone())]
                        }
                    }
                }
                Layer::Dense {
                    kernel,
                    bias,
                    d,
                    units,
                    activation,
                } => {
                    if x.width != *d {
                        return None;
                    }
                    let rows = x.t.unwrap_or(1) * n;
                    let out = self.storage("model.dense", rows * units);
                    let projection = self.projection(rows, *d, *units);
                    let dims = self.params("model.dense.dims", &projection);
                    let bind_group = bind_group(
                        self.inner,
                        "model.dense.bind",
                        &self.inner.projection_layout,
                        &[
                            x.buffer.as_entire_binding(),
                            kernel.as_entire_binding(),
                            bias.as_entire_binding(),
                            out.as_entire_binding(),
                            dynamic_params(&dims),
                        ],
                    );
                    self.work.push(Work::Projection {
                        projection,
                        bind_group,
                    });
                    let out = Value {
                        buffer: out,
                        t: x.t,
                        width: *units,
                    };
                    self.activation(&out, n, *activation)?;
                    vec![out]
                }
                Layer::Activation(activation) => {
                    self.activation(&x, n, *activation)?;
                    vec![x]
                }
                Layer::Identity => vec![x],
            };
        }
        if !self.fits {
            return None;
        }
        let readback_bytes: u64 = values.iter().map(|v| v.buffer.size()).sum();
        let readback = self.buffer(
            "model.readback",
            (readback_bytes / 4) as usize,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        Some(Plan {
            key,
            input,
            initial_states: self.initial_states,
            initial_cells: self.initial_cells,
            work: self.work,
            outputs: values,
            readback,
            readback_bytes,
        })
    }

    /// A projection GEMM of `rows` × `k` × `cols`; marks the plan as not fitting when its
    /// column tiles pass the workgroup limit (its rows are cut into dispatches that fit).
    fn projection(&mut self, rows: usize, k: usize, cols: usize) -> Projection {
        if (cols as u64).div_ceil(crate::gpu::plan::PROJECTION_TILE) > self.max_groups {
            self.fits = false;
        }
        Projection::new(self.inner, rows, k, cols)
    }

    /// The uniform buffer of a projection's dispatch parameters.
    fn params(&self, label: &str, projection: &Projection) -> wgpu::Buffer {
        self.inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: &projection.params_bytes(self.inner.params_stride()),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// An activation in place on `x` (nothing for linear).
    fn activation(&mut self, x: &Value, n: usize, activation: Activation) -> Option<()> {
        if activation == Activation::Linear {
            return Some(());
        }
        if !row_kernel_fits(x.width) {
            return None;
        }
        let rows = x.t.unwrap_or(1) * n;
        let pipeline = self.inner.rows_pipeline(activation).ok()?;
        let params = self.uniform(
            "model.rows_activation.params",
            [rows as u32, x.width as u32, 0, 0],
        );
        let groups = self.groups(rows, 1);
        let layout = self.inner.model.rows_layout.clone();
        self.kernel(
            &pipeline,
            "model.rows_activation.bind",
            &layout,
            &[&x.buffer, &params],
            groups,
        );
        Some(())
    }

    /// `merge.wgsl` over `rows` rows of `a` (and `b`) into a new buffer of `width` per row.
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &mut self,
        a: &Value,
        b: &Value,
        rows: usize,
        mode: u32,
        mask_offset: usize,
        width: usize,
        mask: &wgpu::Buffer,
    ) -> Value {
        let out = self.storage("model.merged", rows * width);
        let params = self.uniform(
            "model.merge.params",
            [rows as u32, a.width as u32, mode, mask_offset as u32],
        );
        let groups = self.groups(rows * a.width, ELEMENT_WG);
        let model = &self.inner.model;
        let (pipeline, layout) = (model.merge.clone(), model.merge_layout.clone());
        self.kernel(
            &pipeline,
            "model.merge.bind",
            &layout,
            &[&a.buffer, &b.buffer, &out, &params, mask],
            groups,
        );
        Value {
            buffer: out,
            t: a.t,
            width,
        }
    }

    /// One recurrent layer reading `x` (*T* × *N* × *D*) in input order; `flip` stores a
    /// sequence output in reverse processing order (Bidirectional's backward layer).
    #[allow(clippy::too_many_arguments)]
    fn recurrent(
        &mut self,
        index: usize,
        which: usize,
        rnn: &Arc<GpuRnn>,
        x: &Value,
        mask: Option<&wgpu::Buffer>,
        n: usize,
        t: usize,
        flip: bool,
    ) -> Option<Value> {
        let layer = rnn.layer();
        let config = *layer.config();
        let (d, m) = (layer.input_dim(), layer.units());
        if x.width != d {
            return None;
        }
        let gm = layer.cell().gates() * m;
        let inner = self.inner;
        let projected = self.buffer("model.projected", t * n * gm, wgpu::BufferUsages::STORAGE);
        let state = [0, 1].map(|_| self.storage("model.state", n * m));
        // Without return_sequences nothing is stored there, but it is bound read-write, so it
        // cannot be the (read-only) unused buffer bound as the mask.
        let sequence = self.storage(
            "model.sequence",
            if config.return_sequences {
                t * n * m
            } else {
                1
            },
        );
        let order = if mask.is_some() { READS_MASK } else { 0 }
            | if mask.is_some() && !config.zero_output_for_mask {
                PADDED_OUTPUT_IS_STATE
            } else {
                0
            }
            | if config.go_backwards { REVERSE_TIME } else { 0 }
            | if flip && config.return_sequences {
                FLIP_OUTPUT
            } else {
                0
            };
        let stride = inner.params_stride();
        let params = inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("model.step_params"),
                contents: &rnn.step_params_bytes(n, t, stride, order),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let projection = self.projection(t * n, d, gm);
        let dims = self.params("model.projection_dims", &projection);
        // A gated cell's cell state (cleared by every call: a stateful LSTM, whose carried cell
        // state stays on the host, does not run resident) and its step's recurrent product.
        let gated = (gm != m).then(|| GatedBuffers {
            cell: self.storage("model.cell_state", n * m),
            partial: self.buffer("model.step_partial", n * gm, wgpu::BufferUsages::STORAGE),
        });
        if let Some(g) = &gated {
            self.initial_cells.push(g.cell.clone());
        }
        // The step kernels' dispatches must fit too, in workgroups and in work.
        let most = self.max_groups;
        let (gx, gy) = step_workgroups(n, m);
        if gx > most
            || gy > most
            || (n as u64).div_ceil(most) > most
            || (n as u64).saturating_mul((gm as u64).pow(2)) > DISPATCH_FMA_BUDGET
            || (config.activation.is_row_wise() && !row_kernel_fits(m))
        {
            self.fits = false;
        }
        let persistent_rows = rnn
            .persistent_for(n)
            .map(|((shape, _), _)| shape.rows)
            .or(rnn.gated_persistent_for(n).map(|((rows, _), _)| *rows));
        if let Some(rows) = persistent_rows {
            let (px, py) = persistent_workgroups(n, rows, most);
            if u64::from(px) > most || u64::from(py) > most {
                self.fits = false;
            }
        }
        let bindings = rnn.chunk_bindings(ChunkBuffers {
            x: &x.buffer,
            projected: &projected,
            state: [&state[0], &state[1]],
            sequence: &sequence,
            params: &params,
            params_stride: stride,
            dims: &dims,
            mask: mask.unwrap_or(&self.dummy),
            gated: gated.as_ref(),
        });
        let final_index = rnn.final_state_index(n, t);
        self.work.push(Work::Recurrent {
            rnn: rnn.clone(),
            bindings,
            n,
            t,
            final_index,
        });
        let [first, second] = state;
        let last = if final_index == 0 {
            first.clone()
        } else {
            second
        };
        self.initial_states.push((index, which, first, m));
        // Saved before anything after this layer may change the state buffer in place.
        self.work.push(Work::Save {
            layer: index,
            which,
            from: last.clone(),
        });
        if config.return_sequences {
            return Some(Value {
                buffer: sequence,
                t: Some(t),
                width: m,
            });
        }
        let state_value = Value {
            buffer: last,
            t: None,
            width: m,
        };
        match mask {
            Some(mask) if config.zero_output_for_mask => {
                // Keras's last output is zeros for a sequence whose last processed step is
                // masked (`Schedule::finish`).
                let last_time = if config.go_backwards { 0 } else { t - 1 };
                let mask = mask.clone();
                Some(self.merge(&state_value, &state_value, n, 4, last_time * n, m, &mask))
            }
            _ => Some(state_value),
        }
    }
}

fn begin_pass(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'static> {
    encoder
        .begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("model.layers"),
            timestamp_writes: None,
        })
        .forget_lifetime()
}

fn state_usage() -> wgpu::BufferUsages {
    use wgpu::BufferUsages as U;
    U::STORAGE | U::COPY_SRC | U::COPY_DST
}

fn standard(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// `data` as `outer` × `inner` × `width` (row-major) transposed to `inner` × `outer` × `width`:
/// batch-major to time-major and back.
fn transpose_to_time_major<T: Copy>(
    data: &[T],
    outer: usize,
    inner: usize,
    width: usize,
) -> Vec<T> {
    let mut out = Vec::with_capacity(data.len());
    for i in 0..inner {
        for o in 0..outer {
            let at = (o * inner + i) * width;
            out.extend_from_slice(&data[at..at + width]);
        }
    }
    out
}
