//! Reading Keras weights (`.npz`) and arrays (`.npy`), and writing results. Files are untrusted:
//! sizes in headers are checked against the bytes actually present before anything is allocated.

use std::io::{Cursor, Read};
use std::path::Path;

use ndarray::{Array, Array1, Array2, Dimension, IxDyn};
use ndarray_npy::ReadNpyExt;

use crate::error::{Result, RnnError};
use crate::layer::{SimpleRnn, SimpleRnnConfig};

/// The most bytes one array may take once decompressed (a guard against zip bombs).
const MAX_ARRAY_BYTES: u64 = 1 << 34;

/// Reads a `.npy` file of float32 or float64 (converted to float32, as Keras casts its inputs)
/// with the dimensionality `D`.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a `.npy`
/// file, holds another dtype, has another number of axes, or is shorter than its header says.
pub fn read_npy_f32<D: Dimension>(path: impl AsRef<Path>) -> Result<Array<f32, D>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_npy(&bytes).map_err(|message| RnnError::bad_file(path, message))
}

/// Reads per-sequence lengths: a one-axis `.npy` of any integer type (int64, as
/// `torch.tensor(lengths).numpy()` gives, int32, unsigned).
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a
/// one-axis integer array, is truncated, or holds a negative length.
pub fn read_npy_lengths(path: impl AsRef<Path>) -> Result<Vec<usize>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_lengths(&bytes).map_err(|message| RnnError::bad_file(path, message))
}

/// [`read_npy_lengths`] on a `.npy` image in memory.
///
/// # Errors
/// As [`read_npy_lengths`], with `<memory>` in place of the file name.
pub fn parse_npy_lengths(bytes: &[u8]) -> Result<Vec<usize>> {
    decode_lengths(bytes).map_err(|message| RnnError::bad_file("<memory>", message))
}

fn decode_lengths(bytes: &[u8]) -> std::result::Result<Vec<usize>, String> {
    let (descriptor, shape) = checked_header(bytes, "an integer type", |d| {
        matches!(
            d,
            "<i8" | "<i4" | "<i2" | "|i1" | "<u8" | "<u4" | "<u2" | "|u1"
        )
        .then(|| d[2..].parse::<u64>().unwrap_or(1))
    })?;
    if shape.len() != 1 {
        return Err(format!(
            "lengths must have one axis, this has shape {shape:?}"
        ));
    }
    fn read<T: ndarray_npy::ReadableElement + Copy + TryInto<i64>>(
        bytes: &[u8],
    ) -> std::result::Result<Vec<i64>, String> {
        let a = ndarray::Array1::<T>::read_npy(bytes).map_err(|e| e.to_string())?;
        a.iter()
            .map(|v| {
                (*v).try_into()
                    .map_err(|_| "a length does not fit 64 bits".to_string())
            })
            .collect()
    }
    let values = match descriptor.as_str() {
        "<i8" => read::<i64>(bytes)?,
        "<i4" => read::<i32>(bytes)?,
        "<i2" => read::<i16>(bytes)?,
        "|i1" => read::<i8>(bytes)?,
        "<u8" => read::<u64>(bytes)?,
        "<u4" => read::<u32>(bytes)?,
        "<u2" => read::<u16>(bytes)?,
        _ => read::<u8>(bytes)?,
    };
    values
        .into_iter()
        .map(|v| usize::try_from(v).map_err(|_| format!("negative length {v}")))
        .collect()
}

/// A model input read from a `.npy` file: float arrays (float64 converted to float32, as Keras
/// casts them) or integer arrays (token ids for a model that starts with an `Embedding`).
#[derive(Clone, Debug, PartialEq)]
pub enum NpyInput {
    /// float32 or float64 data.
    Float(ndarray::ArrayD<f32>),
    /// Any integer type, widened to 64 bits.
    Int(ndarray::ArrayD<i64>),
}

