//! The layers without recurrence, computed on the host with ndarray: the reference the GPU
//! kernels are checked against, and the path a CPU backend (or a model too large for the
//! device) takes. Each follows what Keras 3 computes on JAX.

use ndarray::{Array1, Array2, ArrayD, Axis, IxDyn, Zip, concatenate};

use crate::activation::Activation;
use crate::error::{Result, RnnError};
use crate::keras::config::{ConvPadding, MergeKind};
use crate::keras::model::{ActivationLayer, KerasLayer};
use crate::keras::tensor::{HostTensor, reshape_target, resolve_axis, zip_broadcast};

/// `Embedding`: the rows of `table` for each id (floats truncated to int32, as Keras casts
/// them).
///
/// # Errors
/// An id outside the vocabulary, or a float that is not a finite int32.
pub(crate) fn embedding(table: &Array2<f32>, ids: &HostTensor) -> Result<ArrayD<f32>> {
    let ids = ids
        .to_i32()
        .map_err(|_| RnnError::InvalidInput("a token id is not an integer in range".into()))?;
    let (vocab, width) = table.dim();
    check_ids(ids.iter().copied(), vocab)?;
    let mut data = Vec::with_capacity(ids.len() * width);
    for &id in ids.iter() {
        data.extend(table.row(id as usize).iter().copied());
    }
    let mut shape = ids.shape().to_vec();
    shape.push(width);
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), data).expect("one row per id"))
}

/// Checks token ids against a vocabulary of `vocab` rows.
///
/// # Errors
/// [`RnnError::InvalidInput`] naming the first id outside `0..vocab`.
pub(crate) fn check_ids(ids: impl Iterator<Item = i32>, vocab: usize) -> Result<()> {
    for id in ids {
        if usize::try_from(id).map_or(true, |i| i >= vocab) {
            return Err(RnnError::InvalidInput(format!(
                "token id {id} is outside the Embedding's vocabulary 0..{vocab}"
            )));
        }
    }
    Ok(())
}

/// `Masking`'s output: steps whose features all equal `mask_value` multiplied by 0 (so NaN and
/// infinities stay NaN, as Keras multiplies by the mask).
pub(crate) fn masking(x: &ArrayD<f32>, mask_value: f32) -> ArrayD<f32> {
    let last = Axis(x.ndim() - 1);
    let keep = x.map_axis(last, |row| row.iter().any(|v| *v != mask_value));
    let mut out = x.clone();
    Zip::from(out.lanes_mut(last))
        .and(&keep)
        .for_each(|mut row, &keep| {
            if !keep {
                row.mapv_inplace(|v| v * 0.0);
            }
        });
    out
}

/// The array as rows of its last axis, in standard layout.
pub(crate) fn rows(x: ArrayD<f32>) -> Array2<f32> {
    let width = x.shape().last().copied().unwrap_or(1).max(1);
    let count = x.len() / width;
    let x = if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    };
    x.into_shape_with_order((count, width))
        .expect("standard layout reshapes")
}

/// An activation over the last axis of `x`.
pub(crate) fn activation(x: ArrayD<f32>, activation: Activation) -> ArrayD<f32> {
    let shape = x.shape().to_vec();
    let mut y = rows(x);
    apply_rows(&mut y, activation);
    y.into_shape_with_order(IxDyn(&shape)).expect("same size")
}

pub(crate) fn apply_rows(rows: &mut Array2<f32>, activation: Activation) {
    if activation == Activation::Linear {
        return;
    }
    for mut row in rows.rows_mut() {
        activation.apply_row(row.as_slice_mut().expect("standard layout rows"));
    }
}

/// `Dense` over the last axis: `activation(x · kernel + bias)`.
pub(crate) fn dense(
    x: ArrayD<f32>,
    kernel: &Array2<f32>,
    bias: Option<&Array1<f32>>,
    act: Activation,
) -> ArrayD<f32> {
    let mut shape = x.shape().to_vec();
    let mut y = rows(x).dot(kernel);
    if let Some(b) = bias {
        y += b;
    }
    apply_rows(&mut y, act);
    *shape.last_mut().expect("at least one axis") = kernel.ncols();
    y.into_shape_with_order(IxDyn(&shape)).expect("same size")
}

