//! Building the plan of a resident model for one set of input shapes: a walk over the graph's
//! calls in order that allocates each tensor's buffer and records the kernels that fill it, and
//! gives up (so that the call takes the per-layer path) where the host path would fail or a
//! buffer, grid or loop would pass the device's limits. The graph's ops and the layers without
//! weights are two generic kernels over strided tensors (`elementwise.wgsl`,
//! `reduce_axis.wgsl`); the layers are in `model_layers.rs`.

use bytemuck::{Pod, Zeroable};
use wgpu::util::DeviceExt;

use crate::gpu::context::ContextInner;
use crate::gpu::model::{GpuLayer, Plan, PlanKey, Work};
use crate::gpu::plan::{LOOP_BUDGET, grid};
use crate::gpu::rnn::bind_group;
use crate::keras::graph::TensorRef;
use crate::keras::model::{EntryKind, KerasModel};
use crate::keras::ops::{
    KerasOp, Operand, Scalar, comparison_dtype, expanded_axes, promote, resolve_axes,
};
use crate::keras::tensor::{DType, broadcast_sizes, resolve_axis};

/// Threads of the element-wise kernels (elementwise, reduce_axis, embedding).
pub(crate) const ELEMENT_WG: u64 = 256;

/// The most axes a tensor on the device may have (the kernels' parameters hold 8).
const MAX_RANK: usize = 8;

/// A tensor on the device: `buffer` read through `strides` (in 4-byte words) from `offset`.
#[derive(Clone, Debug)]
pub(crate) struct Value {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
    pub strides: Vec<usize>,
    pub offset: usize,
    pub dtype: DType,
}

impl Value {
    pub(crate) fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same words seen with another shape and strides.
    pub(crate) fn view(&self, shape: Vec<usize>, strides: Vec<usize>) -> Value {
        Value {
            shape,
            strides,
            ..self.clone()
        }
    }

    /// Whether the value fills its words without gaps or repeats, in some order of its axes.
    pub(crate) fn is_packed(&self) -> bool {
        self.offset == 0 && packed(&self.shape, &self.strides)
    }

    /// Whether its last axis is contiguous and its rows tile the buffer: what the GEMM and the
    /// row kernels read.
    pub(crate) fn has_packed_rows(&self) -> bool {
        self.is_packed()
            && self
                .shape
                .last()
                .is_none_or(|&w| w == 1 || self.strides.last() == Some(&1))
    }

    /// Whether the value is laid out as `strides` says (sizes of 1 aside).
    pub(crate) fn has_layout(&self, strides: &[usize]) -> bool {
        self.offset == 0
            && self
                .shape
                .iter()
                .zip(self.strides.iter().zip(strides))
                .all(|(&size, (a, b))| size == 1 || a == b)
    }
}

/// Row-major strides.
pub(crate) fn standard_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// Row-major strides with the first two axes swapped: batch × time stored time-major.
pub(crate) fn time_major_strides(shape: &[usize]) -> Vec<usize> {
    if shape.len() < 2 {
        return standard_strides(shape);
    }
    let mut physical = shape.to_vec();
    physical.swap(0, 1);
    let mut strides = standard_strides(&physical);
    strides.swap(0, 1);
    strides
}

/// The layout a new tensor gets: time-major for sequences (three axes or more) and for masks
/// and token ids (two axes, not float), so that the recurrent kernels read them as they are.
pub(crate) fn preferred_strides(shape: &[usize], dtype: DType) -> Vec<usize> {
    if shape.len() >= 3 || (shape.len() == 2 && dtype != DType::F32) {
        time_major_strides(shape)
    } else {
        standard_strides(shape)
    }
}

/// Whether `strides` lay `shape` out without gaps or repeats (sizes of 1 aside).
fn packed(shape: &[usize], strides: &[usize]) -> bool {
    let mut axes: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|(size, _)| **size > 1)
        .map(|(&size, &stride)| (stride, size))
        .collect();
    axes.sort_unstable();
    let mut expected = 1;
    for (stride, size) in axes {
        if stride != expected {
            return false;
        }
        expected *= size;
    }
    true
}

