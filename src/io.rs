//! Reading Keras weights (`.npz`) and arrays (`.npy`), and writing results. Files are untrusted:
//! sizes in headers are checked against the bytes actually present before anything is allocated.

use std::io::{Cursor, Read};
use std::path::Path;

use ndarray::{Array, Array2, ArrayD, Dimension, Ix1, Ix2, IxDyn, ShapeBuilder};

use crate::cell::Cell;
use crate::error::{Result, RnnError, clip, quote, show_shape};
use crate::layer::{SimpleRnn, SimpleRnnConfig};

/// The most bytes of array data a `.npz` may hold in all (a SimpleRNN of 20,000 units in
/// float64 takes 3.2 GB), so that a forged archive cannot exhaust memory.
const MAX_NPZ_BYTES: u64 = 1 << 32;

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
    let npy = Npy::parse(bytes, "an integer type", |e| !e.is_float())?;
    if npy.shape.len() != 1 {
        return Err(format!(
            "lengths must have one axis, this has shape {}",
            show_shape(&npy.shape)
        ));
    }
    npy.integers()?
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
    let npy = Npy::parse(bytes, "a float or integer type", |_| true)?;
    if npy.elem.is_float() {
        npy.array(npy.floats()).map(NpyInput::Float)
    } else {
        npy.array(npy.integers()?).map(NpyInput::Int)
    }
}

/// Reads the arrays of a `.npz` archive (`np.savez(path, a=..., b=...)` or
/// `np.savez(path, a, b)`) as model inputs, in the archive's order, each with its name (`arr_0`,
/// `arr_1`, ... for positional ones): the inputs of a model with several.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a zip
/// archive or an array is not a `.npy` image of a float or integer type (each read only as far
/// as its header declares).
pub fn read_npz_inputs(path: impl AsRef<Path>) -> Result<Vec<(String, NpyInput)>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npz_inputs_named(bytes, path)
}

/// [`read_npz_inputs`] on an archive in memory.
///
/// # Errors
/// As [`read_npz_inputs`], with `<memory>` in place of the file name.
pub fn parse_npz_inputs(bytes: Vec<u8>) -> Result<Vec<(String, NpyInput)>> {
    parse_npz_inputs_named(bytes, Path::new("<memory>"))
}

fn parse_npz_inputs_named(bytes: Vec<u8>, path: &Path) -> Result<Vec<(String, NpyInput)>> {
    read_npz(bytes, path, true, decode_input)
}

/// Every array of a `.npz` archive, in order, with its name (the member name without `.npy`),
/// each entry read only as far as its header declares and decoded by `decode`; `integers`
/// admits integer arrays beside float ones.
fn read_npz<T>(
    bytes: Vec<u8>,
    path: &Path,
    integers: bool,
    decode: impl Fn(&[u8]) -> std::result::Result<T, String>,
) -> Result<Vec<(String, T)>> {
    let bad = |message: String| RnnError::bad_file(path, message);
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| bad(format!("not a readable .npz (zip) archive: {e}")))?;
    let mut arrays = Vec::new();
    let mut budget = MAX_NPZ_BYTES;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| bad(format!("archive entry {i}: {e}")))?;
        let name = entry
            .name()
            .strip_suffix(".npy")
            .unwrap_or(entry.name())
            .to_string();
        let shown = quote(&name);
        let data = read_npy_entry(&mut entry, &mut budget, integers)
            .map_err(|m| bad(format!("array {shown}: {m}")))?;
        let array = decode(&data).map_err(|m| bad(format!("array {shown}: {m}")))?;
        arrays.push((name, array));
    }
    Ok(arrays)
}