impl NpyInput {
    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            NpyInput::Float(a) => a.shape(),
            NpyInput::Int(a) => a.shape(),
        }
    }
}

/// Reads a `.npy` of any float or integer type, as a model input.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a `.npy`
/// image of a float or integer type, or is shorter than its header says.
pub fn read_npy_input(path: impl AsRef<Path>) -> Result<NpyInput> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode_input(&bytes).map_err(|message| RnnError::bad_file(path, message))
}

/// [`read_npy_input`] on a `.npy` image in memory.
///
/// # Errors
/// As [`read_npy_input`], with `<memory>` in place of the file name.
pub fn parse_npy_input(bytes: &[u8]) -> Result<NpyInput> {
    decode_input(bytes).map_err(|message| RnnError::bad_file("<memory>", message))
}

fn decode_input(bytes: &[u8]) -> std::result::Result<NpyInput, String> {
    let (descriptor, _) = checked_header(bytes, "a float or integer type", |d| {
        let d = d.trim_start_matches(['<', '|', '=']);
        matches!(
            d,
            "f4" | "f8" | "i8" | "i4" | "i2" | "i1" | "u8" | "u4" | "u2" | "u1"
        )
        .then(|| d[1..].parse::<u64>().unwrap_or(1))
    })?;
    fn ints<T: ndarray_npy::ReadableElement + Copy + TryInto<i64>>(
        bytes: &[u8],
    ) -> std::result::Result<NpyInput, String> {
        let a = ndarray::ArrayD::<T>::read_npy(bytes).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity(a.len());
        for v in a.iter() {
            out.push(
                (*v).try_into()
                    .map_err(|_| "an integer does not fit 64 bits".to_string())?,
            );
        }
        ndarray::ArrayD::from_shape_vec(a.raw_dim(), out)
            .map(NpyInput::Int)
            .map_err(|e| e.to_string())
    }
    match descriptor.trim_start_matches(['<', '|', '=']) {
        "f4" | "f8" => decode_npy::<IxDyn>(bytes).map(NpyInput::Float),
        "i8" => ints::<i64>(bytes),
        "i4" => ints::<i32>(bytes),
        "i2" => ints::<i16>(bytes),
        "i1" => ints::<i8>(bytes),
        "u8" => ints::<u64>(bytes),
        "u4" => ints::<u32>(bytes),
        "u2" => ints::<u16>(bytes),
        _ => ints::<u8>(bytes),
    }
}

/// Loads a Keras SimpleRNN layer's weights from a `.npz` file.
///
/// Accepts the file Keras users write with `np.savez(path, *layer.get_weights())`: `arr_0` is the
/// kernel (*D* × *M*), `arr_1` the recurrent kernel (*M* × *M*), `arr_2` the bias (*M*, absent for
/// `use_bias=False`). Also accepts the keys `kernel`, `recurrent_kernel` and `bias`. float32 or
/// float64 (converted). Plain and compressed (`np.savez_compressed`) archives both work.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a zip
/// archive, lacks the kernel or recurrent kernel, holds extra arrays, or an array is malformed or
/// of another dtype; the shape errors of [`SimpleRnn::new`] when the arrays do not fit together.
pub fn load_keras_npz(path: impl AsRef<Path>, config: SimpleRnnConfig) -> Result<SimpleRnn> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_keras_npz(bytes, path, config)
}

/// [`load_keras_npz`] on the bytes of a `.npz` file already in memory (an embedded model, say).
///
/// # Errors
/// As [`load_keras_npz`], with `<memory>` in place of the file name.
pub fn load_keras_npz_bytes(bytes: &[u8], config: SimpleRnnConfig) -> Result<SimpleRnn> {
    parse_keras_npz(bytes.to_vec(), Path::new("<memory>"), config)
}