/// A merge layer over its inputs: Keras folds the elementwise ones from the first input on
/// (`Average` divides the sum by the count; `Maximum` and `Minimum` propagate NaN, as
/// `jnp.maximum` does).
pub(crate) fn merge(kind: MergeKind, inputs: &[ArrayD<f32>]) -> Result<ArrayD<f32>> {
    let what = kind.class_name();
    if let MergeKind::Concatenate(axis) = kind {
        let axis = Axis(resolve_axis(axis, inputs[0].ndim(), what)?);
        let views: Vec<_> = inputs.iter().map(|a| a.view()).collect();
        return concatenate(axis, &views)
            .map_err(|e| RnnError::InvalidInput(format!("{what}: {e}")));
    }
    let mut out = inputs[0].clone();
    for x in &inputs[1..] {
        out = match kind {
            MergeKind::Add | MergeKind::Average => zip_broadcast(&out, x, what, |a, b| a + b)?,
            MergeKind::Subtract => zip_broadcast(&out, x, what, |a, b| a - b)?,
            MergeKind::Multiply => zip_broadcast(&out, x, what, |a, b| a * b)?,
            MergeKind::Maximum => zip_broadcast(&out, x, what, |a, b| max_nan(*a, *b))?,
            MergeKind::Minimum => zip_broadcast(&out, x, what, |a, b| -max_nan(-*a, -*b))?,
            MergeKind::Concatenate(_) => unreachable!("handled above"),
        };
    }
    if kind == MergeKind::Average {
        let count = inputs.len() as f32;
        out.mapv_inplace(|v| v / count);
    }
    Ok(out)
}

/// A merge layer over its inputs with the masks Keras attaches to them as it runs (one per
/// input, *N* × *T* for inputs *N* × *T* × *F*): `Maximum` and `Minimum` take, where an input
/// is masked, the value merged so far (and where that is masked, the input's), `Multiply`
/// takes 1 where an input is masked and 0 where every input is; the other merges ignore
/// masks (`Merge._apply_merge_op_and_or_mask`, `Multiply._merge_function`).
pub(crate) fn merge_masked(
    kind: MergeKind,
    inputs: &[ArrayD<f32>],
    masks: &[Option<ArrayD<bool>>],
) -> Result<ArrayD<f32>> {
    let masked = matches!(
        kind,
        MergeKind::Maximum | MergeKind::Minimum | MergeKind::Multiply
    ) && masks.iter().any(Option::is_some);
    if !masked {
        return merge(kind, inputs);
    }
    let what = kind.class_name();
    // Each mask broadcast along its input's last axis.
    let widened = |m: &ArrayD<bool>, x: &ArrayD<f32>| -> Result<ArrayD<bool>> {
        let m = m.view().insert_axis(Axis(m.ndim()));
        m.broadcast(IxDyn(x.shape()))
            .map(|b| b.to_owned())
            .ok_or_else(|| {
                RnnError::InvalidInput(format!(
                    "{what}: a mask of shape {:?} does not fit its input {:?}",
                    m.shape(),
                    x.shape()
                ))
            })
    };
    let masks = inputs
        .iter()
        .zip(masks)
        .map(|(x, m)| m.as_ref().map(|m| widened(m, x)).transpose())
        .collect::<Result<Vec<_>>>()?;
    if kind == MergeKind::Multiply {
        let all = masks.iter().all(Option::is_some);
        let mut output: Option<ArrayD<f32>> = None;
        let mut output_mask: Option<ArrayD<bool>> = None;
        for (x, m) in inputs.iter().zip(&masks) {
            let x = match m {
                Some(m) => {
                    if all {
                        output_mask = Some(match output_mask {
                            None => m.clone(),
                            Some(o) => zip_broadcast(&o, m, what, |a, b| *a || *b)?,
                        });
                    }
                    zip_broadcast(m, x, what, |keep, v| if *keep { *v } else { 1.0 })?
                }
                None => x.clone(),
            };
            output = Some(match output {
                None => x,
                Some(o) => zip_broadcast(&o, &x, what, |a, b| a * b)?,
            });
        }
        let output = output.expect("at least one input");
        return match output_mask {
            Some(m) if all => {
                zip_broadcast(&m, &output, what, |keep, v| if *keep { *v } else { 0.0 })
            }
            _ => Ok(output),
        };
    }
    let op = |a: f32, b: f32| {
        if kind == MergeKind::Maximum {
            max_nan(a, b)
        } else {
            -max_nan(-a, -b)
        }
    };
    let mut output: Option<ArrayD<f32>> = None;
    let mut output_mask: Option<ArrayD<bool>> = None;
    for (x, m) in inputs.iter().zip(&masks) {
        let Some(so_far) = output.take() else {
            output = Some(x.clone());
            output_mask = m.clone();
            continue;
        };
        let x = match m {
            Some(m) => where3(m, x, &so_far, what)?,
            None => x.clone(),
        };
        let so_far = match &output_mask {
            Some(om) => where3(om, &so_far, &x, what)?,
            None => so_far,
        };
        output_mask = match (m, output_mask) {
            (Some(m), Some(om)) => Some(zip_broadcast(&om, m, what, |a, b| *a || *b)?),
            _ => None,
        };
        output = Some(zip_broadcast(&so_far, &x, what, |a, b| op(*a, *b))?);
    }
    Ok(output.expect("at least one input"))
}