/// Loads a Keras recurrent layer's weights (`SimpleRNN`, `LSTM` or `GRU`) from a `.npz` file,
/// the cell inferred from the shapes.
///
/// Accepts the file Keras users write with `np.savez(path, *layer.get_weights())`: `arr_0` is the
/// kernel (*D* × *G*·*M*), `arr_1` the recurrent kernel (*M* × *G*·*M*), `arr_2` the bias
/// (*G*·*M*; a GRU's is 2 × 3*M*; absent for `use_bias=False`). Also accepts the keys `kernel`,
/// `recurrent_kernel` and `bias`. float32 or float64 (converted). Plain and compressed
/// (`np.savez_compressed`) archives both work. The recurrent kernel's shape gives the gates
/// (*G* = 1: SimpleRNN, 4: LSTM, 3: GRU, see [`Cell`]); the config's activations apply as the
/// layer's `activation` and `recurrent_activation`.
///
/// # Errors
/// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a zip
/// archive, lacks the kernel or recurrent kernel, holds extra arrays, or an array is malformed or
/// of another dtype; the shape errors of [`SimpleRnn::gated`] when the arrays do not fit
/// together; [`RnnError::InvalidOption`] for a GRU whose shapes say `reset_after=False` (not
/// run) or whose cell cannot be told (a GRU without bias: use [`load_keras_npz_as`]).
pub fn load_keras_npz(path: impl AsRef<Path>, config: SimpleRnnConfig) -> Result<SimpleRnn> {
    load_keras_npz_as(path, config, None)
}

/// [`load_keras_npz`] with the cell given (`Some`) rather than inferred: the shapes must then
/// agree with it. [`Cell::Gru`] is Keras's `reset_after=True` GRU (a 2 × 3·*M* bias),
/// [`Cell::GruResetBefore`] its `reset_after=False` one (a 3·*M* bias).
///
/// # Errors
/// As [`load_keras_npz`], and [`RnnError::InvalidOption`] when the shapes are another cell's.
pub fn load_keras_npz_as(
    path: impl AsRef<Path>,
    config: SimpleRnnConfig,
    cell: Option<Cell>,
) -> Result<SimpleRnn> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_keras_npz(bytes, path, config, cell)
}

/// [`load_keras_npz`] on the bytes of a `.npz` file already in memory (an embedded model, say).
///
/// # Errors
/// As [`load_keras_npz`], with `<memory>` in place of the file name.
pub fn load_keras_npz_bytes(bytes: &[u8], config: SimpleRnnConfig) -> Result<SimpleRnn> {
    parse_keras_npz(bytes.to_vec(), Path::new("<memory>"), config, None)
}

/// Reads one `.npy` entry of a `.npz` archive: its header first, then exactly the data bytes the
/// header declares, so that a forged entry (a small header followed by gigabytes that inflate
/// from a few megabytes) is refused after reading what it declares, not after inflating all of
/// it. `budget` is what the archive's arrays may still take; the entry's data is taken from it.
/// `integers` admits integer arrays beside float ones.
fn read_npy_entry(
    entry: &mut impl Read,
    budget: &mut u64,
    integers: bool,
) -> std::result::Result<Vec<u8>, String> {
    let unreadable = |e: std::io::Error| format!("cannot be read: {e}");
    let mut image = Vec::new();
    // Magic, version and the two-byte length of version 1; version 2 and 3 have two more.
    entry
        .by_ref()
        .take(10)
        .read_to_end(&mut image)
        .map_err(unreadable)?;
    if image.len() == 10 && image.starts_with(NPY_MAGIC) && image[6] >= 2 {
        entry
            .by_ref()
            .take(2)
            .read_to_end(&mut image)
            .map_err(unreadable)?;
    }
    let text_at = image.len();
    let len = match image.as_slice() {
        [.., a, b] if text_at == 10 => u64::from(u16::from_le_bytes([*a, *b])),
        [.., a, b, c, d] if text_at == 12 => u64::from(u32::from_le_bytes([*a, *b, *c, *d])),
        _ => 0,
    };
    // header_end refuses a length past MAX_HEADER_BYTES before we would read that far.
    let want = len.min(MAX_HEADER_BYTES as u64 + 1);
    entry
        .by_ref()
        .take(want)
        .read_to_end(&mut image)
        .map_err(unreadable)?;
    let header_end = header_end(&image)?;
    let header = ndarray_npy::npy::header::Header::from_reader(&mut &image[..header_end])
        .map_err(|e| format!("not a valid .npy image: {}", clip(&e.to_string())))?;
    let descriptor = header.type_descriptor.to_string();
    let descriptor = descriptor.trim_matches('\'');
    let item = Elem::from_descriptor(descriptor)
        .filter(|(elem, _)| integers || elem.is_float())
        .ok_or_else(|| {
            let expected = if integers {
                "a float or integer type"
            } else {
                FLOATS
            };
            format!("dtype {}; expected {expected}", quote(descriptor))
        })?
        .0
        .size() as u64;
    let declared = header
        .shape
        .iter()
        .try_fold(item, |acc, &d| acc.checked_mul(d as u64))
        .filter(|d| d <= budget)
        .ok_or_else(|| {
            format!(
                "its header declares shape {}, more than the {budget} bytes this reader has left \
                 for the archive",
                show_shape(&header.shape)
            )
        })?;
    entry
        .by_ref()
        .take(declared)
        .read_to_end(&mut image)
        .map_err(unreadable)?;
    let got = (image.len() - header_end) as u64;
    if got < declared {
        return Err(format!(
            "truncated: its header declares {declared} bytes of data, {got} follow"
        ));
    }
    let mut more = [0u8; 1];
    if entry.read(&mut more).map_err(unreadable)? > 0 {
        return Err(format!(
            "trailing data after the {declared} bytes of data its header declares (shape {})",
            show_shape(&header.shape)
        ));
    }
    *budget -= declared;
    Ok(image)
}

