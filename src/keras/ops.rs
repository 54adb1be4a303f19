//! The Keras operations a functional config records beside its layers: the mask computations
//! Keras writes itself (`NotEqual` for `Embedding(mask_zero=True)`, `NotEqual` + `Any` for
//! `Masking`, `LogicalOr`, `ExpandDims`, `ZerosLike`, `Concatenate` and `Any` for the masks of
//! merges) and those users write (`ops.not_equal(ids, 1)` passed as `mask=`, `ops.cast`, ...),
//! with JAX's semantics: what each computes, its output type, and how the host runs it.

use ndarray::{ArrayD, Axis, IxDyn, concatenate};
use serde_json::Value;

use crate::error::{Result, RnnError};
use crate::keras::tensor::{
    DType, HostTensor, Shape, TensorType, broadcast_shapes, resolve_axis, zip_broadcast,
};

/// A constant argument of an op (`ops.not_equal(ids, 0)`'s `0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scalar {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    /// The scalar as a rank-0 tensor of JAX's weak type: an int or bool takes the other
    /// operand's type, a float makes an int operand float.
    fn tensor(self, other: DType) -> HostTensor {
        let zero = IxDyn(&[]);
        match (self, other) {
            (Scalar::Float(v), _) => HostTensor::F32(ArrayD::from_elem(zero, v as f32)),
            (Scalar::Int(v), DType::F32) => HostTensor::F32(ArrayD::from_elem(zero, v as f32)),
            (Scalar::Int(v), _) => HostTensor::I32(ArrayD::from_elem(
                zero,
                v.clamp(i32::MIN.into(), i32::MAX.into()) as i32,
            )),
            (Scalar::Bool(v), DType::F32) => HostTensor::F32(ArrayD::from_elem(zero, f32::from(v))),
            (Scalar::Bool(v), DType::I32) => HostTensor::I32(ArrayD::from_elem(zero, i32::from(v))),
            (Scalar::Bool(v), DType::Bool) => HostTensor::Bool(ArrayD::from_elem(zero, v)),
        }
    }

    pub(crate) fn dtype(self) -> DType {
        match self {
            Scalar::Int(_) => DType::I32,
            Scalar::Float(_) => DType::F32,
            Scalar::Bool(_) => DType::Bool,
        }
    }
}

/// The elementwise comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Compare {
    Equal,
    NotEqual,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
}

impl Compare {
    /// The Keras op class.
    pub(crate) fn class_name(self) -> &'static str {
        match self {
            Compare::Equal => "Equal",
            Compare::NotEqual => "NotEqual",
            Compare::Greater => "Greater",
            Compare::GreaterEqual => "GreaterEqual",
            Compare::Less => "Less",
            Compare::LessEqual => "LessEqual",
        }
    }

    /// The comparison of two values of one type (NaN compares false, and not-equal, as IEEE
    /// says).
    pub(crate) fn holds<T: PartialOrd>(self, a: &T, b: &T) -> bool {
        match self {
            Compare::Equal => a == b,
            Compare::NotEqual => a != b,
            Compare::Greater => a > b,
            Compare::GreaterEqual => a >= b,
            Compare::Less => a < b,
            Compare::LessEqual => a <= b,
        }
    }

    /// The number the elementwise kernel knows the comparison by (`RELATION`).
    pub(crate) fn code(self) -> u32 {
        match self {
            Compare::Equal => 0,
            Compare::NotEqual => 1,
            Compare::Greater => 2,
            Compare::GreaterEqual => 3,
            Compare::Less => 4,
            Compare::LessEqual => 5,
        }
    }
}

/// A Keras operation of a functional graph.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum KerasOp {
    /// `ops.equal`, `ops.not_equal`, `ops.greater`, ...: boolean, broadcast.
    Compare(Compare),
    /// `ops.any` / `ops.all` over `axes` (every axis when `None`).
    Reduce {
        any: bool,
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    /// `ops.logical_and` / `ops.logical_or`: nonzero is true.
    Logical { and: bool },
    /// `ops.logical_not`.
    LogicalNot,
    /// `ops.cast`.
    Cast(DType),
    /// `ops.expand_dims`.
    ExpandDims(Vec<i64>),
    /// `ops.zeros_like` / `ops.ones_like`, of the given dtype or the input's.
    Fill { one: bool, dtype: Option<DType> },
    /// `ops.concatenate` of a list of tensors.
    Concatenate { axis: i64 },
}

