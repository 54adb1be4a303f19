//! PyTorch's `torch.nn.RNN`: weights from a `state_dict` saved as safetensors, run with
//! PyTorch's conventions (time-first unless `batch_first`, `h_0`/`h_n` as (layers·dirs, N, M),
//! packed variable-length batches).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView3, IxDyn};

use crate::backend::Backend;
use crate::error::{Result, RnnError, clip, quote, show_names, show_shape};
use crate::layer::SimpleRnnConfig;
use crate::stack::{RnnStack, layer_from_gate_rows_projected, layer_from_torch};
use crate::{Activation, Cell, SimpleRnn};

/// `nn.RNN`'s `nonlinearity`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nonlinearity {
    /// `tanh` (PyTorch's default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// What the safetensors file cannot say about an `nn.RNN`: its nonlinearity and input layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TorchRnnConfig {
    /// The module's `nonlinearity`.
    pub nonlinearity: Nonlinearity,
    /// The module's `batch_first`: input and output are *N* × *T* × … instead of *T* × *N* × …
    /// (`h_0` and `h_n` are (layers·dirs) × *N* × *M* either way).
    pub batch_first: bool,
    /// Load a file that holds tensors the RNN does not use (refused by default, as PyTorch's
    /// `load_state_dict(strict=True)` refuses unexpected keys; see [`TorchRnn::load`]).
    pub ignore_unused: bool,
}

/// An `nn.RNN`'s weights, read from its `state_dict`: `layers[k][dir]` in Keras's layout
/// (`weight_ih_l{k}` transposed to *D* × *M*, `weight_hh_l{k}` to *M* × *M*, `bias_ih_l{k}` +
/// `bias_hh_l{k}`), direction 1 from the `_reverse` tensors.
///
/// ```
/// use ndarray::Array3;
/// use wgpu_rnn::{Backend, Nonlinearity, TorchRnn, TorchRnnConfig};
///
/// let path = concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/tests/fixtures/torch/l2_bi_tanh_bias_tf_noh0_packed/weights.safetensors"
/// );
/// let config = TorchRnnConfig { nonlinearity: Nonlinearity::Tanh, ..Default::default() };
/// let model = TorchRnn::load(path, None, config)?.build(&Backend::Cpu)?;
/// let (t, n, d) = (5, 3, model.stack().input_dim());
/// let out = model.forward(Array3::<f32>::ones((t, n, d)).view(), None, Some(&[5, 2, 4]))?;
/// assert_eq!(out.output.shape()[..2], [t, n]); // T × N × (dirs·M), zeros past each length
/// assert_eq!(out.h_n.shape()[..2], [4, n]);    // (layers·dirs) × N × M
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct TorchRnn {
    layers: Vec<Vec<SimpleRnn>>,
    config: TorchRnnConfig,
    has_bias: bool,
}

/// A [`TorchRnn`] built on a backend, ready to run.
pub struct TorchRnnModel {
    stack: RnnStack,
    config: TorchRnnConfig,
}