/// Parses a `.npy` image already in memory, float32 or float64 (converted to float32).
///
/// # Errors
/// As [`read_npy_f32`], with `<memory>` in place of the file name.
pub fn parse_npy_f32<D: Dimension>(bytes: &[u8]) -> Result<Array<f32, D>> {
    decode_npy(bytes).map_err(|message| RnnError::bad_file("<memory>", message))
}

fn parse_keras_npz(
    bytes: Vec<u8>,
    path: &Path,
    config: SimpleRnnConfig,
    cell: Option<Cell>,
) -> Result<SimpleRnn> {
    let bad = |message: String| RnnError::bad_file(path, message);
    let arrays: Vec<(String, Array<f32, IxDyn>)> = read_npz(bytes, path, false, decode_npy)?;

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
            "holds {} arrays {names:?}; a recurrent layer has a kernel, a recurrent kernel and an optional \
             bias (is this another kind of layer?)",
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
    // A GRU's bias is 2 × 3M: the input bias, then the recurrent one.
    let (bias, recurrent_bias) = match bias_at.map(|at| &arrays[at].1) {
        None => (None, None),
        Some(b) if b.ndim() == 1 => (
            Some(b.clone().into_dimensionality::<Ix1>().expect("1 axis")),
            None,
        ),
        Some(b) if b.ndim() == 2 && b.shape()[0] == 2 => {
            let b = b.clone().into_dimensionality::<Ix2>().expect("2 axes");
            (Some(b.row(0).to_owned()), Some(b.row(1).to_owned()))
        }
        Some(b) => {
            return Err(RnnError::shape(
                "bias",
                "[G·M] or, for a GRU, [2, 3·M]",
                b.shape(),
            ));
        }
    };
    let (m, columns) = recurrent.dim();
    // A GRU's bias shows which GRU: two rows for reset_after=True, one for reset_after=False.
    let gru = match (&bias, &recurrent_bias) {
        (_, Some(_)) => Some(Cell::Gru),
        (Some(_), None) => Some(Cell::GruResetBefore),
        (None, None) => None,
    };
    let inferred = match (m > 0 && columns % m == 0).then(|| columns / m) {
        Some(1) => Some(Cell::Simple),
        Some(4) => Some(Cell::Lstm),
        Some(3) => gru,
        _ => None,
    };
    let given = cell;
    let cell = match (given, inferred) {
        (Some(given), Some(found)) if given != found => {
            return Err(RnnError::InvalidOption(format!(
                "the weights are a {found}'s (recurrent kernel {m} × {columns}{}), not a {given}'s",
                match bias.as_ref().map(|b| b.len()) {
                    Some(_) if found.gates() == 3 && recurrent_bias.is_some() => ", bias 2 × 3·M",
                    Some(_) if found.gates() == 3 => ", bias 3·M",
                    _ => "",
                }
            )));
        }
        (Some(given), _) => given,
        (None, Some(found)) => found,
        (None, None) if columns == 3 * m => {
            return Err(RnnError::InvalidOption(
                "a GRU without bias does not show whether it was built with reset_after=True: give \
                 the cell (--cell gru for reset_after=True, Keras's default, or --cell \
                 gru-reset-before for reset_after=False)"
                    .into(),
            ));
        }
        (None, None) => {
            return Err(RnnError::shape(
                "recurrent_kernel",
                "[M, M], [M, 4·M] (LSTM) or [M, 3·M] (GRU)",
                recurrent.shape(),
            ));
        }
    };
    SimpleRnn::gated(cell, kernel, recurrent, bias, recurrent_bias, config)
}

