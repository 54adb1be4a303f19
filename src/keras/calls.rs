//! One call of a layer or op as both backends run it: its operands (tensors and constants),
//! its mask and initial state, checked against what the layer takes; and the types of what it
//! returns. Both the host path and the GPU plan read these, so a call means the same on both.

use crate::error::{Result, RnnError};
use crate::keras::config::{LayerSpec, MergeKind, MergeMode};
use crate::keras::graph::{Arg, Node, TensorRef};
use crate::keras::host::conv_geometry;
use crate::keras::model::KerasLayer;
use crate::keras::ops::{KerasOp, Operand, arity, output_type};
use crate::keras::tensor::{DType, TensorType, broadcast_shapes, reshape_target, resolve_axis};

/// A call's inputs, resolved from its node.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// The tensors (and an op's constants) the call computes on: one for most layers, the list
    /// of a merge, an op's operands.
    pub operands: Vec<Operand<TensorRef>>,
    /// The `mask=` tensor, for the layers that take one.
    pub mask: Option<TensorRef>,
    /// The `initial_state=` tensors of a recurrent layer (for a Bidirectional, the forward
    /// layer's then the backward layer's).
    pub initial_state: Vec<TensorRef>,
    /// The masks Keras attaches to a merge's inputs as it runs, one per operand (see
    /// `graph::propagate_masks`).
    pub input_masks: Vec<Option<TensorRef>>,
}

impl Call {
    /// The operand tensors, in order (constants left out).
    pub(crate) fn tensors(&self) -> impl Iterator<Item = TensorRef> + '_ {
        self.operands.iter().filter_map(|o| match o {
            Operand::Tensor(t) => Some(*t),
            Operand::Scalar(_) => None,
        })
    }

    /// Every tensor the call reads.
    pub(crate) fn reads(&self) -> Vec<TensorRef> {
        let mut out: Vec<TensorRef> = self.tensors().collect();
        out.extend(self.mask);
        out.extend(self.initial_state.iter().copied());
        out.extend(self.input_masks.iter().flatten());
        out
    }

    /// The first operand tensor.
    pub(crate) fn input(&self) -> TensorRef {
        self.tensors()
            .next()
            .expect("every layer call has a tensor operand")
    }
}

fn bad(message: String) -> RnnError {
    RnnError::bad_file("<model config>", message)
}

fn tensor(arg: &Arg, what: &str) -> Result<TensorRef> {
    match arg {
        Arg::Tensor(t) => Ok(*t),
        _ => Err(bad(format!(
            "layer {what:?} is called with a constant where a tensor goes"
        ))),
    }
}

/// A list argument's tensors (a single tensor counts as a list of one).
fn tensor_list(arg: &Arg, what: &str) -> Result<Vec<TensorRef>> {
    match arg {
        Arg::List(items) => items.iter().map(|a| tensor(a, what)).collect(),
        other => Ok(vec![tensor(other, what)?]),
    }
}