impl TorchRnn {
    /// Reads an `nn.RNN`'s `state_dict` from a `.safetensors` file (as
    /// `safetensors.torch.save_file(rnn.state_dict(), path)` writes it). `num_layers`,
    /// `bidirectional`, `hidden_size` and `bias` come from the file. When the RNN is a submodule
    /// (keys like `encoder.rnn.weight_ih_l0`) its prefix is found; pass `prefix` when the file
    /// holds several RNNs.
    ///
    /// Every tensor in the file must be used, as `load_state_dict(strict=True)` requires,
    /// unless [`TorchRnnConfig::ignore_unused`] is set. With `prefix` given, the RNN is read as
    /// one submodule of a larger model's `state_dict`: tensors outside the prefix belong to the
    /// other modules and are not looked at. With the prefix found instead, tensors outside it
    /// count as unused: the file would hold a model of which only the RNN runs.
    ///
    /// # Errors
    /// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] for a corrupt
    /// header, no RNN weights, several RNNs and no `prefix`, missing tensors (a layer or a
    /// direction, or one of the two biases), tensors of the wrong shape (LSTM and GRU weights say
    /// so), a dtype other than float32 / float64, or unused tensors.
    pub fn load(
        path: impl AsRef<Path>,
        prefix: Option<&str>,
        config: TorchRnnConfig,
    ) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, prefix, config).map_err(|e| match e {
            RnnError::BadFile { message, .. } => RnnError::bad_file(path, message),
            other => other,
        })
    }

    /// [`TorchRnn::load`] from the bytes of a `.safetensors` file in memory.
    ///
    /// # Errors
    /// As [`TorchRnn::load`].
    pub fn from_bytes(bytes: &[u8], prefix: Option<&str>, config: TorchRnnConfig) -> Result<Self> {
        let bad = |m: String| RnnError::bad_file("<memory>", m);
        let tensors = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a readable safetensors file: {e}")))?;
        // Sorted, so that messages are the same from run to run (the header is a hash map).
        let mut names: Vec<&str> = tensors.names();
        names.sort_unstable();
        // Every lookup below goes through this set: a scan of `names` per layer would make a
        // file of many layers take quadratic time.
        let present: HashSet<&str> = names.iter().copied().collect();

        let prefix_given = prefix.is_some();
        let prefixes: BTreeSet<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("weight_ih_l0"))
            .collect();
        let prefix = match (prefix, prefixes.len()) {
            (Some(p), _) if prefixes.contains(p) => p.to_string(),
            (Some(p), _) => {
                return Err(bad(format!(
                    "no {} in the file; RNNs found under prefixes {}",
                    clip(&format!("{p}weight_ih_l0")),
                    show_names(&prefixes.iter().collect::<Vec<_>>())
                )));
            }
            (None, 1) => prefixes.first().copied().unwrap_or_default().to_string(),
            (None, 0) => {
                return Err(bad(format!(
                    "no nn.RNN weights (…weight_ih_l0) found; the file holds {}",
                    show_names(&names)
                )));
            }
            (None, _) => {
                return Err(bad(format!(
                    "several RNNs, under prefixes {}; say which one (--prefix)",
                    show_names(&prefixes.iter().collect::<Vec<_>>())
                )));
            }
        };
        let full = |name: &str| format!("{prefix}{name}");
        let has = |name: &str| present.contains(full(name).as_str());
        let mut used: HashSet<String> = HashSet::new();

        let mut read = |name: &str| -> Result<Option<ArrayD<f32>>> {
            let full = full(name);
            let Ok(view) = tensors.tensor(&full) else {
                return Ok(None);
            };
            let shown = clip(&full);
            let shape = view.shape().to_vec();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(view.data()),
                safetensors::Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(view.data())
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                other => {
                    return Err(bad(format!(
                        "{shown} is {other:?}; float32 or float64 expected (convert with .float())"
                    )));
                }
            };
            used.insert(full);
            ArrayD::from_shape_vec(IxDyn(&shape), values)
                .map(Some)
                .map_err(|e| bad(format!("{shown}: {e}")))
        };

        let mut num_layers = 0;
        while has(&format!("weight_ih_l{num_layers}")) {
            num_layers += 1;
        }
        let bidirectional = has("weight_ih_l0_reverse");
        // Either bias says bias=True: a file with one of the two is missing the other, and is
        // refused below rather than run without the bias it holds.
        let has_bias = has("bias_ih_l0") || has("bias_hh_l0");
        let dirs = if bidirectional { 2 } else { 1 };

        // nn.LSTM's projection (proj_size): weight_hr_l0 is proj_size × hidden_size.
        let projected = has("weight_hr_l0");
        // The cell, from the first weight_hh: (G·M) × M, G = 1 (nn.RNN), 4 (nn.LSTM), 3 (nn.GRU);
        // 4·M × P for a projected nn.LSTM.
        let cell = match tensors
            .tensor(&full("weight_hh_l0"))
            .map(|v| v.shape().to_vec())
        {
            _ if projected => Cell::Lstm,
            Ok(s) if s.len() == 2 && s[1] > 0 && s[0] == 4 * s[1] => Cell::Lstm,
            Ok(s) if s.len() == 2 && s[1] > 0 && s[0] == 3 * s[1] => Cell::Gru,
            _ => Cell::Simple,
        };
        let activation = match (cell, config.nonlinearity) {
            (_, Nonlinearity::Tanh) => Activation::Tanh,
            (Cell::Simple, Nonlinearity::Relu) => Activation::Relu,
            (cell, Nonlinearity::Relu) => {
                return Err(RnnError::InvalidOption(format!(
                    "nonlinearity relu belongs to nn.RNN; the file holds an nn.{}",
                    if cell == Cell::Lstm { "LSTM" } else { "GRU" }
                )));
            }
        };
        let g = cell.gates();
        let rnn_config = SimpleRnnConfig {
            activation,
            ..Default::default()
        };
        let mut hidden = None;
        // The state's width: proj_size, else hidden_size.
        let mut width: Option<usize> = None;
        let mut input_size = None;
        let mut layers = Vec::with_capacity(num_layers);
        for k in 0..num_layers {
            let mut directions = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let name = |w: &str| clip(&full(&format!("{w}{k}{suffix}")));
                let mut get = |w: &str| -> Result<ArrayD<f32>> {
                    read(&format!("{w}{k}{suffix}"))?.ok_or_else(|| {
                        let why = if w.starts_with("bias") {
                            " (with bias=True, nn.RNN has bias_ih and bias_hh in every layer and \
                             direction)"
                        } else {
                            ""
                        };
                        bad(format!("missing tensor {}{why}", name(w)))
                    })
                };
                let w_ih = get("weight_ih_l")?;
                let w_hh = get("weight_hh_l")?;
                // A projection (P × M) fixes M and the state's width P.
                let w_hr = if projected {
                    let w = get("weight_hr_l")?;
                    let s = w.shape().to_vec();
                    let fits = s.len() == 2
                        && s[0] > 0
                        && s[1] > 0
                        && hidden.is_none_or(|m| s[1] == m)
                        && width.is_none_or(|p| s[0] == p);
                    if !fits {
                        return Err(bad(format!(
                            "{} has shape {}, expected [proj_size, hidden_size]{}",
                            name("weight_hr_l"),
                            show_shape(&s),
                            match (width, hidden) {
                                (Some(p), Some(m)) => format!(" = [{p}, {m}] (as layer 0's)"),
                                _ => String::new(),
                            }
                        )));
                    }
                    hidden.get_or_insert(s[1]);
                    width.get_or_insert(s[0]);
                    Some(
                        w.into_dimensionality::<ndarray::Ix2>()
                            .map_err(|e| bad(format!("{}: {e}", name("weight_hr_l"))))?,
                    )
                } else {
                    None
                };
                // The first weight_hh fixes M: it must be G·M × M (square for nn.RNN).
                let m = match hidden {
                    Some(m) => m,
                    None => {
                        let s = w_hh.shape();
                        if s.len() != 2 || s[0] != g * s[1] {
                            return Err(bad(format!(
                                "{} has shape {} (nn.RNN's weight_hh is square, hidden_size × \
                                 hidden_size; nn.LSTM's 4·hidden_size × hidden_size, nn.GRU's \
                                 3·hidden_size × hidden_size)",
                                name("weight_hh_l"),
                                show_shape(s)
                            )));
                        }
                        *hidden.insert(s[1])
                    }
                };
                let p = *width.get_or_insert(m);
                // Layer 0 takes the input in both directions, so both need the same D; later
                // layers take dirs·M.
                let input_cols = if k > 0 { Some(dirs * p) } else { input_size };
                let matrix =
                    |a: ArrayD<f32>, w: &str, cols: Option<usize>| -> Result<Array2<f32>> {
                        let ok = a.ndim() == 2
                            && a.shape()[0] == g * m
                            && cols.is_none_or(|c| a.shape()[1] == c);
                        if !ok {
                            let hint = if g > 1 && a.ndim() == 2 && a.shape()[0] != g * m {
                                format!(
                                    " (weight_hh_l0 makes this an nn.{}: every weight has {g}·M \
                                     rows)",
                                    if cell == Cell::Lstm { "LSTM" } else { "GRU" }
                                )
                            } else if k == 0 && dir == 1 && w == "weight_ih_l" {
                                " (the forward direction's input size: both directions read the \
                                 same input)"
                                    .to_string()
                            } else {
                                String::new()
                            };
                            return Err(bad(format!(
                                "{} has shape {}, expected [{}, {}]{hint}",
                                name(w),
                                show_shape(a.shape()),
                                g * m,
                                cols.map_or("D".to_string(), |c| c.to_string())
                            )));
                        }
                        a.into_dimensionality()
                            .map_err(|e| bad(format!("{}: {e}", name(w))))
                    };
                let w_hh = matrix(w_hh, "weight_hh_l", Some(p))?;
                let w_ih = matrix(w_ih, "weight_ih_l", input_cols)?;
                input_size.get_or_insert(w_ih.ncols());
                let biases = if has_bias {
                    let vector = |a: ArrayD<f32>, w: &str| -> Result<Array1<f32>> {
                        if a.shape() != [g * m] {
                            return Err(bad(format!(
                                "{} has shape {}, expected [{}]",
                                name(w),
                                show_shape(a.shape()),
                                g * m
                            )));
                        }
                        a.into_dimensionality()
                            .map_err(|e| bad(format!("{}: {e}", name(w))))
                    };
                    let b_ih = get("bias_ih_l")?;
                    let b_hh = get("bias_hh_l")?;
                    Some((vector(b_ih, "bias_ih_l")?, vector(b_hh, "bias_hh_l")?))
                } else {
                    None
                };
                directions.push(match w_hr {
                    Some(w_hr) => layer_from_gate_rows_projected(
                        cell,
                        &[0, 1, 2, 3],
                        (w_ih, w_hh, m),
                        biases,
                        Some(w_hr),
                        rnn_config,
                    )?,
                    None => layer_from_torch(cell, w_ih, w_hh, biases, rnn_config)?,
                });
            }
            layers.push(directions);
        }

        // What load_state_dict(strict=True) would call unexpected keys. With `prefix` given, the
        // file is read as a whole model's state_dict and the RNN as one submodule of it, the way
        // `rnn.load_state_dict({k.removeprefix(p): v for k, v in sd.items() if
        // k.startswith(p)})` loads it: tensors outside the prefix belong to other modules. A
        // found prefix is a convenience for a file that holds one wrapped RNN; tensors outside
        // it then mean a model of which only the RNN would run, and are unused too.
        if !config.ignore_unused {
            let unused: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| !used.contains(*n) && (!prefix_given || n.starts_with(&prefix)))
                .collect();
            if !unused.is_empty() {
                let shown = match unused.as_slice() {
                    [one] => format!("tensor {}", clip(one)),
                    many => format!("tensors {}", show_names(many)),
                };
                let message = if unused.iter().all(|n| n.starts_with(&prefix)) {
                    format!(
                        "unexpected {shown} for an nn.RNN with {num_layers} layer(s), {} \
                         (missing a layer, or not an nn.RNN?); ignore_unused (--ignore-unused) \
                         runs without them",
                        if bidirectional {
                            "bidirectional"
                        } else {
                            "one direction"
                        }
                    )
                } else {
                    format!(
                        "{shown} not part of the nn.RNN under prefix {}: only the RNN would \
                         run; name the prefix (--prefix) to run the RNN alone, as a \
                         submodule, or pass ignore_unused (--ignore-unused)",
                        quote(&prefix)
                    )
                };
                return Err(bad(message));
            }
        }
        Ok(TorchRnn {
            layers,
            config,
            has_bias,
        })
    }

    /// The module: [`Cell::Simple`] for `nn.RNN`, [`Cell::Lstm`], [`Cell::Gru`].
    pub fn cell(&self) -> Cell {
        self.layers[0][0].cell()
    }

    /// `num_layers`.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// `bidirectional`.
    pub fn bidirectional(&self) -> bool {
        self.layers[0].len() == 2
    }

    /// `hidden_size` (*M*).
    pub fn hidden_size(&self) -> usize {
        self.layers[0][0].units()
    }

    /// `proj_size` of a projected `nn.LSTM` (the width of its output and `h_n`), else `None`.
    pub fn proj_size(&self) -> Option<usize> {
        self.layers[0][0].projection().map(|p| p.ncols())
    }

    /// `input_size` (*D*).
    pub fn input_size(&self) -> usize {
        self.layers[0][0].input_dim()
    }

    /// `bias`.
    pub fn has_bias(&self) -> bool {
        self.has_bias
    }

    /// The layers, `[layer][direction]`, in Keras's layout.
    pub fn layers(&self) -> &[Vec<SimpleRnn>] {
        &self.layers
    }

    /// Builds the model on a backend.
    ///
    /// # Errors
    /// As [`RnnStack::new`].
    pub fn build(self, backend: &Backend) -> Result<TorchRnnModel> {
        Ok(TorchRnnModel {
            stack: RnnStack::new(self.layers, backend)?,
            config: self.config,
        })
    }
}

