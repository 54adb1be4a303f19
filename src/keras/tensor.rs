//! The values that flow through a model's graph: float32, int32 or boolean tensors of any rank
//! (Keras's dtypes under JAX, which runs int64 as int32), their static types, and NumPy's
//! broadcasting, shared by the loader's shape checks and the host path.

use ndarray::{ArrayD, IxDyn, Zip};

use crate::error::{Result, RnnError};

/// A tensor's element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum DType {
    F32,
    I32,
    Bool,
}

impl DType {
    /// The dtype a Keras dtype name stands for, `None` for one this crate does not run. JAX
    /// without x64 computes int64 as int32 (and float64 as float32; not accepted here, as a
    /// model saved so was meant to run in double precision).
    pub(crate) fn from_keras(name: &str) -> Option<Self> {
        match name {
            "float32" => Some(DType::F32),
            "int32" | "int64" => Some(DType::I32),
            "bool" => Some(DType::Bool),
            _ => None,
        }
    }

    /// The name Keras prints.
    pub(crate) fn keras_name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I32 => "int32",
            DType::Bool => "bool",
        }
    }
}

/// A shape with the batch axis first, `None` where the config leaves a size open.
pub(crate) type Shape = Vec<Option<usize>>;

/// What the loader knows of a tensor before any input exists: its dtype and its shape.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub(crate) fn new(dtype: DType, shape: Shape) -> Self {
        TensorType { dtype, shape }
    }
}

/// The size two axes broadcast to, as NumPy pairs them (from the last); an error naming `what`
/// when they cannot.
fn broadcast_dim(a: Option<usize>, b: Option<usize>, what: &str) -> Result<Option<usize>> {
    Ok(match (a, b) {
        (Some(1), other) | (other, Some(1)) => other,
        (Some(x), Some(y)) if x == y => Some(x),
        (Some(x), Some(y)) => {
            return Err(RnnError::InvalidInput(format!(
                "{what}: sizes {x} and {y} do not broadcast"
            )));
        }
        // An open size against a known one: the known one (a batch of any size against 1 is
        // checked when the values exist).
        (None, known) | (known, None) => known,
    })
}

/// The broadcast of two static shapes (NumPy's rules), or an error naming `what`.
pub(crate) fn broadcast_shapes(
    a: &[Option<usize>],
    b: &[Option<usize>],
    what: &str,
) -> Result<Shape> {
    let rank = a.len().max(b.len());
    let at = |s: &[Option<usize>], i: usize| {
        let pad = rank - s.len();
        if i < pad { Some(1) } else { s[i - pad] }
    };
    (0..rank)
        .map(|i| broadcast_dim(at(a, i), at(b, i), what))
        .collect()
}

/// The broadcast of two concrete shapes.
pub(crate) fn broadcast_sizes(a: &[usize], b: &[usize], what: &str) -> Result<Vec<usize>> {
    let known = |s: &[usize]| s.iter().map(|&d| Some(d)).collect::<Shape>();
    Ok(broadcast_shapes(&known(a), &known(b), what)?
        .into_iter()
        .map(|d| d.unwrap_or(1))
        .collect())
}

/// Reshape's sizes for `total` elements after the batch axis: `target` with its -1 (at most
/// one) inferred; `None` when they do not hold `total` elements.
pub(crate) fn reshape_target(total: usize, target: &[i64]) -> Option<Vec<usize>> {
    let fixed: usize = target
        .iter()
        .filter(|&&d| d > 0)
        .map(|&d| d as usize)
        .product();
    let sizes: Vec<usize> = target
        .iter()
        .map(|&d| {
            if d > 0 {
                d as usize
            } else {
                total / fixed.max(1)
            }
        })
        .collect();
    (sizes.iter().product::<usize>() == total).then_some(sizes)
}