/// The op classes this crate runs, for messages.
pub(crate) const OP_CLASSES: &[&str] = &[
    "NotEqual",
    "Equal",
    "Greater",
    "GreaterEqual",
    "Less",
    "LessEqual",
    "Any",
    "All",
    "LogicalAnd",
    "LogicalOr",
    "LogicalNot",
    "Cast",
    "ExpandDims",
    "ZerosLike",
    "OnesLike",
    "Concatenate",
];

/// Whether a class name is one of Keras's op classes (`keras.src.ops`) rather than a layer, as
/// far as this crate needs to tell: the ops it runs and a few it refuses by name.
pub(crate) fn is_op_class(class: &str, module: Option<&str>) -> bool {
    match module {
        Some(m) => m.starts_with("keras.src.ops"),
        None => OP_CLASSES.contains(&class) && class != "Concatenate",
    }
}

fn bad(message: String) -> RnnError {
    RnnError::bad_file("<model config>", message)
}

/// An axis list as configs write it: an integer, a list of integers, or null.
fn axes(value: Option<&Value>, name: &str, what: &str) -> Result<Option<Vec<i64>>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(|a| Some(vec![a]))
            .ok_or_else(|| bad(format!("op {name:?}: {what} {n} is not an axis"))),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| bad(format!("op {name:?}: {what} {v} is not an axis")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(bad(format!("op {name:?}: {what} {other} is not an axis"))),
    }
}

fn dtype_of(value: Option<&Value>, name: &str) -> Result<Option<DType>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DType::from_keras(s).map(Some).ok_or_else(|| {
            bad(format!(
                "op {name:?}: dtype {s:?} is not supported (float32, int32, int64, bool are)"
            ))
        }),
        Some(other) => Err(bad(format!(
            "op {name:?}: dtype {other} is not a dtype name"
        ))),
    }
}

/// Parses an op entry of a functional config. Every parameter its config holds is honoured or
/// refused by name.
pub(crate) fn parse_op(class: &str, config: &Value, name: &str) -> Result<KerasOp> {
    let known: &[&str] = match class {
        "NotEqual" | "Equal" | "Greater" | "GreaterEqual" | "Less" | "LessEqual" | "LogicalAnd"
        | "LogicalOr" | "LogicalNot" => &[],
        "Any" | "All" => &["axis", "keepdims"],
        "Cast" => &["dtype"],
        "ExpandDims" => &["axis"],
        "ZerosLike" | "OnesLike" => &["dtype"],
        "Concatenate" => &["axis"],
        other => {
            return Err(bad(format!(
                "op {name:?} is a {other}, which this crate does not run (the ops it runs: {})",
                OP_CLASSES.join(", ")
            )));
        }
    };
    if let Some(map) = config.as_object()
        && let Some(key) = map
            .keys()
            .find(|k| *k != "name" && !known.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "op {name:?} ({class}) has parameter {key:?}, which this crate does not run"
        )));
    }
    Ok(match class {
        "NotEqual" => KerasOp::Compare(Compare::NotEqual),
        "Equal" => KerasOp::Compare(Compare::Equal),
        "Greater" => KerasOp::Compare(Compare::Greater),
        "GreaterEqual" => KerasOp::Compare(Compare::GreaterEqual),
        "Less" => KerasOp::Compare(Compare::Less),
        "LessEqual" => KerasOp::Compare(Compare::LessEqual),
        "LogicalAnd" => KerasOp::Logical { and: true },
        "LogicalOr" => KerasOp::Logical { and: false },
        "LogicalNot" => KerasOp::LogicalNot,
        "Any" | "All" => KerasOp::Reduce {
            any: class == "Any",
            axes: axes(config.get("axis"), name, "axis")?,
            keepdims: match config.get("keepdims") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(bad(format!(
                        "op {name:?}: keepdims {other} is not a boolean"
                    )));
                }
            },
        },
        "Cast" => KerasOp::Cast(
            dtype_of(config.get("dtype"), name)?
                .ok_or_else(|| bad(format!("op {name:?}: a Cast without a dtype")))?,
        ),
        "ExpandDims" => KerasOp::ExpandDims(
            axes(config.get("axis"), name, "axis")?
                .ok_or_else(|| bad(format!("op {name:?}: ExpandDims without an axis")))?,
        ),
        "ZerosLike" | "OnesLike" => KerasOp::Fill {
            one: class == "OnesLike",
            dtype: dtype_of(config.get("dtype"), name)?,
        },
        _ => KerasOp::Concatenate {
            axis: match config.get("axis") {
                None | Some(Value::Null) => 0,
                Some(v) => v
                    .as_i64()
                    .ok_or_else(|| bad(format!("op {name:?}: axis {v} is not an axis")))?,
            },
        },
    })
}