/// The strides that read `value` broadcast to `shape` (NumPy's rules: aligned from the last
/// axis, 0 along an axis it is repeated over).
fn broadcast_strides(value: &Value, shape: &[usize]) -> Option<Vec<usize>> {
    let pad = shape.len().checked_sub(value.shape.len())?;
    (0..shape.len())
        .map(|i| {
            if i < pad {
                return Some(0);
            }
            let (size, stride) = (value.shape[i - pad], value.strides[i - pad]);
            match size {
                s if s == shape[i] => Some(stride),
                1 => Some(0),
                _ => None,
            }
        })
        .collect()
}

/// An operand of an elementwise kernel.
#[derive(Clone)]
pub(crate) enum Input<'v> {
    Tensor(&'v Value),
    Constant(u32, DType),
}

impl Input<'_> {
    fn shape(&self) -> &[usize] {
        match self {
            Input::Tensor(v) => &v.shape,
            Input::Constant(..) => &[],
        }
    }
}

/// The elementwise kernel's operations (`OP` in elementwise.wgsl).
pub(crate) mod op {
    pub const COPY: u32 = 0;
    pub const ADD: u32 = 1;
    pub const SUB: u32 = 2;
    pub const MUL: u32 = 3;
    pub const DIV: u32 = 4;
    pub const MAX: u32 = 5;
    pub const MIN: u32 = 6;
    /// With the relation in bits 16-23 (`Compare::code`).
    pub const COMPARE: u32 = 7;
    pub const AND: u32 = 9;
    pub const OR: u32 = 10;
    pub const NOT: u32 = 11;
    pub const WHERE: u32 = 12;
    pub const PRELU: u32 = 13;
    pub const AFFINE: u32 = 14;
    pub const RSQRT_SUM: u32 = 15;
}

/// The reduce kernel's operations (`OP` in reduce_axis.wgsl).
pub(crate) mod reduce {
    pub const SUM: u32 = 0;
    pub const MAX: u32 = 1;
    pub const ANY: u32 = 3;
    pub const ALL: u32 = 4;
}

fn dtype_code(dtype: DType) -> u32 {
    match dtype {
        DType::F32 => 0,
        DType::I32 => 1,
        DType::Bool => 2,
    }
}

/// A constant as the words the kernels read: its own dtype's bits.
pub(crate) fn constant(scalar: Scalar) -> Input<'static> {
    match scalar {
        Scalar::Int(v) => Input::Constant(
            v.clamp(i32::MIN.into(), i32::MAX.into()) as i32 as u32,
            DType::I32,
        ),
        Scalar::Float(v) => Input::Constant((v as f32).to_bits(), DType::F32),
        Scalar::Bool(v) => Input::Constant(u32::from(v), DType::Bool),
    }
}

/// `elementwise.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    count: u32,
    rank: u32,
    op: u32,
    kinds: u32,
    offsets: [u32; 4],
    consts: [u32; 4],
    shape: [u32; 8],
    strides: [[u32; 8]; 4],
}

/// `reduce_axis.wgsl`'s parameters.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ReduceParams {
    count: u32,
    rank: u32,
    op: u32,
    kind: u32,
    length: u32,
    step: u32,
    offset: u32,
    _pad: u32,
    shape: [u32; 8],
    out_strides: [u32; 8],
    in_strides: [u32; 8],
}

fn eight(values: &[usize]) -> [u32; 8] {
    let mut out = [0u32; 8];
    for (o, v) in out.iter_mut().zip(values) {
        *o = *v as u32;
    }
    out
}