/// What `nn.RNN` returns: `output` and `h_n`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TorchRnnOutput {
    /// *T* × *N* × (dirs·*M*), or *N* × *T* × (dirs·*M*) with `batch_first`; zeros past each
    /// sequence's length (as `pad_packed_sequence(..., total_length=T)` returns it).
    pub output: Array3<f32>,
    /// (layers·dirs) × *N* × *M*: each sequence's last real state, per layer and direction.
    pub h_n: Array3<f32>,
    /// `nn.LSTM`'s `c_n`, shaped as `h_n`; `None` for `nn.RNN` and `nn.GRU`.
    pub c_n: Option<Array3<f32>>,
}

impl TorchRnnModel {
    /// Runs the model like `rnn(input, h_0)`, or on a packed batch when `lengths` is given (one
    /// length per sequence, 1 ≤ length ≤ *T*, in any order).
    ///
    /// `input` is *T* × *N* × *D* (*N* × *T* × *D* with `batch_first`); `h_0` is
    /// (layers·dirs) × *N* × *M*, zeros when `None`.
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] for an input or `h_0` of the wrong shape or lengths of the
    /// wrong count; [`RnnError::BadLength`] for a length of 0 or past *T*; backend errors.
    pub fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        h_0: Option<ArrayView3<'_, f32>>,
        lengths: Option<&[usize]>,
    ) -> Result<TorchRnnOutput> {
        self.forward_states(input, h_0, None, lengths)
    }

    /// [`TorchRnnModel::forward`] for `nn.LSTM`, like `lstm(input, (h_0, c_0))`: `c_0` shaped as
    /// `h_0` (zeros when `None`); [`TorchRnnOutput::c_n`] holds `c_n`.
    ///
    /// # Errors
    /// As [`TorchRnnModel::forward`]; [`RnnError::InvalidOption`] for a `c_0` given to an
    /// `nn.RNN` or `nn.GRU`.
    pub fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        h_0: Option<ArrayView3<'_, f32>>,
        c_0: Option<ArrayView3<'_, f32>>,
        lengths: Option<&[usize]>,
    ) -> Result<TorchRnnOutput> {
        // Checked here, in the caller's axis order: the stack below sees the input batch-major
        // and would quote it transposed.
        let want = self.stack.input_dim();
        if input.shape()[2] != want {
            let expected = if self.config.batch_first {
                format!("[N, T, {want}] (N × T × D, batch_first)")
            } else {
                format!("[T, N, {want}] (T × N × D)")
            };
            return Err(RnnError::shape("input", expected, input.shape()));
        }
        let batch_major = if self.config.batch_first {
            input
        } else {
            input.permuted_axes([1, 0, 2])
        };
        let out = self.stack.forward_states(batch_major, h_0, c_0, lengths)?;
        let output = if self.config.batch_first {
            out.output
        } else {
            out.output
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned()
        };
        Ok(TorchRnnOutput {
            output,
            h_n: out.h_n,
            c_n: out.c_n,
        })
    }

    /// The stack this model runs.
    pub fn stack(&self) -> &RnnStack {
        &self.stack
    }
}