/// An operand of an op: a tensor's type, or a constant.
#[derive(Clone, Debug)]
pub(crate) enum Operand<T> {
    Tensor(T),
    Scalar(Scalar),
}

/// The arity an op's call must have: how many operands, and whether they come as one list.
pub(crate) fn arity(op: &KerasOp) -> (usize, bool) {
    match op {
        KerasOp::Compare(_) | KerasOp::Logical { .. } => (2, false),
        KerasOp::Concatenate { .. } => (0, true),
        _ => (1, false),
    }
}

/// Sorted, distinct axes of a rank-`rank` tensor.
pub(crate) fn resolve_axes(axes: &[i64], rank: usize, what: &str) -> Result<Vec<usize>> {
    let mut out = axes
        .iter()
        .map(|&a| resolve_axis(a, rank, what))
        .collect::<Result<Vec<_>>>()?;
    out.sort_unstable();
    if out.windows(2).any(|w| w[0] == w[1]) {
        return Err(RnnError::InvalidInput(format!(
            "{what}: repeated axis in {axes:?}"
        )));
    }
    Ok(out)
}

/// Where `expand_dims` puts its new axes in the output of rank `rank + axes.len()`.
pub(crate) fn expanded_axes(axes: &[i64], rank: usize, what: &str) -> Result<Vec<usize>> {
    resolve_axes(axes, rank + axes.len(), what)
}

/// Operand `i`, which must be a tensor.
fn tensor_operand<'o, T>(operands: &'o [Operand<T>], i: usize, what: &str) -> Result<&'o T> {
    match operands.get(i) {
        Some(Operand::Tensor(t)) => Ok(t),
        _ => Err(RnnError::InvalidInput(format!(
            "{what}: operand {i} must be a tensor"
        ))),
    }
}

