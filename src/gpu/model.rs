//! A whole Keras model resident on the GPU: each input uploaded once, every tensor of the graph
//! kept in device buffers for the calls that read it, the outputs read back once, and stateful
//! layers' carried state kept on the device between calls.
//!
//! A tensor on the device is a buffer of 32-bit words (float32, int32 or 0/1 booleans) read
//! through strides, as NumPy views arrays: broadcasts, expanded axes and transposes cost
//! nothing. Sequences are stored time-major (*T* × *N* × features, the time axis's stride
//! largest), so that projections and Dense layers are one GEMM over all *T* · *N* rows and the
//! recurrent kernels read each step's rows together; masks are *T* × *N* words. The plan of an
//! input shape (`model_plan.rs`) records every kernel once and is reused by every call with
//! that shape.

use std::sync::Arc;

use ndarray::{Array2, ArrayD, IxDyn};
use wgpu::util::DeviceExt;

use crate::error::{Result, RnnError};
use crate::gpu::context::{ErrorScope, GpuContext};
use crate::gpu::model_plan::{Builder, Value};
use crate::gpu::projection::Projection;
use crate::gpu::rnn::{ChunkBindings, GpuRnn, read_back};
use crate::keras::host::{batch_norm_affine, check_ids};
use crate::keras::model::{ActivationLayer, KerasLayer, KerasModel};
use crate::keras::tensor::{DType, HostTensor};

/// The weights a model layer keeps on the device (the recurrent layers' are their
/// [`GpuRnn`]s'); layers without weights read their parameters from the model.
pub(crate) enum GpuLayer {
    Embedding {
        table: wgpu::Buffer,
        vocab: usize,
        width: usize,
    },
    Recurrent(Vec<Arc<GpuRnn>>),
    Dense {
        kernel: wgpu::Buffer,
        bias: wgpu::Buffer,
        d: usize,
        units: usize,
        /// Its PReLU activation's alpha.
        then: Option<wgpu::Buffer>,
    },
    /// An `Activation` layer: its PReLU activation's alpha.
    Activation {
        then: Option<wgpu::Buffer>,
    },
    LayerNormalization {
        gamma: Option<wgpu::Buffer>,
        beta: Option<wgpu::Buffer>,
    },
    /// The per-channel `x · inv + res` of `host::batch_norm_affine`.
    BatchNormalization {
        inv: wgpu::Buffer,
        res: wgpu::Buffer,
    },
    PRelu {
        alpha: wgpu::Buffer,
    },
    /// The kernel as the GEMM's *K*·*C* × *F* weights, and the bias (zeros without one).
    Conv1D {
        kernel: wgpu::Buffer,
        bias: wgpu::Buffer,
        /// Its PReLU activation's alpha.
        then: Option<wgpu::Buffer>,
    },
    Plain,
}

/// One piece of recorded GPU work.
pub(crate) enum Work {
    Kernel {
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: (u32, u32),
    },
    /// A GEMM (a Dense layer's), in bounded dispatches.
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
    /// A buffer copied into another (an initial state given as a tensor of the graph).
    Copy {
        from: wgpu::Buffer,
        to: wgpu::Buffer,
        bytes: u64,
    },
    /// Copies a stateful layer's final state into its carried buffer (only when stateful).
    Save {
        layer: usize,
        which: usize,
        from: wgpu::Buffer,
    },
}

/// The shape and dtype of each input: what a plan is built for.
pub(crate) type PlanKey = Vec<(DType, Vec<usize>)>;

/// Everything one set of input shapes needs, built on the first call with those shapes and
/// kept for the next ones.
pub(crate) struct Plan {
    pub key: PlanKey,
    /// Each input's buffer and the strides it is uploaded with.
    pub inputs: Vec<Value>,
    /// The first state buffer of each recurrent layer's call: (model layer, which, buffer,
    /// units).
    pub initial_states: Vec<(usize, usize, wgpu::Buffer, usize)>,
    /// The first cell-state buffer of each LSTM and GRU, zeroed by every call.
    pub initial_cells: Vec<wgpu::Buffer>,
    pub work: Vec<Work>,
    pub outputs: Vec<Value>,
    pub readback: wgpu::Buffer,
    pub readback_bytes: u64,
    /// Embeddings whose ids are a model input, checked on the host before upload: (input,
    /// vocabulary).
    pub id_checks: Vec<(usize, usize)>,
}