/// `where(condition, a, b)`, all three broadcast together.
fn where3(
    condition: &ArrayD<bool>,
    a: &ArrayD<f32>,
    b: &ArrayD<f32>,
    what: &str,
) -> Result<ArrayD<f32>> {
    let picked = zip_broadcast(condition, a, what, |c, v| (*c, *v))?;
    zip_broadcast(&picked, b, what, |(c, v), w| if *c { *v } else { *w })
}

/// `max(a, b)`, NaN when either is.
fn max_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// `RepeatVector`: *N* × *F* to *N* × `n` × *F*.
pub(crate) fn repeat_vector(x: &ArrayD<f32>, n: usize) -> Result<ArrayD<f32>> {
    let &[batch, features] = x.shape() else {
        return Err(RnnError::shape("RepeatVector input", "N × F", x.shape()));
    };
    let x = x.view().insert_axis(Axis(1));
    Ok(x.broadcast(IxDyn(&[batch, n, features]))
        .expect("broadcast along the new axis")
        .to_owned())
}

/// `GlobalAveragePooling1D` / `GlobalMaxPooling1D` over the steps of *N* × *T* × *F*: the
/// mean (of the steps the mask keeps, Keras's `sum(where(mask, x, 0)) / sum(mask)`: NaN for a
/// row with none) or the maximum (NaN when any step is, as `jnp.max`).
pub(crate) fn global_pooling(
    x: &ArrayD<f32>,
    mask: Option<&ArrayD<bool>>,
    max: bool,
    keepdims: bool,
) -> Result<ArrayD<f32>> {
    if x.ndim() != 3 {
        return Err(RnnError::shape("pooling input", "N × T × F", x.shape()));
    }
    let steps = Axis(1);
    let out = if max {
        x.map_axis(steps, |lane| {
            lane.iter().copied().fold(f32::NEG_INFINITY, max_nan)
        })
    } else if let Some(mask) = mask {
        if mask.shape() != &x.shape()[..2] {
            return Err(RnnError::shape("pooling mask", "N × T", mask.shape()));
        }
        let keep = mask.view().insert_axis(Axis(2));
        let kept = where3(&keep.to_owned(), x, &ArrayD::zeros(IxDyn(&[])), "pooling")?;
        let count = mask.map_axis(Axis(1), |m| m.iter().filter(|k| **k).count() as f32);
        kept.sum_axis(steps) / count.insert_axis(Axis(1))
    } else {
        x.mean_axis(steps).expect("at least one step")
    };
    Ok(if keepdims {
        out.insert_axis(steps)
    } else {
        out
    })
}

/// `Flatten`: the axes after the batch as one (channels first: the second axis moved last).
pub(crate) fn flatten(x: HostTensor, channels_first: bool) -> Result<HostTensor> {
    let shape = x.shape().to_vec();
    let x = if channels_first && shape.len() > 2 {
        let mut order: Vec<usize> = vec![0];
        order.extend(2..shape.len());
        order.push(1);
        x.permuted(&order)
    } else {
        x
    };
    let rest: usize = shape[1..].iter().product();
    x.reshaped(&[shape[0], rest])
}

/// `Reshape`: the axes after the batch to `target` (a -1 inferred from the rest).
pub(crate) fn reshape(x: HostTensor, target: &[i64]) -> Result<HostTensor> {
    let shape = x.shape().to_vec();
    let sizes = reshape_target(shape[1..].iter().product(), target)
        .ok_or_else(|| RnnError::shape("Reshape input", format!("N × {target:?}"), &shape))?;
    let mut out = vec![shape[0]];
    out.extend(sizes);
    x.reshaped(&out)
}

/// `x` with `axes` (ascending) moved last, as rows of their sizes together: the rows, the
/// permutation that moved them, and the permuted shape.
fn axes_last(x: &ArrayD<f32>, axes: &[usize]) -> (Array2<f32>, Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..x.ndim()).filter(|a| !axes.contains(a)).collect();
    order.extend_from_slice(axes);
    let permuted = x.view().permuted_axes(IxDyn(&order));
    let shape = permuted.shape().to_vec();
    let width: usize = axes.iter().map(|&a| x.shape()[a]).product();
    let rows = permuted
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((x.len() / width.max(1), width))
        .expect("standard layout reshapes");
    (rows, order, shape)
}