/// The element types read from `.npy` files (numpy's `f4`, `i8`, `u1`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Elem {
    F4,
    F8,
    I1,
    I2,
    I4,
    I8,
    U1,
    U2,
    U4,
    U8,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::I1 | Elem::U1 => 1,
            Elem::I2 | Elem::U2 => 2,
            Elem::F4 | Elem::I4 | Elem::U4 => 4,
            Elem::F8 | Elem::I8 | Elem::U8 => 8,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, Elem::F4 | Elem::F8)
    }

    /// The type and whether it is big-endian, from a descriptor as numpy writes it: a byte order
    /// (`<` little, `>` big, `=` native, `|` not applicable, which numpy reads as native) and a
    /// type code. numpy also reads a descriptor without the order, as native.
    fn from_descriptor(descriptor: &str) -> Option<(Self, bool)> {
        let native_big = cfg!(target_endian = "big");
        let (big, code) = match descriptor.as_bytes().first()? {
            b'<' => (false, &descriptor[1..]),
            b'>' => (true, &descriptor[1..]),
            b'=' | b'|' => (native_big, &descriptor[1..]),
            _ => (native_big, descriptor),
        };
        let elem = match code {
            "f4" => Elem::F4,
            "f8" => Elem::F8,
            "i1" => Elem::I1,
            "i2" => Elem::I2,
            "i4" => Elem::I4,
            "i8" => Elem::I8,
            "u1" => Elem::U1,
            "u2" => Elem::U2,
            "u4" => Elem::U4,
            "u8" => Elem::U8,
            _ => return None,
        };
        Some((elem, big))
    }
}

/// The float types, in words.
const FLOATS: &str = "float32 ('<f4') or float64 ('<f8')";

/// The most bytes a `.npy` header may take (numpy's own reader stops at 10 kB by default).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// The bytes before a `.npy` header's text: the magic string, the version and the length.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// A `.npy` image whose header was checked against the data that follows it, so that a forged
/// header cannot make us allocate more than the file holds.
struct Npy<'a> {
    elem: Elem,
    big_endian: bool,
    fortran: bool,
    shape: Vec<usize>,
    data: &'a [u8],
}

/// Reads values of a plain numeric type from bytes in the given order.
macro_rules! values {
    ($data:expr, $big:expr, $t:ty) => {
        $data.chunks_exact(size_of::<$t>()).map(|chunk| {
            let mut raw = [0u8; size_of::<$t>()];
            raw.copy_from_slice(chunk);
            if $big {
                <$t>::from_be_bytes(raw)
            } else {
                <$t>::from_le_bytes(raw)
            }
        })
    };
}