/// A [`KerasModel`] whose graph runs on the GPU with the data kept on the device (see the
/// module's documentation). Built by [`crate::KerasRunner`] on a GPU backend; shares the
/// recurrent layers' weights with the runner's per-layer path.
pub(crate) struct ResidentModel {
    ctx: GpuContext,
    layers: Vec<GpuLayer>,
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
        let alpha = |alpha: &ArrayD<f32>| {
            inner.upload_weights(
                "model.prelu.alpha",
                &alpha.iter().copied().collect::<Vec<_>>(),
            )
        };
        let then = |then: &Option<ActivationLayer>| match then {
            Some(ActivationLayer::PRelu { alpha: a, .. }) => Some(alpha(a)),
            _ => None,
        };
        for (index, layer) in model.layers().iter().enumerate() {
            layers.push(match layer {
                KerasLayer::Embedding { table, .. } => GpuLayer::Embedding {
                    table: inner.upload_weights("model.embedding_table", &standard(table)),
                    vocab: table.nrows(),
                    width: table.ncols(),
                },
                KerasLayer::SimpleRnn { .. } | KerasLayer::Bidirectional { .. } => {
                    GpuLayer::Recurrent(rnns[index].clone())
                }
                KerasLayer::Dense {
                    kernel,
                    bias,
                    then: t,
                    ..
                } => {
                    let (d, units) = kernel.dim();
                    let bias = match bias {
                        Some(b) => b.to_vec(),
                        None => vec![0.0; units],
                    };
                    GpuLayer::Dense {
                        kernel: inner.upload_weights("model.dense_kernel", &standard(kernel)),
                        bias: inner.upload_weights("model.dense_bias", &bias),
                        d,
                        units,
                        then: then(t),
                    }
                }
                KerasLayer::Activation { then: t, .. } => GpuLayer::Activation { then: then(t) },
                KerasLayer::LayerNormalization { gamma, beta, .. } => {
                    let upload = |a: &Option<ndarray::ArrayD<f32>>, label| {
                        a.as_ref().map(|a| {
                            inner.upload_weights(label, &a.iter().copied().collect::<Vec<_>>())
                        })
                    };
                    GpuLayer::LayerNormalization {
                        gamma: upload(gamma, "model.layer_norm.gamma"),
                        beta: upload(beta, "model.layer_norm.beta"),
                    }
                }
                KerasLayer::BatchNormalization { .. } => {
                    let (inv, res) = batch_norm_affine(layer).expect("a BatchNormalization");
                    GpuLayer::BatchNormalization {
                        inv: inner.upload_weights("model.batch_norm.inv", &inv.to_vec()),
                        res: inner.upload_weights("model.batch_norm.res", &res.to_vec()),
                    }
                }
                KerasLayer::PRelu { alpha: a, .. } => GpuLayer::PRelu { alpha: alpha(a) },
                KerasLayer::Conv1D {
                    kernel,
                    bias,
                    then: t,
                    ..
                } => {
                    let filters = kernel.dim().2;
                    let bias = match bias {
                        Some(b) => b.to_vec(),
                        None => vec![0.0; filters],
                    };
                    GpuLayer::Conv1D {
                        kernel: inner.upload_weights(
                            "model.conv1d_kernel",
                            &kernel.iter().copied().collect::<Vec<_>>(),
                        ),
                        bias: inner.upload_weights("model.conv1d_bias", &bias),
                        then: then(t),
                    }
                }
                _ => GpuLayer::Plain,
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

    /// Prepares the buffers for the inputs' shapes; false when the model cannot run resident
    /// on them (shapes the layers do not take, buffers past the device's limits or
    /// [`crate::GpuOptions::max_chunk_bytes`], too many steps, an Embedding reading a computed
    /// tensor): the caller then takes the per-layer path, which reports shape errors and chunks
    /// large work.
    ///
    /// # Errors
    /// [`RnnError::Gpu`] or [`RnnError::DeviceLost`] when the device fails.
    pub(crate) fn prepare(&mut self, model: &KerasModel, inputs: &[HostTensor]) -> Result<bool> {
        let key: PlanKey = inputs
            .iter()
            .map(|x| (x.dtype(), x.shape().to_vec()))
            .collect();
        if self.plan.as_ref().is_some_and(|p| p.key == key) {
            return Ok(true);
        }
        self.plan = None;
        let inner = &*self.ctx.inner;
        inner.check_alive()?;
        let scope = ErrorScope::push(&inner.device);
        let plan = Builder::new(inner, &self.layers).build(model, key);
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

    /// Runs the prepared plan on `inputs` ([`ResidentModel::prepare`] returned true for their
    /// shapes): one upload per input, one submission, one readback. `stateful[i]` says whether
    /// model layer `i` carries its state to the next call. Returns the model's outputs, batch
    /// first.
    ///
    /// # Errors
    /// [`RnnError::InvalidInput`] when the inputs do not match the prepared shapes or a token
    /// id is outside its Embedding's vocabulary; [`RnnError::Gpu`] or [`RnnError::DeviceLost`]
    /// when the device fails.
    pub(crate) fn run(
        &mut self,
        model: &KerasModel,
        inputs: &[HostTensor],
        stateful: &[bool],
    ) -> Result<Vec<ArrayD<f32>>> {
        let inner = &*self.ctx.inner;
        inner.check_alive()?;
        let key: PlanKey = inputs
            .iter()
            .map(|x| (x.dtype(), x.shape().to_vec()))
            .collect();
        let plan =
            self.plan.as_ref().filter(|p| p.key == key).ok_or_else(|| {
                RnnError::InvalidInput("no resident plan for these shapes".into())
            })?;
        // Token ids are checked before anything runs: the lookup kernel trusts them.
        for &(input, vocab) in &plan.id_checks {
            check_ids(inputs[input].to_i32()?.iter().copied(), vocab)?;
        }
        debug_assert_eq!(plan.inputs.len(), model.input_count());
        for (value, x) in plan.inputs.iter().zip(inputs) {
            let words = scatter(&words_of(x), &value.shape, &value.strides);
            inner
                .queue
                .write_buffer(&value.buffer, 0, bytemuck::cast_slice(&words));
        }
        let n = inputs[0].shape()[0];
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
                Work::Copy { from, to, bytes } => {
                    drop(pass.take());
                    encoder.copy_buffer_to_buffer(from, 0, to, 0, *bytes);
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
        let words: &[u32] = bytemuck::cast_slice(&values);
        let mut outputs = Vec::with_capacity(plan.outputs.len());
        let mut at = 0;
        for out in &plan.outputs {
            let len = (out.buffer.size() / 4) as usize;
            outputs.push(gather(&words[at..at + len], out));
            at += len;
        }
        Ok(outputs)
    }
}

pub(crate) fn begin_pass(encoder: &mut wgpu::CommandEncoder) -> wgpu::ComputePass<'static> {
    encoder
        .begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("model.graph"),
            timestamp_writes: None,
        })
        .forget_lifetime()
}

pub(crate) fn state_usage() -> wgpu::BufferUsages {
    use wgpu::BufferUsages as U;
    U::STORAGE | U::COPY_SRC | U::COPY_DST
}

fn standard(a: &Array2<f32>) -> Vec<f32> {
    a.iter().copied().collect()
}

/// A host tensor's values as the device's 32-bit words, in standard order.
fn words_of(x: &HostTensor) -> Vec<u32> {
    match x {
        HostTensor::F32(a) => a.iter().map(|v| v.to_bits()).collect(),
        HostTensor::I32(a) => a.iter().map(|v| *v as u32).collect(),
        HostTensor::Bool(a) => a.iter().map(|v| u32::from(*v)).collect(),
    }
}

/// Standard-order `data` placed where `strides` put each element (a packed layout).
fn scatter(data: &[u32], shape: &[usize], strides: &[usize]) -> Vec<u32> {
    let mut out = vec![0u32; data.len()];
    for (i, &v) in data.iter().enumerate() {
        out[offset_of(i, shape, strides)] = v;
    }
    out
}

/// Where standard-order element `i` of `shape` is under `strides`.
fn offset_of(mut i: usize, shape: &[usize], strides: &[usize]) -> usize {
    let mut at = 0;
    for (size, stride) in shape.iter().zip(strides).rev() {
        at += (i % size) * stride;
        i /= size;
    }
    at
}

/// An output's words read through its strides, as float32 (booleans 0 and 1).
fn gather(words: &[u32], value: &Value) -> ArrayD<f32> {
    let count: usize = value.shape.iter().product();
    let data = (0..count)
        .map(|i| {
            let raw = words[offset_of(i, &value.shape, &value.strides)];
            match value.dtype {
                DType::F32 => f32::from_bits(raw),
                DType::I32 => raw as i32 as f32,
                DType::Bool => f32::from(u8::from(raw != 0)),
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(&value.shape), data).expect("one value per element")
}