/// Checks a node's arguments against what `spec` takes and resolves them.
pub(crate) fn resolve(spec: &LayerSpec, node: &Node) -> Result<Call> {
    let what = spec.name();
    let mut call = Call {
        operands: Vec::new(),
        mask: None,
        initial_state: Vec::new(),
        input_masks: node.input_masks.clone(),
    };
    if let Some(mask) = &node.mask {
        if !spec.takes_mask() {
            return Err(bad(format!(
                "layer {what:?} ({}) is called with a mask, which it does not take",
                spec.class_name()
            )));
        }
        call.mask = Some(tensor(mask, what)?);
    }
    if let Some(state) = &node.initial_state {
        if !matches!(
            spec,
            LayerSpec::SimpleRnn(_) | LayerSpec::Bidirectional { .. }
        ) {
            return Err(bad(format!(
                "layer {what:?} ({}) is called with an initial_state",
                spec.class_name()
            )));
        }
        call.initial_state = tensor_list(state, what)?;
    }
    let args = &node.args;
    match spec {
        LayerSpec::Input { .. } => {
            if !args.is_empty() {
                return Err(bad(format!("input layer {what:?} reads other layers")));
            }
        }
        LayerSpec::Op { op, .. } => {
            let (count, list) = arity(op);
            let flat: Vec<&Arg> = if list {
                match args.as_slice() {
                    [Arg::List(items)] => items.iter().collect(),
                    _ => {
                        return Err(bad(format!("op {what:?} takes one list of tensors")));
                    }
                }
            } else {
                args.iter().collect()
            };
            if (!list && flat.len() != count) || flat.is_empty() {
                return Err(bad(format!(
                    "op {what:?} is called with {} arguments where it takes {count}",
                    flat.len()
                )));
            }
            for arg in flat {
                call.operands.push(match arg {
                    Arg::Tensor(t) => Operand::Tensor(*t),
                    Arg::Scalar(s) if !list => Operand::Scalar(*s),
                    _ => {
                        return Err(bad(format!(
                            "op {what:?} is called with an argument this crate does not read"
                        )));
                    }
                });
            }
        }
        LayerSpec::Merge { kind, .. } => {
            let list = match args.as_slice() {
                [one] => tensor_list(one, what)?,
                _ => {
                    return Err(bad(format!(
                        "merge layer {what:?} takes one list of tensors"
                    )));
                }
            };
            if list.is_empty() || (*kind == MergeKind::Subtract && list.len() != 2) {
                return Err(bad(format!(
                    "merge layer {what:?} is called on {} tensors",
                    list.len()
                )));
            }
            call.operands = list.into_iter().map(Operand::Tensor).collect();
        }
        _ => match args.as_slice() {
            [Arg::Tensor(t)] => call.operands.push(Operand::Tensor(*t)),
            // A recurrent layer called on [x, h0, ...] takes the rest as its initial state.
            [Arg::List(items)]
                if matches!(
                    spec,
                    LayerSpec::SimpleRnn(_) | LayerSpec::Bidirectional { .. }
                ) && !items.is_empty() =>
            {
                let list = tensor_list(&args[0], what)?;
                call.operands.push(Operand::Tensor(list[0]));
                if list.len() > 1 {
                    if !call.initial_state.is_empty() {
                        return Err(bad(format!("layer {what:?} is given two initial states")));
                    }
                    call.initial_state = list[1..].to_vec();
                }
            }
            _ => {
                return Err(bad(format!(
                    "layer {what:?} ({}) takes one tensor; its call has {} arguments",
                    spec.class_name(),
                    args.len()
                )));
            }
        },
    }
    Ok(call)
}