/// Builds a [`Plan`] (see the module's documentation).
pub(crate) struct Builder<'a> {
    pub(crate) inner: &'a ContextInner,
    pub(crate) layers: &'a [GpuLayer],
    /// The most bytes one buffer may hold.
    max_bytes: u64,
    pub(crate) max_groups: u64,
    pub(crate) fits: bool,
    pub(crate) work: Vec<Work>,
    pub(crate) initial_states: Vec<(usize, usize, wgpu::Buffer, usize)>,
    pub(crate) initial_cells: Vec<wgpu::Buffer>,
    pub(crate) dummy: wgpu::Buffer,
    /// Embeddings whose ids are a model input: (input, vocabulary).
    pub(crate) id_checks: Vec<(usize, usize)>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(inner: &'a ContextInner, layers: &'a [GpuLayer]) -> Self {
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
            layers,
            max_bytes,
            max_groups: u64::from(limits.max_compute_workgroups_per_dimension),
            fits: true,
            work: Vec::new(),
            initial_states: Vec::new(),
            initial_cells: Vec::new(),
            dummy,
            id_checks: Vec::new(),
        }
    }

    /// A buffer of `words` 4-byte values; marks the plan as not fitting when too big.
    pub(crate) fn buffer(
        &mut self,
        label: &str,
        words: usize,
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        let bytes = (4 * words.max(1)) as u64;
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

    pub(crate) fn storage(&mut self, label: &str, words: usize) -> wgpu::Buffer {
        use wgpu::BufferUsages as U;
        self.buffer(label, words, U::STORAGE | U::COPY_SRC | U::COPY_DST)
    }

    /// A new tensor laid out as `strides` (a packed layout of `shape`).
    pub(crate) fn alloc_with(
        &mut self,
        label: &str,
        shape: &[usize],
        strides: Vec<usize>,
        dtype: DType,
    ) -> Value {
        if shape.len() > MAX_RANK {
            self.fits = false;
        }
        let buffer = self.storage(label, shape.iter().product());
        Value {
            buffer,
            shape: shape.to_vec(),
            strides,
            offset: 0,
            dtype,
        }
    }

    /// A new tensor in the layout [`preferred_strides`] gives.
    pub(crate) fn alloc(&mut self, label: &str, shape: &[usize], dtype: DType) -> Value {
        self.alloc_with(label, shape, preferred_strides(shape, dtype), dtype)
    }

    pub(crate) fn uniform_bytes(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        self.inner
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Workgroups for `count` items of `per_group`, spilling into y past the per-dimension limit.
    pub(crate) fn groups(&mut self, count: usize, per_group: u64) -> (u32, u32) {
        let (x, y) = grid((count as u64).div_ceil(per_group), self.max_groups);
        if u64::from(y) > self.max_groups {
            self.fits = false;
        }
        (x, y)
    }

    pub(crate) fn kernel(
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

    /// Records `elementwise.wgsl` writing `shape`'s elements of `out` (through its strides, from
    /// its offset): `operation` (with `compare` for the comparisons) of up to three inputs,
    /// each broadcast to `shape`.
    pub(crate) fn elementwise_into(
        &mut self,
        operation: u32,
        compare: DType,
        out: &Value,
        inputs: &[Input<'_>],
    ) -> Option<()> {
        let shape = &out.shape;
        if shape.len() > MAX_RANK {
            self.fits = false;
            return Some(());
        }
        let mut params = ElementwiseParams {
            count: out.len() as u32,
            rank: shape.len() as u32,
            op: operation | (dtype_code(compare) << 8),
            kinds: dtype_code(out.dtype),
            offsets: [out.offset as u32, 0, 0, 0],
            consts: [0; 4],
            shape: eight(shape),
            strides: [eight(&out.strides), [0; 8], [0; 8], [0; 8]],
        };
        let mut buffers = [(); 3].map(|_| self.dummy.clone());
        for (i, input) in inputs.iter().enumerate() {
            let slot = i + 1;
            match input {
                Input::Tensor(v) => {
                    params.kinds |= dtype_code(v.dtype) << (4 * slot);
                    params.offsets[slot] = v.offset as u32;
                    params.strides[slot] = eight(&broadcast_strides(v, shape)?);
                    buffers[i] = v.buffer.clone();
                }
                Input::Constant(bits, dtype) => {
                    params.kinds |= (dtype_code(*dtype) | 4) << (4 * slot);
                    params.consts[i] = *bits;
                }
            }
        }
        let uniform = self.uniform_bytes("model.elementwise.params", bytemuck::bytes_of(&params));
        let groups = self.groups(out.len(), ELEMENT_WG);
        let kernels = &self.inner.model;
        let (pipeline, layout) = (
            kernels.elementwise.clone(),
            kernels.elementwise_layout.clone(),
        );
        let [a, b, c] = buffers;
        self.kernel(
            &pipeline,
            "model.elementwise.bind",
            &layout,
            &[&out.buffer, &a, &b, &c, &uniform],
            groups,
        );
        Some(())
    }

    /// `operation` of the inputs into a new tensor of their broadcast shape.
    pub(crate) fn elementwise(
        &mut self,
        operation: u32,
        compare: DType,
        dtype: DType,
        inputs: &[Input<'_>],
    ) -> Option<Value> {
        let mut shape: Vec<usize> = Vec::new();
        for input in inputs {
            shape = broadcast_sizes(&shape, input.shape(), "elementwise").ok()?;
        }
        let out = self.alloc("model.elementwise", &shape, dtype);
        self.elementwise_into(operation, compare, &out, inputs)?;
        Some(out)
    }

    /// A float32 operation of two inputs.
    pub(crate) fn arithmetic(
        &mut self,
        operation: u32,
        a: Input<'_>,
        b: Input<'_>,
    ) -> Option<Value> {
        self.elementwise(operation, DType::F32, DType::F32, &[a, b])
    }

    /// `x` copied (and cast to `dtype`) into a new tensor laid out as `strides`.
    pub(crate) fn copy_with(
        &mut self,
        x: &Value,
        strides: Vec<usize>,
        dtype: DType,
    ) -> Option<Value> {
        let out = self.alloc_with("model.copy", &x.shape, strides, dtype);
        self.elementwise_into(op::COPY, DType::F32, &out, &[Input::Tensor(x)])?;
        Some(out)
    }

    /// `x` as `dtype` laid out as `strides`: itself when it already is, else a copy.
    pub(crate) fn in_layout(
        &mut self,
        x: &Value,
        strides: Vec<usize>,
        dtype: DType,
    ) -> Option<Value> {
        if x.dtype == dtype && x.has_layout(&strides) {
            Some(x.clone())
        } else {
            self.copy_with(x, strides, dtype)
        }
    }

    /// `x` with packed rows (for the GEMM and the row kernels): itself, or a copy.
    pub(crate) fn with_packed_rows(&mut self, x: &Value) -> Option<Value> {
        if x.has_packed_rows() {
            Some(x.clone())
        } else {
            let strides = preferred_strides(&x.shape, x.dtype);
            self.copy_with(x, strides, x.dtype)
        }
    }

    /// A reduction of `x` along `axis` (the axis removed).
    pub(crate) fn reduce(
        &mut self,
        x: &Value,
        axis: usize,
        operation: u32,
        dtype: DType,
    ) -> Option<Value> {
        let length = x.shape[axis];
        if length as u64 + 8 > LOOP_BUDGET {
            self.fits = false;
            return None;
        }
        let mut shape = x.shape.clone();
        shape.remove(axis);
        let mut in_strides = x.strides.clone();
        in_strides.remove(axis);
        let out = self.alloc("model.reduced", &shape, dtype);
        if shape.len() > MAX_RANK {
            self.fits = false;
            return None;
        }
        let params = ReduceParams {
            count: out.len() as u32,
            rank: shape.len() as u32,
            op: operation,
            kind: dtype_code(x.dtype),
            length: length as u32,
            step: x.strides[axis] as u32,
            offset: x.offset as u32,
            _pad: 0,
            shape: eight(&shape),
            out_strides: eight(&out.strides),
            in_strides: eight(&in_strides),
        };
        let uniform = self.uniform_bytes("model.reduce.params", bytemuck::bytes_of(&params));
        let groups = self.groups(out.len(), ELEMENT_WG);
        let kernels = &self.inner.model;
        let (pipeline, layout) = (kernels.reduce.clone(), kernels.reduce_layout.clone());
        self.kernel(
            &pipeline,
            "model.reduce.bind",
            &layout,
            &[&out.buffer, &x.buffer, &uniform],
            groups,
        );
        Some(out)
    }

    /// `x` with axes of size 1 inserted at `at` (positions in the result): a view.
    pub(crate) fn expand(&self, x: &Value, at: &[usize]) -> Value {
        let mut shape = x.shape.clone();
        let mut strides = x.strides.clone();
        for &axis in at {
            shape.insert(axis, 1);
            strides.insert(axis, 0);
        }
        x.view(shape, strides)
    }

    /// Tensors joined along `axis` (negative from the end) into a new tensor.
    pub(crate) fn concatenate(&mut self, xs: &[&Value], axis: usize) -> Option<Value> {
        let dtype = xs.iter().map(|x| x.dtype).fold(xs[0].dtype, promote);
        let mut shape = xs[0].shape.clone();
        shape[axis] = xs.iter().map(|x| x.shape[axis]).sum();
        let out = self.alloc("model.concatenated", &shape, dtype);
        let mut start = 0;
        for x in xs {
            let slice = Value {
                shape: x.shape.clone(),
                offset: start * out.strides[axis],
                ..out.clone()
            };
            self.elementwise_into(op::COPY, DType::F32, &slice, &[Input::Tensor(x)])?;
            start += x.shape[axis];
        }
        Some(out)
    }

    /// Walks the graph for inputs of these shapes (see the module's documentation).
    pub(crate) fn build(mut self, model: &KerasModel, key: PlanKey) -> Option<Plan> {
        let inputs: Vec<Value> = key
            .iter()
            .map(|(dtype, shape)| self.alloc("model.input", shape, *dtype))
            .collect();
        let mut values: Vec<Vec<Value>> = vec![Vec::new(); model.nodes().len()];
        for (i, node) in model.nodes().iter().enumerate() {
            if !model.is_live(i) {
                continue;
            }
            let entry = &model.entries()[node.entry];
            let get = |t: &TensorRef| values[t.node][t.output].clone();
            let operands: Vec<Operand<Value>> = node
                .call
                .operands
                .iter()
                .map(|o| match o {
                    Operand::Tensor(t) => Operand::Tensor(get(t)),
                    Operand::Scalar(s) => Operand::Scalar(*s),
                })
                .collect();
            let outputs = match &entry.kind {
                EntryKind::Input(k) => vec![inputs[*k].clone()],
                EntryKind::Op(keras_op) => vec![self.op(keras_op, &operands)?],
                EntryKind::Layer(l) => {
                    let tensors: Vec<Value> = operands
                        .into_iter()
                        .filter_map(|o| match o {
                            Operand::Tensor(v) => Some(v),
                            Operand::Scalar(_) => None,
                        })
                        .collect();
                    let call = crate::gpu::model_layers::LayerCall {
                        index: *l,
                        inputs: tensors,
                        mask: node.call.mask.as_ref().map(get),
                        initial_state: node.call.initial_state.iter().map(get).collect(),
                        input_masks: node
                            .call
                            .input_masks
                            .iter()
                            .map(|m| m.as_ref().map(get))
                            .collect(),
                        ids_input: model
                            .inputs()
                            .iter()
                            .position(|input| input.tensor == node.call.input()),
                    };
                    self.layer(model, call)?
                }
            };
            if !self.fits {
                return None;
            }
            values[i] = outputs;
        }
        let outputs: Vec<Value> = model
            .outputs()
            .iter()
            .map(|t| values[t.node][t.output].clone())
            .collect();
        let readback_bytes: u64 = outputs.iter().map(|v| v.buffer.size()).sum();
        let readback = self.buffer(
            "model.readback",
            (readback_bytes / 4) as usize,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        if !self.fits {
            return None;
        }
        Some(Plan {
            key,
            inputs,
            initial_states: self.initial_states,
            initial_cells: self.initial_cells,
            work: self.work,
            outputs,
            readback,
            readback_bytes,
            id_checks: self.id_checks,
        })
    }

    /// One op of the graph.
    fn op(&mut self, keras_op: &KerasOp, operands: &[Operand<Value>]) -> Option<Value> {
        fn input(o: &Operand<Value>) -> Input<'_> {
            match o {
                Operand::Tensor(v) => Input::Tensor(v),
                Operand::Scalar(s) => constant(*s),
            }
        }
        let first = match operands.first()? {
            Operand::Tensor(v) => Some(v),
            Operand::Scalar(_) => None,
        };
        match keras_op {
            KerasOp::Compare(kind) => {
                let dtypes: Vec<Operand<DType>> = operands
                    .iter()
                    .map(|o| match o {
                        Operand::Tensor(v) => Operand::Tensor(v.dtype),
                        Operand::Scalar(s) => Operand::Scalar(*s),
                    })
                    .collect();
                let compare = comparison_dtype(&dtypes[0], &dtypes[1]);
                let operation = op::COMPARE | (kind.code() << 16);
                // An integer constant compared as a float is converted from its own value, as
                // the host does, not from its int32 clamp.
                fn operand(o: &Operand<Value>, compare: DType) -> Input<'_> {
                    match o {
                        Operand::Scalar(Scalar::Int(v)) if compare == DType::F32 => {
                            Input::Constant((*v as f32).to_bits(), DType::F32)
                        }
                        other => input(other),
                    }
                }
                let inputs = [
                    operand(&operands[0], compare),
                    operand(&operands[1], compare),
                ];
                self.elementwise(operation, compare, DType::Bool, &inputs)
            }
            KerasOp::Logical { and } => {
                let operation = if *and { op::AND } else { op::OR };
                let inputs = [input(&operands[0]), input(&operands[1])];
                self.elementwise(operation, DType::Bool, DType::Bool, &inputs)
            }
            KerasOp::LogicalNot => {
                self.elementwise(op::NOT, DType::Bool, DType::Bool, &[input(&operands[0])])
            }
            KerasOp::Cast(dtype) => {
                let x = first?;
                // Floats to int32 take the host path, which refuses the values XLA leaves
                // undefined (NaN, infinities, out of range) rather than guess them.
                if x.dtype == DType::F32 && *dtype == DType::I32 {
                    return None;
                }
                let strides = preferred_strides(&x.shape, *dtype);
                self.copy_with(x, strides, *dtype)
            }
            KerasOp::ExpandDims(axes) => {
                let x = first?;
                let at = expanded_axes(axes, x.shape.len(), "ExpandDims").ok()?;
                Some(self.expand(x, &at))
            }
            KerasOp::Fill { one, dtype } => {
                let x = first?;
                let dtype = dtype.unwrap_or(x.dtype);
                let out = self.alloc("model.filled", &x.shape, dtype);
                let value = Input::Constant(u32::from(*one), DType::Bool);
                self.elementwise_into(op::COPY, DType::F32, &out, &[value])?;
                Some(out)
            }
            KerasOp::Reduce {
                any,
                axes,
                keepdims,
            } => {
                let x = first?;
                let rank = x.shape.len();
                let reduced = match axes {
                    Some(a) => resolve_axes(a, rank, "reduce").ok()?,
                    None => (0..rank).collect(),
                };
                let operation = if *any { reduce::ANY } else { reduce::ALL };
                let mut out = x.clone();
                for &axis in reduced.iter().rev() {
                    out = self.reduce(&out, axis, operation, DType::Bool)?;
                }
                if reduced.is_empty() {
                    // any/all over no axis is the truth of each element.
                    let strides = preferred_strides(&x.shape, DType::Bool);
                    out = self.copy_with(x, strides, DType::Bool)?;
                }
                Some(if *keepdims {
                    self.expand(&out, &reduced)
                } else {
                    out
                })
            }
            KerasOp::Concatenate { axis } => {
                let xs: Vec<&Value> = operands
                    .iter()
                    .filter_map(|o| match o {
                        Operand::Tensor(v) => Some(v),
                        Operand::Scalar(_) => None,
                    })
                    .collect();
                let axis = resolve_axis(*axis, xs.first()?.shape.len(), "Concatenate").ok()?;
                self.concatenate(&xs, axis)
            }
        }
    }
}