impl<'a> Npy<'a> {
    /// Parses the header of `bytes` and checks that its dtype is one `accept` takes (`expected`
    /// says which, in words) and that its shape matches the data bytes exactly.
    fn parse(
        bytes: &'a [u8],
        expected: &str,
        accept: impl Fn(Elem) -> bool,
    ) -> std::result::Result<Self, String> {
        let header_end = header_end(bytes)?;
        let header = ndarray_npy::npy::header::Header::from_reader(&mut &bytes[..header_end])
            .map_err(|e| format!("not a valid .npy image: {}", clip(&e.to_string())))?;
        let descriptor = header.type_descriptor.to_string();
        let descriptor = descriptor.trim_matches('\'');
        let (elem, big_endian) = Elem::from_descriptor(descriptor)
            .filter(|(e, _)| accept(*e))
            .ok_or_else(|| format!("dtype {}; expected {expected}", quote(descriptor)))?;
        let elements = header
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or("the header's shape overflows")?;
        let data = &bytes[header_end..];
        let declared = elements.checked_mul(elem.size() as u64);
        if declared != Some(data.len() as u64) {
            return Err(format!(
                "header says shape {} of {} ({} bytes) but {} bytes of data follow",
                show_shape(&header.shape),
                quote(descriptor),
                declared.map_or("more than 2^64".to_string(), |d| d.to_string()),
                data.len()
            ));
        }
        Ok(Npy {
            elem,
            big_endian,
            fortran: header.layout.is_fortran(),
            shape: header.shape,
            data,
        })
    }

    /// The values as float32 (float64 rounded, as Keras casts its inputs).
    fn floats(&self) -> Vec<f32> {
        let (data, big) = (self.data, self.big_endian);
        match self.elem {
            Elem::F8 => values!(data, big, f64).map(|v| v as f32).collect(),
            _ => values!(data, big, f32).collect(),
        }
    }

    /// The values of an integer array, widened to 64 bits.
    fn integers(&self) -> std::result::Result<Vec<i64>, String> {
        let (data, big) = (self.data, self.big_endian);
        Ok(match self.elem {
            Elem::I1 => values!(data, big, i8).map(i64::from).collect(),
            Elem::I2 => values!(data, big, i16).map(i64::from).collect(),
            Elem::I4 => values!(data, big, i32).map(i64::from).collect(),
            Elem::I8 => values!(data, big, i64).collect(),
            Elem::U1 => values!(data, big, u8).map(i64::from).collect(),
            Elem::U2 => values!(data, big, u16).map(i64::from).collect(),
            Elem::U4 => values!(data, big, u32).map(i64::from).collect(),
            Elem::U8 => values!(data, big, u64)
                .map(|v| i64::try_from(v).map_err(|_| format!("{v} does not fit 64 bits")))
                .collect::<std::result::Result<_, _>>()?,
            Elem::F4 | Elem::F8 => return Err("a float array where integers are needed".into()),
        })
    }

    /// The values in the header's shape, in standard (C) order whatever the file's order.
    fn array<T: Clone>(&self, values: Vec<T>) -> std::result::Result<ArrayD<T>, String> {
        let shape = IxDyn(&self.shape);
        let array = if self.fortran {
            ArrayD::from_shape_vec(shape.f(), values).map(|a| a.as_standard_layout().into_owned())
        } else {
            ArrayD::from_shape_vec(shape, values)
        };
        array.map_err(|e| e.to_string())
    }
}