/// The output types of a layer's call, checking its inputs against the layer's weights.
pub(crate) fn layer_output_types(
    layer: &KerasLayer,
    inputs: &[TensorType],
    mask: Option<&TensorType>,
    initial_state: &[TensorType],
) -> Result<Vec<TensorType>> {
    let name = layer.name();
    let err = |message: String| bad(format!("layer {name:?}: {message}"));
    let x = &inputs[0];
    let float = |t: &TensorType| -> Result<()> {
        if t.dtype == DType::F32 {
            Ok(())
        } else {
            Err(err(format!(
                "its input is {}, not float32",
                t.dtype.keras_name()
            )))
        }
    };
    let last = |t: &TensorType, want: usize| -> Result<()> {
        match t.shape.last() {
            Some(Some(d)) if *d == want => Ok(()),
            Some(None) => Ok(()),
            _ => Err(err(format!(
                "its input has shape {}, where the last axis must be {want}",
                show(&t.shape)
            ))),
        }
    };
    let with_last = |t: &TensorType, size: usize| {
        let mut shape = t.shape.clone();
        *shape.last_mut().expect("checked rank") = Some(size);
        TensorType::new(DType::F32, shape)
    };
    Ok(match layer {
        KerasLayer::Embedding { table, .. } => {
            if x.dtype == DType::Bool {
                return Err(err("token ids must be integers or floats, not bool".into()));
            }
            let mut shape = x.shape.clone();
            shape.push(Some(table.ncols()));
            vec![TensorType::new(DType::F32, shape)]
        }
        KerasLayer::Masking { .. } | KerasLayer::Activation { .. } | KerasLayer::Dropout { .. } => {
            float(x)?;
            if x.shape.len() < 2 {
                return Err(err(format!(
                    "its input {} has no feature axis",
                    show(&x.shape)
                )));
            }
            vec![x.clone()]
        }
        KerasLayer::Dense { kernel, .. } => {
            float(x)?;
            if x.shape.len() < 2 {
                return Err(err(format!(
                    "its input {} has no feature axis",
                    show(&x.shape)
                )));
            }
            last(x, kernel.nrows())?;
            vec![with_last(x, kernel.ncols())]
        }
        KerasLayer::SimpleRnn {
            layer,
            return_state,
            ..
        } => {
            let spec = RecurrentShape::check(x, mask, layer.input_dim(), &err)?;
            let m = layer.units();
            let lstm = layer.cell().has_cell_state();
            check_states(initial_state, lstm, &[m], x, &err)?;
            let mut out = vec![spec.output(layer.config().return_sequences, m)];
            if *return_state {
                out.extend((0..1 + usize::from(lstm)).map(|_| spec.output(false, m)));
            }
            out
        }
        KerasLayer::Bidirectional {
            forward,
            backward,
            merge,
            return_state,
            ..
        } => {
            let spec = RecurrentShape::check(x, mask, forward.input_dim(), &err)?;
            let rs = forward.config().return_sequences;
            let (f, b) = (forward.units(), backward.units());
            let lstm = forward.cell().has_cell_state();
            check_states(initial_state, lstm, &[f, b], x, &err)?;
            let mut out = match merge {
                MergeMode::Concat => vec![spec.output(rs, f + b)],
                MergeMode::Separate => vec![spec.output(rs, f), spec.output(rs, b)],
                _ => vec![spec.output(rs, f)],
            };
            if *return_state {
                for m in [f, b] {
                    out.extend((0..1 + usize::from(lstm)).map(|_| spec.output(false, m)));
                }
            }
            out
        }
        KerasLayer::Merge { kind, .. } => merge_type(*kind, inputs, &err)?,
        KerasLayer::GlobalPooling { keepdims, .. } => {
            float(x)?;
            if x.shape.len() != 3 {
                return Err(err(format!(
                    "its input {} is not (batch, steps, features)",
                    show(&x.shape)
                )));
            }
            if let Some(m) = mask
                && (m.shape.len() != 2
                    || broadcast_shapes(&m.shape, &x.shape[..2], "mask").is_err())
            {
                return Err(err(format!(
                    "its mask {} is not (batch, steps) = {}",
                    show(&m.shape),
                    show(&x.shape[..2])
                )));
            }
            let shape = if *keepdims {
                vec![x.shape[0], Some(1), x.shape[2]]
            } else {
                vec![x.shape[0], x.shape[2]]
            };
            vec![TensorType::new(DType::F32, shape)]
        }
        KerasLayer::Flatten { .. } => {
            let size = x.shape[1..]
                .iter()
                .try_fold(1usize, |acc, d| d.map(|d| acc.saturating_mul(d)));
            vec![TensorType::new(x.dtype, vec![x.shape[0], size])]
        }
        KerasLayer::Reshape { target, .. } => {
            let known: Option<usize> = x.shape[1..]
                .iter()
                .try_fold(1usize, |acc, d| d.map(|d| acc.saturating_mul(d)));
            let mut shape = vec![x.shape[0]];
            match known {
                Some(total) => {
                    let sizes = reshape_target(total, target).ok_or_else(|| {
                        err(format!(
                            "its input {} does not reshape to {target:?}",
                            show(&x.shape)
                        ))
                    })?;
                    shape.extend(sizes.into_iter().map(Some));
                }
                None => shape.extend(target.iter().map(|&d| (d > 0).then_some(d as usize))),
            }
            vec![TensorType::new(x.dtype, shape)]
        }
        KerasLayer::Conv1D {
            kernel,
            stride,
            dilation,
            padding,
            ..
        } => {
            let (taps, channels, filters) = kernel.dim();
            float(x)?;
            if x.shape.len() != 3 {
                return Err(err(format!(
                    "its input {} is not (batch, steps, channels)",
                    show(&x.shape)
                )));
            }
            last(x, channels)?;
            let steps = match x.shape[1] {
                None => None,
                Some(t) => Some(
                    conv_geometry(t, taps, *stride, *dilation, *padding)
                        .ok_or_else(|| {
                            err(format!(
                                "its {t} steps are fewer than one window of {taps} taps"
                            ))
                        })?
                        .0,
                ),
            };
            vec![TensorType::new(
                DType::F32,
                vec![x.shape[0], steps, Some(filters)],
            )]
        }
        KerasLayer::LayerNormalization { .. } | KerasLayer::PRelu { .. } => {
            float(x)?;
            vec![x.clone()]
        }
        KerasLayer::BatchNormalization {
            axis, moving_mean, ..
        } => {
            float(x)?;
            if x.shape
                .get(*axis)
                .copied()
                .flatten()
                .is_some_and(|c| c != moving_mean.len())
            {
                return Err(err(format!(
                    "its input {} does not have {} channels on axis {axis}",
                    show(&x.shape),
                    moving_mean.len()
                )));
            }
            // Keras checks the mask's rank, then ignores it at inference.
            if let Some(m) = mask
                && m.shape.len() + 1 != x.shape.len()
            {
                return Err(err(format!(
                    "its mask {} is not one axis less than its input {}",
                    show(&m.shape),
                    show(&x.shape)
                )));
            }
            vec![x.clone()]
        }
        KerasLayer::Softmax { axes, .. } => {
            float(x)?;
            for &a in axes {
                resolve_axis(a, x.shape.len(), "Softmax").map_err(|e| err(e.to_string()))?;
            }
            if let Some(m) = mask {
                let fits = m.shape.len() <= x.shape.len()
                    && broadcast_shapes(&m.shape, &x.shape, "mask")
                        .is_ok_and(|s| s.len() == x.shape.len());
                if !fits {
                    return Err(err(format!(
                        "its mask {} does not broadcast to its input {}",
                        show(&m.shape),
                        show(&x.shape)
                    )));
                }
            }
            vec![x.clone()]
        }
        KerasLayer::RepeatVector { n, .. } => {
            float(x)?;
            if x.shape.len() != 2 {
                return Err(err(format!(
                    "its input {} is not (batch, features)",
                    show(&x.shape)
                )));
            }
            vec![TensorType::new(
                DType::F32,
                vec![x.shape[0], Some(*n), x.shape[1]],
            )]
        }
    })
}

