//! The layers of a resident model's plan: each call recorded as kernels over device tensors
//! (see `model_plan.rs`), with the semantics `keras/host.rs` computes on the host.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::activation::Activation;
use crate::gpu::model::{GpuLayer, Work};
use crate::gpu::model_plan::{
    Builder, ELEMENT_WG, Input, Value, op, preferred_strides, reduce, standard_strides,
    time_major_strides,
};
use crate::gpu::plan::{
    DISPATCH_FMA_BUDGET, PROJECTION_TILE, persistent_workgroups, row_kernel_fits, step_workgroups,
};
use crate::gpu::projection::Projection;
use crate::gpu::rnn::{
    ChunkBuffers, FLIP_OUTPUT, GatedBuffers, GpuRnn, PADDED_OUTPUT_IS_STATE, READS_MASK,
    REVERSE_TIME, bind_group, dynamic_params,
};
use crate::keras::config::{ConvPadding, MergeKind, MergeMode};
use crate::keras::host::conv_geometry;
use crate::keras::model::{ActivationLayer, KerasLayer, KerasModel};
use crate::keras::ops::Compare;
use crate::keras::tensor::{DType, reshape_target};

/// The most steps one resident recurrent call runs; longer inputs take the per-layer path,
/// which chunks them (the step parameters of a call are one uniform buffer, and one submission
/// should not hold tens of thousands of dispatches).
const MAX_RESIDENT_STEPS: usize = 4096;

/// One call of a model layer, its tensors on the device.
pub(crate) struct LayerCall {
    /// The layer's index in [`KerasModel::layers`].
    pub index: usize,
    pub inputs: Vec<Value>,
    pub mask: Option<Value>,
    pub initial_state: Vec<Value>,
    pub input_masks: Vec<Option<Value>>,
    /// Which model input the first operand is, if it is one (an Embedding's ids must be, so
    /// that they are checked on the host before the lookup).
    pub ids_input: Option<usize>,
}

/// How rows made by [`Builder::rows_over`] are seen in the axes they came from.
struct RowsBack {
    /// The shape with the row axes moved last.
    shape: Vec<usize>,
    /// Which axis of the input each axis of `shape` is.
    order: Vec<usize>,
}

impl RowsBack {
    /// A result laid out as the rows were, seen in the input's axes: a view.
    fn apply(&self, rows: &Value) -> Value {
        let strides = standard_strides(&self.shape);
        let mut shape = vec![0; self.order.len()];
        let mut back = vec![0; self.order.len()];
        for (i, &axis) in self.order.iter().enumerate() {
            shape[axis] = self.shape[i];
            back[axis] = strides[i];
        }
        rows.view(shape, back)
    }
}

/// `x` with its axes in `order` (axis `i` of the result is axis `order[i]` of `x`): a view.
fn permuted(x: &Value, order: &[usize]) -> Value {
    x.view(
        order.iter().map(|&a| x.shape[a]).collect(),
        order.iter().map(|&a| x.strides[a]).collect(),
    )
}

/// Where a Conv1D's windows fall.
struct Window {
    stride: usize,
    dilation: usize,
    padding: ConvPadding,
}

/// The initial state of one recurrent layer: *h*, and *c* for an LSTM.
type Initial<'v> = (Option<&'v Value>, Option<&'v Value>);