/// The output type of `op` on operands of these types; `what` names the op in errors.
pub(crate) fn output_type(
    op: &KerasOp,
    operands: &[Operand<TensorType>],
    what: &str,
) -> Result<TensorType> {
    let tensor = |i: usize| tensor_operand(operands, i, what);
    let shape_of = |o: &Operand<TensorType>| match o {
        Operand::Tensor(t) => t.shape.clone(),
        Operand::Scalar(_) => Vec::new(),
    };
    Ok(match op {
        KerasOp::Compare(_) | KerasOp::Logical { .. } => {
            if !operands.iter().any(|o| matches!(o, Operand::Tensor(_))) {
                return Err(RnnError::InvalidInput(format!("{what}: no tensor operand")));
            }
            let shape = broadcast_shapes(&shape_of(&operands[0]), &shape_of(&operands[1]), what)?;
            TensorType::new(DType::Bool, shape)
        }
        KerasOp::LogicalNot => TensorType::new(DType::Bool, tensor(0)?.shape.clone()),
        KerasOp::Reduce { axes, keepdims, .. } => {
            let input = tensor(0)?;
            let rank = input.shape.len();
            let reduced = match axes {
                Some(a) => resolve_axes(a, rank, what)?,
                None => (0..rank).collect(),
            };
            let shape = input
                .shape
                .iter()
                .enumerate()
                .filter_map(|(i, &d)| match (reduced.contains(&i), keepdims) {
                    (false, _) => Some(d),
                    (true, true) => Some(Some(1)),
                    (true, false) => None,
                })
                .collect();
            TensorType::new(DType::Bool, shape)
        }
        KerasOp::Cast(dtype) => TensorType::new(*dtype, tensor(0)?.shape.clone()),
        KerasOp::ExpandDims(axes) => {
            let input = tensor(0)?;
            let at = expanded_axes(axes, input.shape.len(), what)?;
            let mut rest = input.shape.iter();
            let shape = (0..input.shape.len() + at.len())
                .map(|i| {
                    if at.contains(&i) {
                        Some(1)
                    } else {
                        *rest.next().expect("rank")
                    }
                })
                .collect();
            TensorType::new(input.dtype, shape)
        }
        KerasOp::Fill { dtype, .. } => {
            let input = tensor(0)?;
            TensorType::new(dtype.unwrap_or(input.dtype), input.shape.clone())
        }
        KerasOp::Concatenate { axis } => {
            let first = tensor(0)?;
            let rank = first.shape.len();
            let axis = resolve_axis(*axis, rank, what)?;
            let mut shape: Shape = first.shape.clone();
            for i in 1..operands.len() {
                let t = tensor(i)?;
                if t.shape.len() != rank {
                    return Err(RnnError::InvalidInput(format!(
                        "{what}: operands of ranks {rank} and {}",
                        t.shape.len()
                    )));
                }
                for (k, (a, b)) in shape.iter_mut().zip(&t.shape).enumerate() {
                    if k == axis {
                        *a = a.zip(*b).map(|(x, y)| x + y);
                    } else if let (Some(x), Some(y)) = (*a, *b)
                        && x != y
                    {
                        return Err(RnnError::InvalidInput(format!(
                            "{what}: sizes {x} and {y} differ on axis {k}"
                        )));
                    } else {
                        *a = a.or(*b);
                    }
                }
            }
            // JAX promotes mixed operands; masks are all boolean.
            let dtype = operands
                .iter()
                .filter_map(|o| match o {
                    Operand::Tensor(t) => Some(t.dtype),
                    Operand::Scalar(_) => None,
                })
                .fold(first.dtype, promote);
            TensorType::new(dtype, shape)
        }
    })
}

/// JAX's promotion of two tensor dtypes: bool < int32 < float32.
pub(crate) fn promote(a: DType, b: DType) -> DType {
    match (a, b) {
        (DType::F32, _) | (_, DType::F32) => DType::F32,
        (DType::I32, _) | (_, DType::I32) => DType::I32,
        _ => DType::Bool,
    }
}

/// The dtype two operands are compared in: int32 when both are integers or booleans and one
/// is an integer, float32 when either is a float (a Python float makes an int tensor float),
/// bool when both are booleans.
pub(crate) fn comparison_dtype(a: &Operand<DType>, b: &Operand<DType>) -> DType {
    let of = |o: &Operand<DType>| match o {
        Operand::Tensor(d) => *d,
        Operand::Scalar(s) => s.dtype(),
    };
    promote(of(a), of(b))
}