/// The (batch, time, features) input of a recurrent layer and its mask, checked.
struct RecurrentShape {
    batch: Option<usize>,
    time: Option<usize>,
}

impl RecurrentShape {
    fn check(
        x: &TensorType,
        mask: Option<&TensorType>,
        d: usize,
        err: &impl Fn(String) -> RnnError,
    ) -> Result<Self> {
        if x.dtype != DType::F32 || x.shape.len() != 3 || x.shape[2].is_some_and(|f| f != d) {
            return Err(err(format!(
                "it needs a float32 (batch, time, {d}) input, not {} {}",
                x.dtype.keras_name(),
                show(&x.shape)
            )));
        }
        if let Some(mask) = mask {
            let fits = mask.shape.len() == 2
                && broadcast_shapes(&mask.shape, &x.shape[..2], "mask").is_ok_and(|s| s.len() == 2);
            if !fits {
                return Err(err(format!(
                    "its mask has shape {}, where (batch, time) = {} goes",
                    show(&mask.shape),
                    show(&x.shape[..2])
                )));
            }
        }
        Ok(RecurrentShape {
            batch: x.shape[0],
            time: x.shape[1],
        })
    }

    fn output(&self, return_sequences: bool, units: usize) -> TensorType {
        let shape = if return_sequences {
            vec![self.batch, self.time, Some(units)]
        } else {
            vec![self.batch, Some(units)]
        };
        TensorType::new(DType::F32, shape)
    }
}