/// Where a `.npy` image's header ends (its data starts), checked against the bytes present
/// before the header parser allocates what the length field claims.
fn header_end(bytes: &[u8]) -> std::result::Result<usize, String> {
    let prefix = "not a valid .npy image";
    if bytes.len() < 10 || !bytes.starts_with(NPY_MAGIC) {
        return Err(format!("{prefix}: it does not start with \\x93NUMPY"));
    }
    let (text_at, len) = match bytes[6] {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => {
            let len = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
            (12, usize::try_from(len).unwrap_or(usize::MAX))
        }
        2 | 3 => return Err(format!("{prefix}: truncated header")),
        major => return Err(format!("{prefix}: unknown version {major}")),
    };
    if len > MAX_HEADER_BYTES {
        return Err(format!(
            "{prefix}: its header claims {len} bytes, more than the {MAX_HEADER_BYTES} this \
             reader accepts"
        ));
    }
    let end = text_at + len;
    if end > bytes.len() {
        return Err(format!(
            "{prefix}: its header claims {len} bytes where {} follow",
            bytes.len() - text_at
        ));
    }
    // The header parser backtracks exponentially on nested brackets (a fuzzed 139-byte header
    // of nine unclosed braces took 0.4 s, and each level more doubles it); numpy writes a dict
    // holding a tuple, three levels with a structured dtype's list of tuples.
    let mut depth = 0usize;
    for &b in &bytes[text_at..end] {
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_HEADER_NESTING {
            return Err(format!(
                "{prefix}: its header nests brackets more than {MAX_HEADER_NESTING} deep"
            ));
        }
    }
    Ok(end)
}

/// The deepest nesting of brackets a `.npy` header may have (numpy's own: at most 3).
const MAX_HEADER_NESTING: usize = 4;

/// Decodes a `.npy` image of float32 or float64 (converted to float32).
fn decode_npy<D: Dimension>(bytes: &[u8]) -> std::result::Result<Array<f32, D>, String> {
    let npy = Npy::parse(bytes, FLOATS, Elem::is_float)?;
    let shape = npy.shape.clone();
    let wrong_ndim = |_| match D::NDIM {
        Some(want) => format!(
            "has {} axes (shape {}), expected {want}",
            shape.len(),
            show_shape(&shape)
        ),
        None => format!("has shape {}", show_shape(&shape)),
    };
    npy.array(npy.floats())?
        .into_dimensionality()
        .map_err(wrong_ndim)
}

#[cfg(test)]
mod tests {
    use ndarray::Array1;
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