/// Rows back in the shape and order [`axes_last`] took them from.
fn axes_back(rows: Array2<f32>, order: &[usize], shape: &[usize]) -> ArrayD<f32> {
    let mut inverse = vec![0; order.len()];
    for (i, &o) in order.iter().enumerate() {
        inverse[o] = i;
    }
    rows.into_shape_with_order(IxDyn(shape))
        .expect("same size")
        .permuted_axes(IxDyn(&inverse))
        .as_standard_layout()
        .into_owned()
}

/// `LayerNormalization` over `axes` (ascending), as JAX computes it: the mean and the (two-pass)
/// variance of each row, `inv = rsqrt(var + epsilon) · gamma`, `x · inv + (-mean · inv + beta)`;
/// with `rms_scaling`, `x · inv`.
pub(crate) fn layer_normalization(
    x: &ArrayD<f32>,
    axes: &[usize],
    epsilon: f32,
    gamma: Option<&ArrayD<f32>>,
    beta: Option<&ArrayD<f32>>,
    rms_scaling: bool,
) -> ArrayD<f32> {
    let (mut rows, order, shape) = axes_last(x, axes);
    let width = rows.ncols() as f32;
    let flat = |a: Option<&ArrayD<f32>>| a.map(|a| a.iter().copied().collect::<Vec<f32>>());
    let (gamma, beta) = (flat(gamma), flat(beta));
    for mut row in rows.rows_mut() {
        let mean = row.sum() / width;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width;
        let inv = 1.0 / (var + epsilon).sqrt();
        for (i, v) in row.iter_mut().enumerate() {
            let inv = gamma.as_ref().map_or(inv, |g| inv * g[i]);
            *v = if rms_scaling {
                *v * inv
            } else {
                let res = -mean * inv + beta.as_ref().map_or(0.0, |b| b[i]);
                *v * inv + res
            };
        }
    }
    axes_back(rows, &order, &shape)
}

/// BatchNormalization's affine map per channel as JAX builds it from the moving statistics:
/// `inv = rsqrt(var + epsilon) · gamma`, `res = -mean · inv + beta`; the output is
/// `x · inv + res`. `None` for another layer.
pub(crate) fn batch_norm_affine(layer: &KerasLayer) -> Option<(Array1<f32>, Array1<f32>)> {
    let KerasLayer::BatchNormalization {
        epsilon,
        gamma,
        beta,
        moving_mean,
        moving_variance,
        ..
    } = layer
    else {
        return None;
    };
    let mut inv = moving_variance.mapv(|v| 1.0 / (v + epsilon).sqrt());
    if let Some(g) = gamma {
        inv *= g;
    }
    let mut res = -moving_mean * &inv;
    if let Some(b) = beta {
        res += b;
    }
    Some((inv, res))
}

/// `BatchNormalization` at inference along `axis`.
pub(crate) fn batch_normalization(
    x: &ArrayD<f32>,
    axis: usize,
    inv: &Array1<f32>,
    res: &Array1<f32>,
) -> ArrayD<f32> {
    let mut shape = vec![1; x.ndim()];
    shape[axis] = inv.len();
    let along = |a: &Array1<f32>| {
        a.clone()
            .into_shape_with_order(IxDyn(&shape))
            .expect("one value per channel")
    };
    x * &along(inv) + &along(res)
}

/// The activation layer a layer calls on its output (`x`), or `x` itself without one.
pub(crate) fn activation_after(
    x: ArrayD<f32>,
    then: Option<&ActivationLayer>,
) -> Result<ArrayD<f32>> {
    match then {
        None => Ok(x),
        Some(ActivationLayer::PRelu { alpha, .. }) => prelu(&x, alpha),
        // Keras's layers call their activation without a mask.
        Some(ActivationLayer::Softmax { axes, .. }) => softmax(&x, axes, None),
    }
}

/// `PReLU`: `relu(x) - alpha · relu(-x)`, alpha broadcast over the batch.
pub(crate) fn prelu(x: &ArrayD<f32>, alpha: &ArrayD<f32>) -> Result<ArrayD<f32>> {
    let relu = |v: f32| if v < 0.0 { 0.0 } else { v };
    let alpha = alpha.view().insert_axis(Axis(0)).to_owned();
    zip_broadcast(x, &alpha, "PReLU", |v, a| relu(*v) - a * relu(-v))
}