/// Runs `op` on the host.
pub(crate) fn run_op(
    op: &KerasOp,
    operands: &[Operand<HostTensor>],
    what: &str,
) -> Result<HostTensor> {
    let tensor = |i: usize| tensor_operand(operands, i, what);
    Ok(match op {
        KerasOp::Compare(kind) => {
            let dtypes: Vec<Operand<DType>> = operands
                .iter()
                .map(|o| match o {
                    Operand::Tensor(t) => Operand::Tensor(t.dtype()),
                    Operand::Scalar(s) => Operand::Scalar(*s),
                })
                .collect();
            let common = comparison_dtype(&dtypes[0], &dtypes[1]);
            let as_tensor = |o: &Operand<HostTensor>| -> Result<HostTensor> {
                match o {
                    Operand::Tensor(t) => t.cast(common),
                    Operand::Scalar(s) => s.tensor(common).cast(common),
                }
            };
            let (a, b) = (as_tensor(&operands[0])?, as_tensor(&operands[1])?);
            let kind = *kind;
            let out = match (&a, &b) {
                (HostTensor::F32(a), HostTensor::F32(b)) => {
                    zip_broadcast(a, b, what, |x, y| kind.holds(x, y))?
                }
                (HostTensor::I32(a), HostTensor::I32(b)) => {
                    zip_broadcast(a, b, what, |x, y| kind.holds(x, y))?
                }
                (HostTensor::Bool(a), HostTensor::Bool(b)) => {
                    zip_broadcast(a, b, what, |x, y| kind.holds(x, y))?
                }
                _ => unreachable!("both cast to one dtype"),
            };
            HostTensor::Bool(out)
        }
        KerasOp::Logical { and } => {
            let as_bool = |o: &Operand<HostTensor>| match o {
                Operand::Tensor(t) => t.to_bool(),
                Operand::Scalar(s) => s.tensor(DType::Bool).to_bool(),
            };
            let (a, b) = (as_bool(&operands[0]), as_bool(&operands[1]));
            let and = *and;
            HostTensor::Bool(zip_broadcast(&a, &b, what, |x, y| {
                if and { *x && *y } else { *x || *y }
            })?)
        }
        KerasOp::LogicalNot => HostTensor::Bool(tensor(0)?.to_bool().mapv(|v| !v)),
        KerasOp::Reduce {
            any,
            axes,
            keepdims,
        } => {
            let mut x = tensor(0)?.to_bool();
            let rank = x.ndim();
            let reduced = match axes {
                Some(a) => resolve_axes(a, rank, what)?,
                None => (0..rank).collect(),
            };
            // From the last axis, so that the earlier ones keep their numbers.
            for &axis in reduced.iter().rev() {
                let folded = x.map_axis(Axis(axis), |lane| {
                    if *any {
                        lane.iter().any(|v| *v)
                    } else {
                        lane.iter().all(|v| *v)
                    }
                });
                x = if *keepdims {
                    folded.insert_axis(Axis(axis))
                } else {
                    folded
                };
            }
            HostTensor::Bool(x)
        }
        KerasOp::Cast(dtype) => tensor(0)?.cast(*dtype)?,
        KerasOp::ExpandDims(axes) => {
            let x = tensor(0)?.clone();
            let at = expanded_axes(axes, x.shape().len(), what)?;
            let mut rest = x.shape().iter();
            let shape: Vec<usize> = (0..x.shape().len() + at.len())
                .map(|i| {
                    if at.contains(&i) {
                        1
                    } else {
                        *rest.next().expect("rank")
                    }
                })
                .collect();
            x.reshaped(&shape)?
        }
        KerasOp::Fill { one, dtype } => {
            let x = tensor(0)?;
            let shape = IxDyn(x.shape());
            match dtype.unwrap_or(x.dtype()) {
                DType::F32 => HostTensor::F32(ArrayD::from_elem(shape, f32::from(u8::from(*one)))),
                DType::I32 => HostTensor::I32(ArrayD::from_elem(shape, i32::from(*one))),
                DType::Bool => HostTensor::Bool(ArrayD::from_elem(shape, *one)),
            }
        }
        KerasOp::Concatenate { axis } => {
            let tensors = (0..operands.len())
                .map(tensor)
                .collect::<Result<Vec<_>>>()?;
            let rank = tensors[0].shape().len();
            let axis = Axis(resolve_axis(*axis, rank, what)?);
            let dtype = tensors
                .iter()
                .map(|t| t.dtype())
                .fold(tensors[0].dtype(), promote);
            let fail = |e: ndarray::ShapeError| RnnError::InvalidInput(format!("{what}: {e}"));
            match dtype {
                DType::F32 => {
                    let arrays: Vec<ArrayD<f32>> = tensors.iter().map(|t| t.to_f32()).collect();
                    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
                    HostTensor::F32(concatenate(axis, &views).map_err(fail)?)
                }
                DType::I32 => {
                    let arrays = tensors
                        .iter()
                        .map(|t| t.to_i32())
                        .collect::<Result<Vec<_>>>()?;
                    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
                    HostTensor::I32(concatenate(axis, &views).map_err(fail)?)
                }
                DType::Bool => {
                    let arrays: Vec<ArrayD<bool>> = tensors.iter().map(|t| t.to_bool()).collect();
                    let views: Vec<_> = arrays.iter().map(|a| a.view()).collect();
                    HostTensor::Bool(concatenate(axis, &views).map_err(fail)?)
                }
            }
        }
    })
}