    /// A version 1.0 `.npy` image with the given header fields, as numpy lays it out.
    fn npy_image(descriptor: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let fortran = if fortran { "True" } else { "False" };
        let mut text =
            format!("{{'descr': '{descriptor}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
        while (10 + text.len() + 1) % 64 != 0 {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&u16::try_from(text.len()).unwrap().to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn accepts_every_byte_order_numpy_writes() {
        let le: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let be: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let want = Array1::from(vec![1.5f32, -2.0]);
        for (descriptor, data) in [("<f4", &le), ("=f4", &le), ("|f4", &le), (">f4", &be)] {
            let got: Array1<f32> = decode_npy(&npy_image(descriptor, false, "(2,)", data))
                .unwrap_or_else(|e| panic!("{descriptor}: {e}"));
            assert_eq!(got, want, "{descriptor}");
        }
        let wide: Vec<u8> = [1.5f64, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let got: Array1<f32> = decode_npy(&npy_image("=f8", false, "(2,)", &wide)).unwrap();
        assert_eq!(got, want);

        let ids = decode_input(&npy_image("<u1", false, "(2,)", &[7, 9])).unwrap();
        assert_eq!(ids, NpyInput::Int(ndarray::arr1(&[7i64, 9]).into_dyn()));
        let four: Vec<u8> = [3i32, 5].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            decode_lengths(&npy_image("|i4", false, "(2,)", &four)).unwrap(),
            [3, 5]
        );
        let big: Vec<u8> = [3i64, 5].iter().flat_map(|v| v.to_be_bytes()).collect();
        assert_eq!(
            decode_lengths(&npy_image(">i8", false, "(2,)", &big)).unwrap(),
            [3, 5]
        );
        // Fortran order: the values come column by column.
        let cols: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let got: Array2<f32> = decode_npy(&npy_image("<f4", true, "(2, 3)", &cols)).unwrap();
        assert_eq!(got, ndarray::arr2(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]));
        let err = decode_npy::<ndarray::Ix1>(&npy_image("<c8", false, "(1,)", &[0; 8]));
        assert!(err.unwrap_err().contains("\"<c8\""));
    }

    #[test]
    fn deeply_nested_headers_are_refused_before_they_are_parsed() {
        // Found by the npy_arrays fuzzer: unclosed braces made the header parser backtrack
        // exponentially; forty of them would take longer than the age of the universe.
        let text = format!(
            "{{'descr': '<f4', 'fortran_order': {} +2- +2- !",
            "{".repeat(40)
        );
        let mut image = NPY_MAGIC.to_vec();
        image.extend([1, 0]);
        image.extend((text.len() as u16 + 1).to_le_bytes());
        image.extend(text.bytes());
        image.push(b'\n');
        image.extend([0u8; 8]);
        let message = decode_npy::<ndarray::Ix1>(&image).unwrap_err();
        assert!(message.contains("nests brackets"), "{message}");
        // numpy's own headers, a structured dtype's (three levels) included, pass the check.
        let structured =
            "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,), }\n";
        let mut image = NPY_MAGIC.to_vec();
        image.extend([1, 0]);
        image.extend((structured.len() as u16).to_le_bytes());
        image.extend(structured.bytes());
        assert_eq!(header_end(&image), Ok(image.len()));
        let good = npy_bytes(&Array1::<f32>::zeros(2));
        assert!(decode_npy::<ndarray::Ix1>(&good).is_ok());
    }

    #[test]
    fn messages_quote_a_forged_header_briefly() {
        let axes = vec!["1"; 100_003].join(", ");
        let mut text = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({axes}), }}");
        text.push('\n');
        let mut image = b"\x93NUMPY\x02\x00".to_vec();
        image.extend_from_slice(&u32::try_from(text.len()).unwrap().to_le_bytes());
        image.extend_from_slice(text.as_bytes());
        let err = decode_npy::<IxDyn>(&image).unwrap_err();
        assert!(err.len() < 300 && err.contains("(100003 axes)"), "{err}");
        // A header that claims 4 GB: refused before anything is allocated.
        let mut huge = b"\x93NUMPY\x02\x00\xff\xff\xff\xff".to_vec();
        huge.extend_from_slice(b"{}");
        assert!(decode_npy::<IxDyn>(&huge).unwrap_err().contains("claims"));
    }

    /// A `.npz` with one deflated entry per (name, image).
    fn npz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, image) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(image).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn npz_entries_are_read_only_as_far_as_their_headers_declare() {
        let kernel = npy_bytes(&Array2::<f32>::zeros((2, 3)));
        let recurrent = npy_bytes(&Array2::<f32>::zeros((3, 3)));
        let config = SimpleRnnConfig::default;
        assert!(
            load_keras_npz_bytes(
                &npz(&[("arr_0.npy", &kernel), ("arr_1.npy", &recurrent)]),
                config()
            )
            .is_ok()
        );

        // 64 MB of zeros after a [2, 3] array: refused at the first byte past the declared data.
        let mut bomb = kernel.clone();
        bomb.resize(kernel.len() + (64 << 20), 0);
        let forged = npz(&[("arr_0.npy", &bomb), ("arr_1.npy", &recurrent)]);
        assert!(forged.len() < 1 << 20);
        let err = load_keras_npz_bytes(&forged, config()).unwrap_err();
        assert!(err.to_string().contains("trailing data"), "{err}");

        // Short of what the header declares.
        let short = &kernel[..kernel.len() - 4];
        let err = load_keras_npz_bytes(&npz(&[("arr_0.npy", short)]), config()).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");

        // A header that declares more than the archive may hold in all: refused unread.
        let huge = npy_image("<f4", false, "(65536, 65536)", &[]);
        let err = load_keras_npz_bytes(&npz(&[("arr_0.npy", &huge)]), config()).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        // The budget is shared: two arrays that each fit but together do not.
        let half = npy_image("<f4", false, "(1073741824,)", &[]);
        let mut budget = MAX_NPZ_BYTES - 8;
        let err = read_npy_entry(&mut half.as_slice(), &mut budget, false).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }
}