/// Checks initial states: (batch, units) each, `per_direction` of them per direction (1, or 2
/// for an LSTM's h and c), for each of `units` (one direction, or forward and backward).
fn check_states(
    states: &[TensorType],
    lstm: bool,
    units: &[usize],
    x: &TensorType,
    err: &impl Fn(String) -> RnnError,
) -> Result<()> {
    if states.is_empty() {
        return Ok(());
    }
    let per_direction = 1 + usize::from(lstm);
    if states.len() != per_direction * units.len() {
        return Err(err(format!(
            "it is given {} initial states where it takes {}",
            states.len(),
            per_direction * units.len()
        )));
    }
    for (i, s) in states.iter().enumerate() {
        let m = units[i / per_direction];
        let batch_ok = match (s.shape.first().copied().flatten(), x.shape[0]) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        if s.dtype != DType::F32
            || s.shape.len() != 2
            || s.shape[1].is_some_and(|u| u != m)
            || !batch_ok
        {
            return Err(err(format!(
                "initial state {i} has shape {}, where (batch, {m}) goes",
                show(&s.shape)
            )));
        }
    }
    Ok(())
}

/// The output type of a merge layer: an elementwise merge broadcasts its inputs (of one rank),
/// a concatenation joins them along its axis.
fn merge_type(
    kind: MergeKind,
    inputs: &[TensorType],
    err: &impl Fn(String) -> RnnError,
) -> Result<Vec<TensorType>> {
    let rank = inputs[0].shape.len();
    for t in inputs {
        if t.dtype != DType::F32 || t.shape.len() != rank || rank < 2 {
            return Err(err(format!(
                "its inputs must be float32 tensors of one rank (at least 2), not {}",
                inputs
                    .iter()
                    .map(|t| format!("{} {}", t.dtype.keras_name(), show(&t.shape)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let mut shape = inputs[0].shape.clone();
    match kind {
        MergeKind::Concatenate(axis) => {
            let axis = resolve_axis(axis, rank, "Concatenate").map_err(|e| err(e.to_string()))?;
            for t in &inputs[1..] {
                for (k, (a, b)) in shape.iter_mut().zip(&t.shape).enumerate() {
                    if k == axis {
                        *a = a.zip(*b).map(|(x, y)| x + y);
                    } else {
                        *a = match (*a, *b) {
                            (Some(x), Some(y)) if x != y => {
                                return Err(err(format!(
                                    "its inputs differ on axis {k} ({x} and {y}); only axis {axis} may"
                                )));
                            }
                            (x, y) => x.or(y),
                        };
                    }
                }
            }
        }
        _ => {
            for t in &inputs[1..] {
                shape =
                    broadcast_shapes(&shape, &t.shape, "merge").map_err(|e| err(e.to_string()))?;
            }
        }
    }
    Ok(vec![TensorType::new(DType::F32, shape)])
}

/// The output types of an op's call.
pub(crate) fn op_output_types(
    op: &KerasOp,
    operands: &[Operand<TensorType>],
    name: &str,
) -> Result<Vec<TensorType>> {
    output_type(op, operands, &format!("op {name:?}"))
        .map(|t| vec![t])
        .map_err(|e| bad(e.to_string()))
}

/// A shape as Keras prints it: `(None, 6, 4)`.
pub(crate) fn show(shape: &[Option<usize>]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
        .collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}