impl Builder<'_> {
    /// One call of a layer.
    pub(crate) fn layer(&mut self, model: &KerasModel, call: LayerCall) -> Option<Vec<Value>> {
        let layer = &model.layers()[call.index];
        let x = call.inputs.first()?.clone();
        let gpu = &self.layers[call.index];
        Some(match (layer, gpu) {
            (
                KerasLayer::Embedding { .. },
                GpuLayer::Embedding {
                    table,
                    vocab,
                    width,
                },
            ) => {
                let (table, vocab, width) = (table.clone(), *vocab, *width);
                self.id_checks.push((call.ids_input?, vocab));
                vec![self.embedding(&x, &table, width)?]
            }
            (KerasLayer::Masking { mask_value, .. }, _) => {
                // Keras multiplies by any(x != value, -1): NaN and infinities stay NaN.
                let constant = Input::Constant(mask_value.to_bits(), DType::F32);
                let differs = self.elementwise(
                    op::COMPARE | (Compare::NotEqual.code() << 16),
                    DType::F32,
                    DType::Bool,
                    &[Input::Tensor(&x), constant],
                )?;
                let last = x.shape.len() - 1;
                let keep = self.reduce(&differs, last, reduce::ANY, DType::Bool)?;
                let keep = self.expand(&keep, &[last]);
                vec![self.arithmetic(op::MUL, Input::Tensor(&x), Input::Tensor(&keep))?]
            }
            (
                KerasLayer::Dense {
                    activation, then, ..
                },
                GpuLayer::Dense {
                    kernel,
                    bias,
                    d,
                    units,
                    then: alpha,
                },
            ) => {
                let (kernel, bias, d, units) = (kernel.clone(), bias.clone(), *d, *units);
                let alpha = alpha.clone();
                let out = self.dense(&x, &kernel, &bias, d, units, *activation)?;
                vec![self.activation_after(out, then.as_ref(), alpha.as_ref())?]
            }
            (
                KerasLayer::Activation {
                    activation, then, ..
                },
                GpuLayer::Activation { then: alpha },
            ) => {
                let alpha = alpha.clone();
                let strides = preferred_strides(&x.shape, DType::F32);
                let out = self.copy_with(&x, strides, DType::F32)?;
                self.activation(&out, *activation)?;
                vec![self.activation_after(out, then.as_ref(), alpha.as_ref())?]
            }
            (KerasLayer::Dropout { .. }, _) => vec![x],
            (KerasLayer::RepeatVector { n, .. }, _) => {
                let [batch, features] = x.shape[..] else {
                    return None;
                };
                let repeated = x.view(
                    vec![batch, *n, features],
                    vec![x.strides[0], 0, x.strides[1]],
                );
                let strides = preferred_strides(&repeated.shape, DType::F32);
                vec![self.copy_with(&repeated, strides, DType::F32)?]
            }
            (KerasLayer::Merge { kind, .. }, _) => {
                vec![self.merge(*kind, &call.inputs, &call.input_masks)?]
            }
            (KerasLayer::GlobalPooling { max, keepdims, .. }, _) => {
                vec![self.global_pooling(
                    &x,
                    call.mask.as_ref().filter(|_| !*max),
                    *max,
                    *keepdims,
                )?]
            }
            (KerasLayer::Flatten { channels_first, .. }, _) => {
                let rank = x.shape.len();
                let x = if *channels_first && rank > 2 {
                    let mut order = vec![0];
                    order.extend(2..rank);
                    order.push(1);
                    permuted(&x, &order)
                } else {
                    x
                };
                let rest = x.shape[1..].iter().product();
                vec![self.reshaped(&x, vec![x.shape[0], rest])?]
            }
            (KerasLayer::Reshape { target, .. }, _) => {
                let mut shape = vec![x.shape[0]];
                shape.extend(reshape_target(x.shape[1..].iter().product(), target)?);
                vec![self.reshaped(&x, shape)?]
            }
            (
                KerasLayer::LayerNormalization {
                    axes,
                    epsilon,
                    rms_scaling,
                    ..
                },
                GpuLayer::LayerNormalization { gamma, beta },
            ) => {
                let (gamma, beta) = (gamma.clone(), beta.clone());
                vec![self.layer_normalization(
                    &x,
                    axes,
                    *epsilon,
                    gamma.as_ref(),
                    beta.as_ref(),
                    *rms_scaling,
                )?]
            }
            (
                KerasLayer::BatchNormalization {
                    axis, moving_mean, ..
                },
                GpuLayer::BatchNormalization { inv, res },
            ) => {
                let along = |buffer: &wgpu::Buffer| {
                    let mut shape = vec![1; x.shape.len()];
                    shape[*axis] = moving_mean.len();
                    let mut strides = vec![0; x.shape.len()];
                    strides[*axis] = 1;
                    Value {
                        buffer: buffer.clone(),
                        shape,
                        strides,
                        offset: 0,
                        dtype: DType::F32,
                    }
                };
                let (inv, res) = (along(inv), along(res));
                vec![self.elementwise(
                    op::AFFINE,
                    DType::F32,
                    DType::F32,
                    &[Input::Tensor(&x), Input::Tensor(&inv), Input::Tensor(&res)],
                )?]
            }
            (KerasLayer::PRelu { alpha, .. }, GpuLayer::PRelu { alpha: buffer }) => {
                let buffer = buffer.clone();
                vec![self.prelu(&x, &buffer, alpha.shape())?]
            }
            (
                KerasLayer::Conv1D {
                    kernel,
                    stride,
                    dilation,
                    padding,
                    activation,
                    then,
                    ..
                },
                GpuLayer::Conv1D {
                    kernel: weights,
                    bias,
                    then: alpha,
                },
            ) => {
                let (weights, bias, alpha) = (weights.clone(), bias.clone(), alpha.clone());
                let window = Window {
                    stride: *stride,
                    dilation: *dilation,
                    padding: *padding,
                };
                let out = self.conv1d(&x, &weights, &bias, kernel.dim(), window, *activation)?;
                vec![self.activation_after(out, then.as_ref(), alpha.as_ref())?]
            }
            (KerasLayer::Softmax { axes, .. }, _) => {
                vec![self.softmax(&x, axes, call.mask.as_ref())?]
            }
            (KerasLayer::SimpleRnn { return_state, .. }, GpuLayer::Recurrent(rnns)) => {
                let rnn = rnns.first()?.clone();
                let (x, mask) = self.recurrent_inputs(&x, call.mask.as_ref())?;
                let initial = (call.initial_state.first(), call.initial_state.get(1));
                let (output, h, c) =
                    self.recurrent(call.index, 0, &rnn, &x, mask.as_ref(), false, initial)?;
                let mut outs = vec![output];
                if *return_state {
                    outs.push(h);
                    outs.extend(c);
                }
                outs
            }
            (
                KerasLayer::Bidirectional {
                    merge,
                    return_state,
                    ..
                },
                GpuLayer::Recurrent(rnns),
            ) => {
                let rnns: Vec<Arc<GpuRnn>> = rnns.clone();
                let (x, mask) = self.recurrent_inputs(&x, call.mask.as_ref())?;
                let per_direction = 1 + usize::from(rnns[0].layer().cell().has_cell_state());
                let mut outs = Vec::with_capacity(2);
                let mut states = Vec::new();
                for (which, rnn) in rnns.iter().enumerate() {
                    let given = &call.initial_state;
                    let initial = if given.is_empty() {
                        (None, None)
                    } else {
                        let at = which * per_direction;
                        (
                            given.get(at),
                            given.get(at + 1).filter(|_| per_direction == 2),
                        )
                    };
                    let (output, h, c) = self.recurrent(
                        call.index,
                        which,
                        rnn,
                        &x,
                        mask.as_ref(),
                        which == 1,
                        initial,
                    )?;
                    outs.push(output);
                    states.push(h);
                    states.extend(c);
                }
                let (f, b) = (&outs[0], &outs[1]);
                let mut merged = match merge {
                    MergeMode::Separate => outs.clone(),
                    MergeMode::Concat => {
                        let last = f.shape.len() - 1;
                        vec![self.concatenate(&[f, b], last)?]
                    }
                    MergeMode::Sum => {
                        vec![self.arithmetic(op::ADD, Input::Tensor(f), Input::Tensor(b))?]
                    }
                    MergeMode::Mul => {
                        vec![self.arithmetic(op::MUL, Input::Tensor(f), Input::Tensor(b))?]
                    }
                    MergeMode::Ave => {
                        let sum = self.arithmetic(op::ADD, Input::Tensor(f), Input::Tensor(b))?;
                        let two = Input::Constant(2f32.to_bits(), DType::F32);
                        vec![self.arithmetic(op::DIV, Input::Tensor(&sum), two)?]
                    }
                };
                if *return_state {
                    merged.extend(states);
                }
                merged
            }
            _ => return None,
        })
    }

    /// `GlobalAveragePooling1D` (under a mask, `sum(where(mask, x, 0)) / sum(mask)`) or
    /// `GlobalMaxPooling1D` over the steps of *N* × *T* × *F*.
    fn global_pooling(
        &mut self,
        x: &Value,
        mask: Option<&Value>,
        max: bool,
        keepdims: bool,
    ) -> Option<Value> {
        if x.shape.len() != 3 || x.dtype != DType::F32 {
            return None;
        }
        let out = if max {
            self.reduce(x, 1, reduce::MAX, DType::F32)?
        } else if let Some(mask) = mask {
            if mask.shape != x.shape[..2] {
                return None;
            }
            let keep = self.expand(mask, &[2]);
            let zero = Input::Constant(0, DType::F32);
            let kept = self.elementwise(
                op::WHERE,
                DType::F32,
                DType::F32,
                &[Input::Tensor(x), zero, Input::Tensor(&keep)],
            )?;
            let sum = self.reduce(&kept, 1, reduce::SUM, DType::F32)?;
            let count = self.reduce(mask, 1, reduce::SUM, DType::F32)?;
            let count = self.expand(&count, &[1]);
            self.arithmetic(op::DIV, Input::Tensor(&sum), Input::Tensor(&count))?
        } else {
            let sum = self.reduce(x, 1, reduce::SUM, DType::F32)?;
            let steps = Input::Constant((x.shape[1] as f32).to_bits(), DType::F32);
            self.arithmetic(op::DIV, Input::Tensor(&sum), steps)?
        };
        Some(if keepdims {
            self.expand(&out, &[1])
        } else {
            out
        })
    }

    /// `x`'s elements in standard order seen as `shape` (copied first when not standard).
    fn reshaped(&mut self, x: &Value, shape: Vec<usize>) -> Option<Value> {
        let x = self.in_layout(x, standard_strides(&x.shape), x.dtype)?;
        let strides = standard_strides(&shape);
        Some(x.view(shape, strides))
    }

    /// `x` with `axes` (ascending) moved last and laid out as rows of their sizes together
    /// (copied when `fresh` or not already so): the rows, and how to see a result of the same
    /// layout in `x`'s axes again.
    fn rows_over(&mut self, x: &Value, axes: &[usize], fresh: bool) -> Option<(Value, RowsBack)> {
        let mut order: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
        order.extend_from_slice(axes);
        let moved = permuted(x, &order);
        let strides = standard_strides(&moved.shape);
        let packed = if fresh {
            self.copy_with(&moved, strides, DType::F32)?
        } else {
            self.in_layout(&moved, strides, DType::F32)?
        };
        let width: usize = axes.iter().map(|&a| x.shape[a]).product();
        let rows = packed.len() / width.max(1);
        let back = RowsBack {
            shape: moved.shape.clone(),
            order,
        };
        Some((packed.view(vec![rows, width], vec![width, 1]), back))
    }

    /// `LayerNormalization` over `axes`, in JAX's order of operations (see
    /// `host::layer_normalization`).
    fn layer_normalization(
        &mut self,
        x: &Value,
        axes: &[usize],
        epsilon: f32,
        gamma: Option<&wgpu::Buffer>,
        beta: Option<&wgpu::Buffer>,
        rms_scaling: bool,
    ) -> Option<Value> {
        let (flat, back) = self.rows_over(x, axes, false)?;
        let width = flat.shape[1];
        let per_row = |b: &wgpu::Buffer| Value {
            buffer: b.clone(),
            shape: vec![width],
            strides: vec![1],
            offset: 0,
            dtype: DType::F32,
        };
        let count = Input::Constant((width as f32).to_bits(), DType::F32);
        let sum = self.reduce(&flat, 1, reduce::SUM, DType::F32)?;
        let mean = self.arithmetic(op::DIV, Input::Tensor(&sum), count.clone())?;
        let mean = self.expand(&mean, &[1]);
        let centered = self.arithmetic(op::SUB, Input::Tensor(&flat), Input::Tensor(&mean))?;
        let squares =
            self.arithmetic(op::MUL, Input::Tensor(&centered), Input::Tensor(&centered))?;
        let total = self.reduce(&squares, 1, reduce::SUM, DType::F32)?;
        let var = self.arithmetic(op::DIV, Input::Tensor(&total), count)?;
        let eps = Input::Constant(epsilon.to_bits(), DType::F32);
        let inv = self.arithmetic(op::RSQRT_SUM, Input::Tensor(&var), eps)?;
        let mut inv = self.expand(&inv, &[1]);
        if let Some(g) = gamma {
            inv = self.arithmetic(op::MUL, Input::Tensor(&inv), Input::Tensor(&per_row(g)))?;
        }
        let out = if rms_scaling {
            self.arithmetic(op::MUL, Input::Tensor(&flat), Input::Tensor(&inv))?
        } else {
            let zero = Input::Constant(0, DType::F32);
            let negative = self.arithmetic(op::SUB, zero, Input::Tensor(&mean))?;
            let mut res =
                self.arithmetic(op::MUL, Input::Tensor(&negative), Input::Tensor(&inv))?;
            if let Some(b) = beta {
                res = self.arithmetic(op::ADD, Input::Tensor(&res), Input::Tensor(&per_row(b)))?;
            }
            self.elementwise(
                op::AFFINE,
                DType::F32,
                DType::F32,
                &[
                    Input::Tensor(&flat),
                    Input::Tensor(&inv),
                    Input::Tensor(&res),
                ],
            )?
        };
        Some(back.apply(&out))
    }

    /// `PReLU` (see `host::prelu`): `alpha`, shaped `shape`, broadcast over the batch.
    fn prelu(&mut self, x: &Value, alpha: &wgpu::Buffer, shape: &[usize]) -> Option<Value> {
        let mut shape = shape.to_vec();
        shape.insert(0, 1);
        let alpha = Value {
            buffer: alpha.clone(),
            strides: standard_strides(&shape),
            shape,
            offset: 0,
            dtype: DType::F32,
        };
        self.elementwise(
            op::PRELU,
            DType::F32,
            DType::F32,
            &[Input::Tensor(x), Input::Tensor(&alpha)],
        )
    }

    /// The activation layer a layer calls on its output `x` (see `host::activation_after`),
    /// a PReLU's alpha on the device in `alpha`; `x` itself without one.
    fn activation_after(
        &mut self,
        x: Value,
        then: Option<&ActivationLayer>,
        alpha: Option<&wgpu::Buffer>,
    ) -> Option<Value> {
        match then {
            None => Some(x),
            Some(ActivationLayer::PRelu { alpha: host, .. }) => {
                self.prelu(&x, alpha?, host.shape())
            }
            Some(ActivationLayer::Softmax { axes, .. }) => self.softmax(&x, axes, None),
        }
    }

    /// The `Softmax` layer (see `host::softmax`).
    fn softmax(&mut self, x: &Value, axes: &[i64], mask: Option<&Value>) -> Option<Value> {
        let keep = match mask {
            None => None,
            Some(m) if m.dtype == DType::Bool => Some(m.clone()),
            Some(m) => {
                let half = Input::Constant(0.5f32.to_bits(), DType::F32);
                let greater = op::COMPARE | (Compare::Greater.code() << 16);
                Some(self.elementwise(
                    greater,
                    DType::F32,
                    DType::Bool,
                    &[Input::Tensor(m), half],
                )?)
            }
        };
        let masked;
        let x = match &keep {
            None => x,
            Some(keep) => {
                let low = Input::Constant((-1e9f32).to_bits(), DType::F32);
                masked = self.elementwise(
                    op::WHERE,
                    DType::F32,
                    DType::F32,
                    &[Input::Tensor(x), low, Input::Tensor(keep)],
                )?;
                &masked
            }
        };
        let axes = crate::keras::ops::resolve_axes(axes, x.shape.len(), "Softmax").ok()?;
        // The row kernel works in place: on a copy, never on a tensor others read.
        let (rows, back) = self.rows_over(x, &axes, true)?;
        self.activation(&rows, Activation::Softmax)?;
        let out = back.apply(&rows);
        // Masked positions end at 0, even where a whole row was masked.
        match &keep {
            None => Some(out),
            Some(keep) => {
                let zero = Input::Constant(0, DType::F32);
                self.elementwise(
                    op::WHERE,
                    DType::F32,
                    DType::F32,
                    &[Input::Tensor(&out), zero, Input::Tensor(keep)],
                )
            }
        }
    }

    /// `Conv1D`: the windows as rows (im2col, time-major), one GEMM with the kernel and bias,
    /// the activation in place on its fresh output.
    fn conv1d(
        &mut self,
        x: &Value,
        kernel: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        (taps, channels, filters): (usize, usize, usize),
        window: Window,
        activation: Activation,
    ) -> Option<Value> {
        let [n, t, c] = x.shape[..] else {
            return None;
        };
        if c != channels || x.dtype != DType::F32 {
            return None;
        }
        let (out_steps, pad_left) =
            conv_geometry(t, taps, window.stride, window.dilation, window.padding)?;
        let width = taps * channels;
        let rows = out_steps * n;
        let windows = self.storage("model.conv1d_windows", rows * width);
        let words = [
            (rows * width) as u32,
            n as u32,
            t as u32,
            c as u32,
            taps as u32,
            window.stride as u32,
            window.dilation as u32,
            pad_left as u32,
            x.strides[0] as u32,
            x.strides[1] as u32,
            x.strides[2] as u32,
            x.offset as u32,
        ];
        let params = self.uniform_bytes("model.im2col.params", bytemuck::cast_slice(&words));
        let groups = self.groups(rows * width, ELEMENT_WG);
        let kernels = &self.inner.model;
        let (pipeline, layout) = (kernels.im2col.clone(), kernels.im2col_layout.clone());
        self.kernel(
            &pipeline,
            "model.im2col.bind",
            &layout,
            &[&x.buffer, &windows, &params],
            groups,
        );
        let out = self.gemm(&windows, rows, width, kernel, bias, filters);
        let shape = vec![n, out_steps, filters];
        let out = Value {
            buffer: out,
            strides: time_major_strides(&shape),
            shape,
            offset: 0,
            dtype: DType::F32,
        };
        self.activation(&out, activation)?;
        Some(out)
    }

    /// `Embedding`: the table's rows for each id; the output keeps the ids' layout with the
    /// features innermost.
    fn embedding(&mut self, ids: &Value, table: &wgpu::Buffer, width: usize) -> Option<Value> {
        let ids = if ids.dtype == DType::I32 && ids.is_packed() {
            ids.clone()
        } else {
            // Float ids truncated toward zero, as Keras casts them (checked on the host).
            let strides = preferred_strides(&ids.shape, DType::I32);
            self.copy_with(ids, strides, DType::I32)?
        };
        let count = ids.len();
        let out = self.storage("model.embedded", count * width);
        let params = self.uniform_bytes(
            "model.embedding.params",
            bytemuck::cast_slice(&[count as u32, width as u32, 0, 0]),
        );
        let groups = self.groups(count * width, ELEMENT_WG);
        let kernels = &self.inner.model;
        let (pipeline, layout) = (kernels.embedding.clone(), kernels.embedding_layout.clone());
        let unused = self.dummy.clone();
        self.kernel(
            &pipeline,
            "model.embedding.bind",
            &layout,
            &[&ids.buffer, table, &out, &unused, &params],
            groups,
        );
        let mut shape = ids.shape.clone();
        shape.push(width);
        let mut strides: Vec<usize> = ids.strides.iter().map(|s| s * width).collect();
        strides.push(1);
        Some(Value {
            buffer: out,
            shape,
            strides,
            offset: 0,
            dtype: DType::F32,
        })
    }

    /// `Dense` over the last axis: one GEMM over all rows, the activation in place on its fresh
    /// output.
    fn dense(
        &mut self,
        x: &Value,
        kernel: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        d: usize,
        units: usize,
        activation: Activation,
    ) -> Option<Value> {
        if x.shape.last() != Some(&d) || x.dtype != DType::F32 {
            return None;
        }
        let x = self.with_packed_rows(x)?;
        let rows = x.len() / d;
        let out = self.gemm(&x.buffer, rows, d, kernel, bias, units);
        let mut shape = x.shape.clone();
        *shape.last_mut()? = units;
        let last = x.shape.len() - 1;
        let strides = x
            .strides
            .iter()
            .enumerate()
            .map(|(i, s)| if i == last { 1 } else { s / d * units })
            .collect();
        let out = Value {
            buffer: out,
            shape,
            strides,
            offset: 0,
            dtype: DType::F32,
        };
        self.activation(&out, activation)?;
        Some(out)
    }

    /// `x · kernel + bias` through the tiled projection GEMM: `x` is `rows` × `k`, `kernel`
    /// `k` × `cols`; a new `rows` × `cols` buffer.
    fn gemm(
        &mut self,
        x: &wgpu::Buffer,
        rows: usize,
        k: usize,
        kernel: &wgpu::Buffer,
        bias: &wgpu::Buffer,
        cols: usize,
    ) -> wgpu::Buffer {
        let out = self.storage("model.gemm", rows * cols);
        let projection = self.projection(rows, k, cols);
        let dims = self.params("model.gemm.dims", &projection);
        let bind = bind_group(
            self.inner,
            "model.gemm.bind",
            &self.inner.projection_layout,
            &[
                x.as_entire_binding(),
                kernel.as_entire_binding(),
                bias.as_entire_binding(),
                out.as_entire_binding(),
                dynamic_params(&dims),
            ],
        );
        self.work.push(Work::Projection {
            projection,
            bind_group: bind,
        });
        out
    }

    /// A projection GEMM of `rows` × `k` × `cols`; marks the plan as not fitting when its
    /// column tiles pass the workgroup limit (its rows are cut into dispatches that fit).
    fn projection(&mut self, rows: usize, k: usize, cols: usize) -> Projection {
        if (cols as u64).div_ceil(PROJECTION_TILE) > self.max_groups {
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

    /// An activation in place on `x`'s packed rows (nothing for linear): a fresh tensor only.
    fn activation(&mut self, x: &Value, activation: Activation) -> Option<()> {
        if activation == Activation::Linear {
            return Some(());
        }
        let width = *x.shape.last()?;
        if !row_kernel_fits(width) || !x.has_packed_rows() {
            return None;
        }
        let rows = x.len() / width.max(1);
        let pipeline = self.inner.rows_pipeline(activation).ok()?;
        let params = self.uniform_bytes(
            "model.rows_activation.params",
            bytemuck::cast_slice(&[rows as u32, width as u32, 0, 0]),
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

    /// A merge layer (see `host::merge_masked` for what the masks do).
    fn merge(&mut self, kind: MergeKind, xs: &[Value], masks: &[Option<Value>]) -> Option<Value> {
        if let MergeKind::Concatenate(axis) = kind {
            let axis =
                crate::keras::tensor::resolve_axis(axis, xs[0].shape.len(), "Concatenate").ok()?;
            let refs: Vec<&Value> = xs.iter().collect();
            return self.concatenate(&refs, axis);
        }
        let masked = matches!(
            kind,
            MergeKind::Maximum | MergeKind::Minimum | MergeKind::Multiply
        ) && masks.iter().any(Option::is_some);
        // Each mask along its input's last axis.
        let widened: Vec<Option<Value>> = masks
            .iter()
            .map(|m| m.as_ref().map(|m| self.expand(m, &[m.shape.len()])))
            .collect();
        let operation = match kind {
            MergeKind::Add | MergeKind::Average => op::ADD,
            MergeKind::Subtract => op::SUB,
            MergeKind::Multiply => op::MUL,
            MergeKind::Maximum => op::MAX,
            _ => op::MIN,
        };
        if masked && kind == MergeKind::Multiply {
            let all = widened.iter().all(Option::is_some);
            let one = Input::Constant(1f32.to_bits(), DType::F32);
            let mut output: Option<Value> = None;
            let mut output_mask: Option<Value> = None;
            for (x, m) in xs.iter().zip(&widened) {
                let x = match m {
                    Some(m) => {
                        if all {
                            output_mask = Some(match output_mask {
                                None => m.clone(),
                                Some(o) => self.elementwise(
                                    op::OR,
                                    DType::Bool,
                                    DType::Bool,
                                    &[Input::Tensor(&o), Input::Tensor(m)],
                                )?,
                            });
                        }
                        self.elementwise(
                            op::WHERE,
                            DType::F32,
                            DType::F32,
                            &[Input::Tensor(x), one.clone(), Input::Tensor(m)],
                        )?
                    }
                    None => x.clone(),
                };
                output = Some(match output {
                    None => x,
                    Some(o) => self.arithmetic(op::MUL, Input::Tensor(&o), Input::Tensor(&x))?,
                });
            }
            let output = output?;
            return match output_mask {
                Some(m) if all => {
                    let zero = Input::Constant(0, DType::F32);
                    self.elementwise(
                        op::WHERE,
                        DType::F32,
                        DType::F32,
                        &[Input::Tensor(&output), zero, Input::Tensor(&m)],
                    )
                }
                _ => Some(output),
            };
        }
        if masked {
            let mut output: Option<Value> = None;
            let mut output_mask: Option<Value> = None;
            for (x, m) in xs.iter().zip(&widened) {
                let Some(so_far) = output.take() else {
                    output = Some(x.clone());
                    output_mask = m.clone();
                    continue;
                };
                let x = match m {
                    Some(m) => self.elementwise(
                        op::WHERE,
                        DType::F32,
                        DType::F32,
                        &[Input::Tensor(x), Input::Tensor(&so_far), Input::Tensor(m)],
                    )?,
                    None => x.clone(),
                };
                let so_far = match &output_mask {
                    Some(om) => self.elementwise(
                        op::WHERE,
                        DType::F32,
                        DType::F32,
                        &[Input::Tensor(&so_far), Input::Tensor(&x), Input::Tensor(om)],
                    )?,
                    None => so_far,
                };
                output_mask = match (m, output_mask) {
                    (Some(m), Some(om)) => Some(self.elementwise(
                        op::OR,
                        DType::Bool,
                        DType::Bool,
                        &[Input::Tensor(&om), Input::Tensor(m)],
                    )?),
                    _ => None,
                };
                output =
                    Some(self.arithmetic(operation, Input::Tensor(&so_far), Input::Tensor(&x))?);
            }
            return output;
        }
        let mut out = xs[0].clone();
        for x in &xs[1..] {
            out = self.arithmetic(operation, Input::Tensor(&out), Input::Tensor(x))?;
        }
        if kind == MergeKind::Average {
            let count = Input::Constant((xs.len() as f32).to_bits(), DType::F32);
            out = self.arithmetic(op::DIV, Input::Tensor(&out), count)?;
        } else if xs.len() == 1 {
            // A merge of one input is a new tensor equal to it.
            let strides = preferred_strides(&out.shape, DType::F32);
            out = self.copy_with(&out, strides, DType::F32)?;
        }
        Some(out)
    }

    /// A recurrent layer's input as its kernels read it: *T* × *N* × *D* words, and the mask
    /// as *T* × *N* booleans.
    fn recurrent_inputs(
        &mut self,
        x: &Value,
        mask: Option<&Value>,
    ) -> Option<(Value, Option<Value>)> {
        if x.shape.len() != 3 || x.dtype != DType::F32 || x.shape[1] > MAX_RESIDENT_STEPS {
            return None;
        }
        let x = self.in_layout(x, time_major_strides(&x.shape), DType::F32)?;
        let mask = match mask {
            None => None,
            Some(m) => {
                if m.shape != x.shape[..2] {
                    return None;
                }
                Some(self.in_layout(m, time_major_strides(&m.shape), DType::Bool)?)
            }
        };
        Some((x, mask))
    }

    /// One recurrent layer reading `x` (*T* × *N* × *D*, time-major) in input order, from
    /// `initial` states (copied into its first state buffers) or zeros (or its carried state);
    /// `flip` stores a sequence output in reverse processing order (Bidirectional's backward
    /// layer). Returns its output, its final state and (LSTM) its final cell state.
    #[allow(clippy::too_many_arguments)]
    fn recurrent(
        &mut self,
        index: usize,
        which: usize,
        rnn: &Arc<GpuRnn>,
        x: &Value,
        mask: Option<&Value>,
        flip: bool,
        initial: Initial<'_>,
    ) -> Option<(Value, Value, Option<Value>)> {
        let layer = rnn.layer();
        let config = *layer.config();
        let (n, t) = (x.shape[0], x.shape[1]);
        let (d, m) = (layer.input_dim(), layer.units());
        if x.shape[2] != d {
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
        // Initial states given as tensors replace the zeros (or carried state) the call starts
        // from; they are copied just before the layer runs.
        let (h0, c0) = initial;
        if let Some(h0) = h0 {
            let h0 = self.in_layout(h0, standard_strides(&[n, m]), DType::F32)?;
            if h0.shape != [n, m] {
                return None;
            }
            self.work.push(Work::Copy {
                from: h0.buffer,
                to: state[0].clone(),
                bytes: (4 * n * m) as u64,
            });
        }
        if let Some(c0) = c0 {
            let c0 = self.in_layout(c0, standard_strides(&[n, m]), DType::F32)?;
            let cell = &gated.as_ref()?.cell;
            if c0.shape != [n, m] {
                return None;
            }
            self.work.push(Work::Copy {
                from: c0.buffer,
                to: cell.clone(),
                bytes: (4 * n * m) as u64,
            });
        }
        let unused = self.dummy.clone();
        let bindings = rnn.chunk_bindings(ChunkBuffers {
            x: &x.buffer,
            projected: &projected,
            state: [&state[0], &state[1]],
            sequence: &sequence,
            params: &params,
            params_stride: stride,
            dims: &dims,
            mask: mask.map_or(&unused, |m| &m.buffer),
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
        // Saved before anything after this layer may change the state buffer.
        self.work.push(Work::Save {
            layer: index,
            which,
            from: last.clone(),
        });
        let state_value = |buffer: wgpu::Buffer| Value {
            buffer,
            shape: vec![n, m],
            strides: vec![m, 1],
            offset: 0,
            dtype: DType::F32,
        };
        let h = state_value(last);
        let c = gated
            .as_ref()
            .filter(|_| layer.cell().has_cell_state())
            .map(|g| state_value(g.cell.clone()));
        let output = if config.return_sequences {
            Value {
                buffer: sequence,
                shape: vec![n, t, m],
                strides: time_major_strides(&[n, t, m]),
                offset: 0,
                dtype: DType::F32,
            }
        } else {
            match mask {
                Some(mask) if config.zero_output_for_mask => {
                    // Keras's last output is zeros for a sequence whose last processed step is
                    // masked (`Schedule::finish`).
                    let last_time = if config.go_backwards { 0 } else { t - 1 };
                    let step = Value {
                        shape: vec![n, 1],
                        strides: vec![mask.strides[0], 0],
                        offset: last_time * mask.strides[1],
                        ..mask.clone()
                    };
                    let zero = Input::Constant(0, DType::F32);
                    self.elementwise(
                        op::WHERE,
                        DType::F32,
                        DType::F32,
                        &[Input::Tensor(&h), zero, Input::Tensor(&step)],
                    )?
                }
                _ => h.clone(),
            }
        };
        Some((output, h, c))
    }
}