/// Parses a `.npy` image already in memory, float32 or float64 (converted to float32).
///
/// # Errors
/// As [`read_npy_f32`], with `<memory>` in place of the file name.
pub fn parse_npy_f32<D: Dimension>(bytes: &[u8]) -> Result<Array<f32, D>> {
    decode_npy(bytes).map_err(|message| RnnError::bad_file("<memory>", message))
}

fn parse_keras_npz(bytes: Vec<u8>, path: &Path, config: SimpleRnnConfig) -> Result<SimpleRnn> {
    let bad = |message: String| RnnError::bad_file(path, message);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable .npz (zip) archive: {e}")))?;

    let mut arrays = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("archive entry {i}: {e}")))?;
        let name = entry
            .name()
            .strip_suffix(".npy")
            .unwrap_or(entry.name())
            .to_string();
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_ARRAY_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("array {name:?}: {e}")))?;
        if data.len() as u64 > MAX_ARRAY_BYTES {
            return Err(bad(format!(
                "array {name:?} is larger than {MAX_ARRAY_BYTES} bytes"
            )));
        }
        let array: Array<f32, IxDyn> =
            decode_npy(&data).map_err(|m| bad(format!("array {name:?}: {m}")))?;
        arrays.push((name, array));
    }

    let find = |keys: &[&str]| arrays.iter().position(|(n, _)| keys.contains(&n.as_str()));
    let (kernel_at, recurrent_at) = match (
        find(&["kernel", "arr_0"]),
        find(&["recurrent_kernel", "arr_1"]),
    ) {
        (Some(k), Some(r)) => (k, r),
        _ => {
            let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
            return Err(bad(format!(
                "expected arrays arr_0, arr_1[, arr_2] (np.savez(path, *layer.get_weights())) or kernel, \
                 recurrent_kernel[, bias]; found {names:?}"
            )));
        }
    };
    let bias_at = find(&["bias", "arr_2"]);
    if arrays.len() > 2 + usize::from(bias_at.is_some()) {
        let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        return Err(bad(format!(
            "holds {} arrays {names:?}; a SimpleRNN has a kernel, a recurrent kernel and an optional bias \
             (is this another kind of layer?)",
            arrays.len()
        )));
    }
    let take2 = |at: usize, what: &str| -> Result<Array2<f32>> {
        let (_, a) = &arrays[at];
        a.clone()
            .into_dimensionality()
            .map_err(|_| RnnError::shape(what, "2 axes", a.shape()))
    };
    let kernel = take2(kernel_at, "kernel")?;
    let recurrent = take2(recurrent_at, "recurrent_kernel")?;
    let bias = match bias_at {
        Some(at) => {
            let (_, a) = &arrays[at];
            Some(
                a.clone()
                    .into_dimensionality::<ndarray::Ix1>()
                    .map_err(|_| RnnError::shape("bias", "1 axis", a.shape()))?,
            )
        }
        None => None::<Array1<f32>>,
    };
    SimpleRnn::new(kernel, recurrent, bias, config)
}

/// Parses a `.npy` header and checks that its dtype is one `item_bytes` accepts (returning the
/// item size) and that its shape fits the bytes present, so that a forged header cannot make us
/// allocate more than the file holds. Returns the dtype descriptor and the shape.
fn checked_header(
    bytes: &[u8],
    expected: &str,
    item_bytes: impl Fn(&str) -> Option<u64>,
) -> std::result::Result<(String, Vec<usize>), String> {
    let mut cursor = Cursor::new(bytes);
    let header = ndarray_npy::npy::header::Header::from_reader(&mut cursor)
        .map_err(|e| format!("not a valid .npy image: {e}"))?;
    let descriptor = header
        .type_descriptor
        .to_string()
        .trim_matches('\'')
        .to_string();
    let item = item_bytes(&descriptor)
        .ok_or_else(|| format!("dtype {descriptor:?}; expected {expected}"))?;
    let elements = header
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or("the header's shape overflows")?;
    let data_bytes = bytes.len() as u64 - cursor.position();
    if elements.checked_mul(item) != Some(data_bytes) {
        return Err(format!(
            "header says shape {:?} of {descriptor} ({} bytes) but {data_bytes} bytes of data follow",
            header.shape,
            elements.saturating_mul(item)
        ));
    }
    Ok((descriptor, header.shape))
}