/// An axis as Keras writes it (negative from the end) for a tensor of `rank` axes.
pub(crate) fn resolve_axis(axis: i64, rank: usize, what: &str) -> Result<usize> {
    let r = rank as i64;
    if axis >= r || axis < -r {
        return Err(RnnError::InvalidInput(format!(
            "{what}: axis {axis} is out of range for a tensor of rank {rank}"
        )));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// A tensor on the host.
#[derive(Clone, Debug)]
pub(crate) enum HostTensor {
    F32(ArrayD<f32>),
    I32(ArrayD<i32>),
    Bool(ArrayD<bool>),
}

impl HostTensor {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            HostTensor::F32(_) => DType::F32,
            HostTensor::I32(_) => DType::I32,
            HostTensor::Bool(_) => DType::Bool,
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        match self {
            HostTensor::F32(a) => a.shape(),
            HostTensor::I32(a) => a.shape(),
            HostTensor::Bool(a) => a.shape(),
        }
    }

    /// The values as float32 (booleans 0 and 1), as Keras casts them.
    pub(crate) fn to_f32(&self) -> ArrayD<f32> {
        match self {
            HostTensor::F32(a) => a.clone(),
            HostTensor::I32(a) => a.mapv(|v| v as f32),
            HostTensor::Bool(a) => a.mapv(f32::from),
        }
    }

    /// The values as booleans: nonzero is true (NaN too), as a cast to bool gives.
    pub(crate) fn to_bool(&self) -> ArrayD<bool> {
        match self {
            HostTensor::F32(a) => a.mapv(|v| v != 0.0),
            HostTensor::I32(a) => a.mapv(|v| v != 0),
            HostTensor::Bool(a) => a.clone(),
        }
    }

    /// The values as int32: floats truncated toward zero (JAX's `astype`), booleans 0 and 1.
    ///
    /// # Errors
    /// A float that is NaN, infinite or outside int32, whose conversion XLA leaves undefined.
    pub(crate) fn to_i32(&self) -> Result<ArrayD<i32>> {
        Ok(match self {
            HostTensor::F32(a) => {
                if let Some(v) = a
                    .iter()
                    .find(|v| !v.is_finite() || v.abs() >= 2_147_483_648.0)
                {
                    return Err(RnnError::InvalidInput(format!(
                        "{v} cannot be cast to int32 (not finite or out of range)"
                    )));
                }
                a.mapv(|v| v.trunc() as i32)
            }
            HostTensor::I32(a) => a.clone(),
            HostTensor::Bool(a) => a.mapv(i32::from),
        })
    }

    /// The tensor cast to `dtype`.
    ///
    /// # Errors
    /// As [`HostTensor::to_i32`].
    pub(crate) fn cast(&self, dtype: DType) -> Result<HostTensor> {
        Ok(match dtype {
            DType::F32 => HostTensor::F32(self.to_f32()),
            DType::I32 => HostTensor::I32(self.to_i32()?),
            DType::Bool => HostTensor::Bool(self.to_bool()),
        })
    }

    /// The axes in `order` (a permutation).
    pub(crate) fn permuted(self, order: &[usize]) -> HostTensor {
        let order = IxDyn(order);
        match self {
            HostTensor::F32(a) => HostTensor::F32(a.permuted_axes(order)),
            HostTensor::I32(a) => HostTensor::I32(a.permuted_axes(order)),
            HostTensor::Bool(a) => HostTensor::Bool(a.permuted_axes(order)),
        }
    }

    /// The same values under another shape of as many elements (standard order).
    pub(crate) fn reshaped(self, shape: &[usize]) -> Result<HostTensor> {
        fn go<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>> {
            let a = if a.is_standard_layout() {
                a
            } else {
                a.as_standard_layout().into_owned()
            };
            let from = a.shape().to_vec();
            a.into_shape_with_order(IxDyn(shape)).map_err(|_| {
                RnnError::shape(
                    "tensor",
                    format!("{} elements", shape.iter().product::<usize>()),
                    &from,
                )
            })
        }
        Ok(match self {
            HostTensor::F32(a) => HostTensor::F32(go(a, shape)?),
            HostTensor::I32(a) => HostTensor::I32(go(a, shape)?),
            HostTensor::Bool(a) => HostTensor::Bool(go(a, shape)?),
        })
    }
}

/// `f(a, b)` over the broadcast of two arrays.
pub(crate) fn zip_broadcast<A: Clone, B: Clone, C>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    what: &str,
    f: impl Fn(&A, &B) -> C,
) -> Result<ArrayD<C>> {
    let shape = broadcast_sizes(a.shape(), b.shape(), what)?;
    let (a, b) = (
        a.broadcast(IxDyn(&shape)).expect("broadcast shape"),
        b.broadcast(IxDyn(&shape)).expect("broadcast shape"),
    );
    Ok(Zip::from(&a).and(&b).map_collect(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_as_numpy_does() {
        let s = |v: &[usize]| v.iter().map(|&d| Some(d)).collect::<Shape>();
        assert_eq!(
            broadcast_shapes(&s(&[4, 1, 3]), &s(&[5, 1]), "t").unwrap(),
            s(&[4, 5, 3])
        );
        assert_eq!(
            broadcast_shapes(&[None, Some(6)], &[], "t").unwrap(),
            vec![None, Some(6)]
        );
        assert!(broadcast_shapes(&s(&[2, 3]), &s(&[4]), "t").is_err());
        assert_eq!(resolve_axis(-1, 3, "t").unwrap(), 2);
        assert!(resolve_axis(3, 3, "t").is_err());
    }
}
