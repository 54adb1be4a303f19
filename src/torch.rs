//! PyTorch's `torch.nn.RNN`: weights from a `state_dict` saved as safetensors, run with
//! PyTorch's conventions (time-first unless `batch_first`, `h_0`/`h_n` as (layers·dirs, N, M),
//! packed variable-length batches).

use std::collections::BTreeSet;
use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView3, IxDyn};

use crate::backend::Backend;
use crate::error::{Result, RnnError};
use crate::layer::SimpleRnnConfig;
use crate::stack::{RnnStack, layer_from_transposed};
use crate::{Activation, SimpleRnn};

/// `nn.RNN`'s `nonlinearity`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
}

/// An `nn.RNN`'s weights, read from its `state_dict`: `layers[k][dir]` in Keras's layout
/// (`weight_ih_l{k}` transposed to *D* × *M*, `weight_hh_l{k}` to *M* × *M*, `bias_ih_l{k}` +
/// `bias_hh_l{k}`), direction 1 from the `_reverse` tensors.
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

const WEIGHT_NAMES: [&str; 4] = ["weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"];

impl TorchRnn {
    /// Reads an `nn.RNN`'s `state_dict` from a `.safetensors` file (as
    /// `safetensors.torch.save_file(rnn.state_dict(), path)` writes it). `num_layers`,
    /// `bidirectional`, `hidden_size` and `bias` come from the file. When the RNN is a submodule
    /// (keys like `encoder.rnn.weight_ih_l0`) its prefix is found; pass `prefix` when the file
    /// holds several RNNs.
    ///
    /// # Errors
    /// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] for a corrupt
    /// header, no RNN weights, several RNNs and no `prefix`, missing tensors (a layer or a
    /// direction), tensors of the wrong shape (LSTM and GRU weights say so), or a dtype other than
    /// float32 / float64.
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
        let names: Vec<&str> = tensors.names().into_iter().collect();

        let prefixes: BTreeSet<&str> = names
            .iter()
            .filter_map(|n| n.strip_suffix("weight_ih_l0"))
            .collect();
        let prefix = match (prefix, prefixes.len()) {
            (Some(p), _) if prefixes.contains(p) => p.to_string(),
            (Some(p), _) => {
                return Err(bad(format!(
                    "no {p}weight_ih_l0 in the file; RNNs found under prefixes {prefixes:?}"
                )));
            }
            (None, 1) => prefixes.first().copied().unwrap_or_default().to_string(),
            (None, 0) => {
                let shown: Vec<&str> = names.iter().take(8).copied().collect();
                return Err(bad(format!(
                    "no nn.RNN weights (…weight_ih_l0) found; the file holds {shown:?}{}",
                    if names.len() > 8 { " …" } else { "" }
                )));
            }
            (None, _) => {
                return Err(bad(format!(
                    "several RNNs, under prefixes {prefixes:?}; say which one (--prefix)"
                )));
            }
        };

        let read = |name: &str| -> Result<Option<ArrayD<f32>>> {
            let full = format!("{prefix}{name}");
            let Ok(view) = tensors.tensor(&full) else {
                return Ok(None);
            };
            let shape = view.shape().to_vec();
            let values: Vec<f32> = match view.dtype() {
                safetensors::Dtype::F32 => bytemuck::pod_collect_to_vec::<u8, f32>(view.data()),
                safetensors::Dtype::F64 => bytemuck::pod_collect_to_vec::<u8, f64>(view.data())
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                other => {
                    return Err(bad(format!(
                        "{full} is {other:?}; float32 or float64 expected (convert with .float())"
                    )));
                }
            };
            ArrayD::from_shape_vec(IxDyn(&shape), values)
                .map(Some)
                .map_err(|e| bad(format!("{full}: {e}")))
        };