/// Decodes a `.npy` image of float32 or float64 (converted to float32).
fn decode_npy<D: Dimension>(bytes: &[u8]) -> std::result::Result<Array<f32, D>, String> {
    let expected = "float32 ('<f4') or float64 ('<f8')";
    let (descriptor, shape) = checked_header(bytes, expected, |d| match d {
        "<f4" | "|f4" | "=f4" => Some(4),
        "<f8" | "|f8" | "=f8" => Some(8),
        _ => None,
    })?;
    let item_bytes = if descriptor.ends_with('4') { 4 } else { 8 };
    let ndim = shape.len();
    let wrong_ndim = |_| match D::NDIM {
        Some(want) => format!("has {ndim} axes (shape {shape:?}), expected {want}"),
        None => format!("has shape {shape:?}"),
    };
    let npy_error = |e: ndarray_npy::ReadNpyError| format!("{e}");
    if item_bytes == 4 {
        let a = Array::<f32, IxDyn>::read_npy(bytes).map_err(npy_error)?;
        a.into_dimensionality().map_err(wrong_ndim)
    } else {
        let a = Array::<f64, IxDyn>::read_npy(bytes).map_err(npy_error)?;
        a.mapv(|v| v as f32)
            .into_dimensionality()
            .map_err(wrong_ndim)
    }
}

#[cfg(test)]
mod tests {
    use ndarray_npy::WriteNpyExt;

    use super::*;

    fn npy_bytes<D: Dimension>(a: &Array<f32, D>) -> Vec<u8> {
        let mut out = Vec::new();
        a.write_npy(&mut out).unwrap();
        out
    }

    #[test]
    fn decodes_f32_and_f64() {
        let a = Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
        let back: Array2<f32> = decode_npy(&npy_bytes(&a)).unwrap();
        assert_eq!(back, a);
        let mut wide = Vec::new();
        a.mapv(f64::from).write_npy(&mut wide).unwrap();
        let back: Array2<f32> = decode_npy(&wide).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn rejects_wrong_dtype_ndim_truncation_and_forged_shapes() {
        let mut ints = Vec::new();
        Array1::from(vec![1i32, 2]).write_npy(&mut ints).unwrap();
        assert!(
            decode_npy::<ndarray::Ix1>(&ints)
                .unwrap_err()
                .contains("dtype")
        );

        let a = Array2::<f32>::zeros((2, 3));
        let bytes = npy_bytes(&a);
        assert!(
            decode_npy::<ndarray::Ix3>(&bytes)
                .unwrap_err()
                .contains("axes")
        );
        assert!(decode_npy::<ndarray::Ix2>(&bytes[..bytes.len() - 4]).is_err());
        assert!(decode_npy::<ndarray::Ix2>(&bytes[..5]).is_err());

        // A header that claims 2^40 elements over 4 bytes of data (same header length: the
        // longer shape eats padding spaces).
        let one = npy_bytes(&Array1::<f32>::zeros(1));
        let at = one.windows(4).position(|w| w == b"(1,)").unwrap();
        let newline = one.iter().position(|b| *b == b'\n').unwrap();
        let padding_kept = newline - 12;
        assert!(one[padding_kept..newline].iter().all(|b| *b == b' '));
        let mut forged = one[..at].to_vec();
        forged.extend_from_slice(b"(1099511627776,)");
        forged.extend_from_slice(&one[at + 4..padding_kept]);
        forged.extend_from_slice(&one[newline..]);
        assert_eq!(forged.len(), one.len());
        let err = decode_npy::<ndarray::Ix1>(&forged).unwrap_err();
        assert!(err.contains("bytes"), "{err}");
    }
}