/// The `Softmax` layer: masked positions (false, or at most 0.5 for a float mask) take -1e9,
/// then the softmax along `axes` (several as one), then masked positions are 0.
pub(crate) fn softmax(
    x: &ArrayD<f32>,
    axes: &[i64],
    mask: Option<&HostTensor>,
) -> Result<ArrayD<f32>> {
    let keep = mask.map(|m| match m {
        HostTensor::Bool(b) => b.clone(),
        other => other.to_f32().mapv(|v| v > 0.5),
    });
    let x = match &keep {
        Some(keep) => where3(keep, x, &ArrayD::from_elem(IxDyn(&[]), -1e9), "Softmax")?,
        None => x.clone(),
    };
    let axes = crate::keras::ops::resolve_axes(axes, x.ndim(), "Softmax")?;
    let (mut rows, order, shape) = axes_last(&x, &axes);
    apply_rows(&mut rows, Activation::Softmax);
    let out = axes_back(rows, &order, &shape);
    // Masked positions end at 0, even where a whole row was masked.
    match &keep {
        Some(keep) => where3(keep, &out, &ArrayD::zeros(IxDyn(&[])), "Softmax"),
        None => Ok(out),
    }
}

/// Where Conv1D's windows fall on an input of `steps`: how many output steps, and how many
/// zero steps go before the input (XLA's `SAME` puts the odd one after). `None` when not even one
/// window fits.
pub(crate) fn conv_geometry(
    steps: usize,
    taps: usize,
    stride: usize,
    dilation: usize,
    padding: ConvPadding,
) -> Option<(usize, usize)> {
    let span = dilation * (taps - 1) + 1;
    let (padded, left, out) = match padding {
        ConvPadding::Valid => (steps, 0, None),
        ConvPadding::Causal => (steps + span - 1, span - 1, None),
        ConvPadding::Same => {
            let out = steps.div_ceil(stride);
            let total = ((out - 1) * stride + span).saturating_sub(steps);
            (steps + total, total / 2, Some(out))
        }
    };
    let out = out.unwrap_or(if padded >= span {
        (padded - span) / stride + 1
    } else {
        0
    });
    (out > 0).then_some((out, left))
}

/// `Conv1D` on *N* × *T* × *C*: the windows as rows (im2col), one matrix product with the
/// kernel (*K*·*C* × *F*), the bias, the activation.
pub(crate) fn conv1d(
    x: &ArrayD<f32>,
    kernel: &ndarray::Array3<f32>,
    bias: Option<&Array1<f32>>,
    stride: usize,
    dilation: usize,
    padding: ConvPadding,
    act: Activation,
) -> Result<ArrayD<f32>> {
    let &[n, t, c] = x.shape() else {
        return Err(RnnError::shape("Conv1D input", "N × T × C", x.shape()));
    };
    let (taps, _, filters) = kernel.dim();
    let (out, left) = conv_geometry(t, taps, stride, dilation, padding).ok_or_else(|| {
        RnnError::InvalidInput(format!(
            "Conv1D: {t} steps are fewer than one window of {taps} taps at dilation {dilation}"
        ))
    })?;
    let mut rows = Array2::<f32>::zeros((n * out, taps * c));
    for b in 0..n {
        for s in 0..out {
            let mut row = rows.row_mut(b * out + s);
            for k in 0..taps {
                let at = (s * stride + k * dilation)
                    .checked_sub(left)
                    .filter(|&i| i < t);
                if let Some(i) = at {
                    for ch in 0..c {
                        row[k * c + ch] = x[[b, i, ch]];
                    }
                }
            }
        }
    }
    let weights = kernel
        .view()
        .into_shape_with_order((taps * c, filters))
        .expect("standard layout");
    let mut y = rows.dot(&weights);
    if let Some(b) = bias {
        y += b;
    }
    apply_rows(&mut y, act);
    Ok(y.into_shape_with_order(IxDyn(&[n, out, filters]))
        .expect("one row per output step"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_normalization_over_two_axes_normalizes_each_sample() {
        let x = ArrayD::from_shape_fn(IxDyn(&[2, 3, 4]), |d| (d[0] * 12 + d[1] * 4 + d[2]) as f32);
        let y = layer_normalization(&x, &[1, 2], 0.0, None, None, false);
        for n in 0..2 {
            let row = y.index_axis(Axis(0), n);
            assert!(row.sum().abs() < 1e-4, "{row}");
            // Each sample is 0..12 shifted: normalized over all 12 values, not per step.
            assert!((row[[0, 0]] - y[[0, 0, 0]]).abs() < 1e-6);
            assert!(row[[2, 3]] > 1.5, "{row}");
        }
    }
}