        let mut num_layers = 0;
        while names.contains(&format!("{prefix}weight_ih_l{num_layers}").as_str()) {
            num_layers += 1;
        }
        let bidirectional = names.contains(&format!("{prefix}weight_ih_l0_reverse").as_str());
        let has_bias = names.contains(&format!("{prefix}bias_ih_l0").as_str());
        let dirs = if bidirectional { 2 } else { 1 };
        // Anything else under the prefix means a module this reader does not know.
        for name in names.iter().filter_map(|n| n.strip_prefix(prefix.as_str())) {
            let known = (0..num_layers).any(|k| {
                WEIGHT_NAMES.iter().any(|w| {
                    (0..dirs)
                        .any(|d| name == format!("{w}{k}{}", if d == 1 { "_reverse" } else { "" }))
                })
            });
            if !known {
                return Err(bad(format!(
                    "unexpected tensor {prefix}{name} for an nn.RNN with {num_layers} layer(s), {} \
                     (missing a layer, or not an nn.RNN?)",
                    if bidirectional {
                        "bidirectional"
                    } else {
                        "one direction"
                    }
                )));
            }
        }

        let rnn_config = SimpleRnnConfig {
            activation: match config.nonlinearity {
                Nonlinearity::Tanh => Activation::Tanh,
                Nonlinearity::Relu => Activation::Relu,
            },
            ..Default::default()
        };
        let mut hidden = None;
        let mut layers = Vec::with_capacity(num_layers);
        for k in 0..num_layers {
            let mut directions = Vec::with_capacity(dirs);
            for dir in 0..dirs {
                let suffix = if dir == 1 { "_reverse" } else { "" };
                let get = |w: &str| -> Result<ArrayD<f32>> {
                    read(&format!("{w}{k}{suffix}"))?
                        .ok_or_else(|| bad(format!("missing tensor {prefix}{w}{k}{suffix}")))
                };
                let w_ih = get("weight_ih_l")?;
                let w_hh = get("weight_hh_l")?;
                // weight_hh is (gates·M) × M: its columns give M even for LSTM or GRU weights.
                let m = *hidden.get_or_insert(w_hh.shape().last().copied().unwrap_or(0));
                let matrix = |a: ArrayD<f32>,
                              name: &str,
                              cols: Option<usize>|
                 -> Result<Array2<f32>> {
                    let ok = a.ndim() == 2
                        && a.shape()[0] == m
                        && cols.is_none_or(|c| a.shape()[1] == c);
                    if !ok {
                        let hint =
                            if a.ndim() == 2 && (a.shape()[0] == 3 * m || a.shape()[0] == 4 * m) {
                                " (3·M or 4·M rows: GRU or LSTM weights, not nn.RNN)"
                            } else {
                                ""
                            };
                        return Err(bad(format!(
                            "{prefix}{name}{k}{suffix} has shape {:?}, expected [{m}, {}]{hint}",
                            a.shape(),
                            cols.map_or("D".to_string(), |c| c.to_string())
                        )));
                    }
                    Ok(a.into_dimensionality().expect("checked to be 2-D"))
                };
                let w_hh = matrix(w_hh, "weight_hh_l", Some(m))?;
                let w_ih = matrix(w_ih, "weight_ih_l", (k > 0).then_some(dirs * m))?;
                let biases = if has_bias {
                    let vector = |a: ArrayD<f32>, name: &str| -> Result<Array1<f32>> {
                        if a.shape() != [m] {
                            return Err(bad(format!(
                                "{prefix}{name}{k}{suffix} has shape {:?}, expected [{m}]",
                                a.shape()
                            )));
                        }
                        Ok(a.into_dimensionality().expect("checked to be 1-D"))
                    };
                    Some((
                        vector(get("bias_ih_l")?, "bias_ih_l")?,
                        vector(get("bias_hh_l")?, "bias_hh_l")?,
                    ))
                } else {
                    None
                };
                directions.push(layer_from_transposed(w_ih, w_hh, biases, rnn_config)?);
            }
            layers.push(directions);
        }
        Ok(TorchRnn {
            layers,
            config,
            has_bias,
        })
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
pub struct TorchRnnOutput {
    /// *T* × *N* × (dirs·*M*), or *N* × *T* × (dirs·*M*) with `batch_first`; zeros past each
    /// sequence's length (as `pad_packed_sequence(..., total_length=T)` returns it).
    pub output: Array3<f32>,
    /// (layers·dirs) × *N* × *M*: each sequence's last real state, per layer and direction.
    pub h_n: Array3<f32>,
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
        let batch_major = if self.config.batch_first {
            input
        } else {
            input.permuted_axes([1, 0, 2])
        };
        let out = self.stack.forward(batch_major, h_0, lengths)?;
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
        })
    }

    /// The stack this model runs.
    pub fn stack(&self) -> &RnnStack {
        &self.stack
    }
}
