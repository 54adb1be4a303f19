//! A loaded Keras model: its layers with their weights attached and checked against the shapes
//! that flow through the chain.

use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, Ix1, Ix2};

use crate::activation::Activation;
use crate::error::{Result, RnnError, clip, show_names};
use crate::keras::config::{LayerSpec, MergeMode, RnnSpec, parse_model};
use crate::keras::file::open;
use crate::keras::weights::WeightStore;
use crate::layer::{SimpleRnn, SimpleRnnConfig};

/// One layer of a loaded model, with its weights.
// A model holds a handful of layers; boxing the two-RNN variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum KerasLayer {
    /// `Embedding`: token ids to rows of `table` (*V* × *E*); `mask_zero` masks id 0.
    Embedding {
        /// The layer's name.
        name: String,
        /// The embedding matrix, vocabulary × output dimension.
        table: Array2<f32>,
        /// Whether id 0 is padding (masked for the layers after).
        mask_zero: bool,
    },
    /// `Masking`: a step whose features all equal `mask_value` is masked and zeroed.
    Masking {
        /// The layer's name.
        name: String,
        /// The padding value.
        mask_value: f32,
    },
    /// `SimpleRNN`.
    SimpleRnn {
        /// The layer's name.
        name: String,
        /// Its weights and options.
        layer: SimpleRnn,
        /// `stateful=True` in the config: the state carries over between calls.
        stateful: bool,
    },
    /// `Bidirectional(SimpleRNN)`.
    Bidirectional {
        /// The layer's name.
        name: String,
        /// The forward layer.
        forward: SimpleRnn,
        /// The backward layer (reads the input in the other direction).
        backward: SimpleRnn,
        /// How the two outputs combine.
        merge: MergeMode,
        /// Either inner layer was `stateful=True`.
        stateful: bool,
    },
    /// `Dense`, or `TimeDistributed(Dense)`: `activation(x · kernel + bias)` over the last axis.
    Dense {
        /// The layer's name.
        name: String,
        /// *D* × *U*.
        kernel: Array2<f32>,
        /// *U*, absent with `use_bias=False`.
        bias: Option<Array1<f32>>,
        /// Applied to each row (softmax across the *U* units).
        activation: Activation,
        /// Wrapped in `TimeDistributed`.
        time_distributed: bool,
    },
    /// `Activation`.
    Activation {
        /// The layer's name.
        name: String,
        /// The function.
        activation: Activation,
    },
    /// `Dropout` and the other noise layers: the identity at inference.
    Dropout {
        /// The layer's name.
        name: String,
    },
}

impl KerasLayer {
    /// The layer's name in the model.
    pub fn name(&self) -> &str {
        match self {
            KerasLayer::Embedding { name, .. }
            | KerasLayer::Masking { name, .. }
            | KerasLayer::SimpleRnn { name, .. }
            | KerasLayer::Bidirectional { name, .. }
            | KerasLayer::Dense { name, .. }
            | KerasLayer::Activation { name, .. }
            | KerasLayer::Dropout { name } => name,
        }
    }

    /// The class name, as `model.summary()` prints it.
    pub fn class_name(&self) -> &'static str {
        match self {
            KerasLayer::Embedding { .. } => "Embedding",
            KerasLayer::Masking { .. } => "Masking",
            KerasLayer::SimpleRnn { layer, .. } => layer.cell().keras_class(),
            KerasLayer::Bidirectional { .. } => "Bidirectional",
            KerasLayer::Dense {
                time_distributed: false,
                ..
            } => "Dense",
            KerasLayer::Dense {
                time_distributed: true,
                ..
            } => "TimeDistributed",
            KerasLayer::Activation { .. } => "Activation",
            KerasLayer::Dropout { .. } => "Dropout",
        }
    }

    /// The number of weights (`layer.count_params()`).
    pub fn param_count(&self) -> usize {
        let rnn = |l: &SimpleRnn| {
            l.kernel().len()
                + l.recurrent_kernel().len()
                + l.bias().map_or(0, |b| b.len())
                + l.recurrent_bias().map_or(0, |b| b.len())
        };
        match self {
            KerasLayer::Embedding { table, .. } => table.len(),
            KerasLayer::SimpleRnn { layer, .. } => rnn(layer),
            KerasLayer::Bidirectional {
                forward, backward, ..
            } => rnn(forward) + rnn(backward),
            KerasLayer::Dense { kernel, bias, .. } => {
                kernel.len() + bias.as_ref().map_or(0, |b| b.len())
            }
            _ => 0,
        }
    }
}

/// A Keras model loaded from a `.keras` archive or a legacy `.h5` file: a chain of layers with
/// their weights, checked against the shapes its config declares.
///
/// Run it with [`crate::KerasRunner`].
///
/// ```
/// use wgpu_rnn::KerasModel;
///
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keras_models/demo_text/model.keras");
/// let model = KerasModel::load(path)?; // a .keras archive or a legacy .h5 file
/// println!("{model}");                  // the layers and parameter counts, as model.summary()
/// assert!(model.takes_token_ids());     // it starts with an Embedding
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct KerasModel {
    name: String,
    input_shape: Vec<Option<usize>>,
    integer_input: bool,
    layers: Vec<KerasLayer>,
    output_shapes: Vec<Vec<Vec<Option<usize>>>>,
}

/// A shape with the batch axis first, `None` where the config leaves it open.
type Shape = Vec<Option<usize>>;

fn config_error(message: impl Into<String>) -> RnnError {
    RnnError::bad_file("<model config>", message)
}

impl KerasModel {
    /// Loads a model saved by `model.save("model.keras")` (Keras 3) or `model.save("model.h5")`
    /// (legacy HDF5, as tf.keras 2 and Keras 3 write it). The format is told by the file's
    /// first bytes.
    ///
    /// # Errors
    /// [`RnnError::Io`] when the file cannot be read; [`RnnError::BadFile`] when it is not a
    /// model file, is truncated or corrupt, uses a layer, option or dtype this crate does not
    /// run, is not a single chain, or holds weights whose shapes do not fit its config.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| RnnError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes_named(bytes, path)
    }

    /// [`KerasModel::load`] on a file image in memory.
    ///
    /// # Errors
    /// As [`KerasModel::load`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        Self::from_bytes_named(bytes, Path::new("<memory>"))
    }

    fn from_bytes_named(bytes: Vec<u8>, origin: &Path) -> Result<Self> {
        let opened = open(bytes, origin)?;
        let (name, specs) = parse_model(&opened.config)?;
        let paths = opened.weights.locate(&specs)?;
        let model = Self::build(name, &specs, &paths, &opened.weights)?;
        // build reads every located path, so anything else in the weights group is unused.
        let unused = opened.weights.unused(&paths)?;
        if !unused.is_empty() {
            return Err(RnnError::bad_file(
                origin,
                format!(
                    "weights {} are not used by any layer of the model (a bias stored for a layer \
                     with use_bias=False, or a layer the config does not have?)",
                    show_names(&unused)
                ),
            ));
        }
        Ok(model)
    }

    fn build(
        name: String,
        specs: &[LayerSpec],
        paths: &[Vec<String>],
        store: &WeightStore,
    ) -> Result<Self> {
        let LayerSpec::Input {
            batch_shape,
            integer,
        } = &specs[0]
        else {
            return Err(config_error("the model does not start with its input"));
        };
        if batch_shape.len() < 2 {
            return Err(config_error(format!(
                "input shape {batch_shape:?} has no feature or time axis"
            )));
        }
        let mut shape: Shape = batch_shape.clone();
        shape[0] = None;
        let input_shape = shape.clone();
        let mut layers = Vec::new();
        let mut output_shapes = Vec::new();
        let mut separate_outputs = false;
        for (spec, paths) in specs.iter().zip(paths).skip(1) {
            if separate_outputs {
                return Err(config_error(format!(
                    "layer {:?} follows a Bidirectional with merge_mode=None, whose two outputs \
                     only a model's end can take",
                    spec.name()
                )));
            }
            let mut read = paths.iter();
            let mut weight = |expected: &[usize]| -> Result<ArrayD<f32>> {
                let path = read.next().ok_or_else(|| {
                    config_error(format!("layer {:?} lacks a weight", spec.name()))
                })?;
                store.read(path, expected)
            };
            let (layer, out) = match spec {
                LayerSpec::Input { .. } => unreachable!("parse_model allows one input, first"),
                LayerSpec::Embedding {
                    name,
                    input_dim,
                    output_dim,
                    mask_zero,
                } => {
                    let table = into2(weight(&[*input_dim, *output_dim])?)?;
                    let mut out = shape.clone();
                    out.push(Some(*output_dim));
                    let layer = KerasLayer::Embedding {
                        name: name.clone(),
                        table,
                        mask_zero: *mask_zero,
                    };
                    (layer, vec![out])
                }
                LayerSpec::Masking { name, mask_value } => {
                    features(&shape, name)?;
                    let layer = KerasLayer::Masking {
                        name: name.clone(),
                        mask_value: *mask_value,
                    };
                    (layer, vec![shape.clone()])
                }
                LayerSpec::SimpleRnn(spec) => {
                    let d = sequence_features(&shape, &spec.name)?;
                    let layer = rnn_layer(spec, d, &mut weight)?;
                    let out = rnn_output(&shape, spec, spec.units);
                    let layer = KerasLayer::SimpleRnn {
                        name: spec.name.clone(),
                        layer,
                        stateful: spec.stateful,
                    };
                    (layer, vec![out])
                }
                LayerSpec::Bidirectional {
                    name,
                    forward,
                    backward,
                    merge,
                } => {
                    let d = sequence_features(&shape, name)?;
                    let f = rnn_layer(forward, d, &mut weight)?;
                    let b = rnn_layer(backward, d, &mut weight)?;
                    let outs = match merge {
                        MergeMode::Concat => {
                            vec![rnn_output(&shape, forward, forward.units + backward.units)]
                        }
                        MergeMode::Separate => {
                            separate_outputs = true;
                            vec![
                                rnn_output(&shape, forward, forward.units),
                                rnn_output(&shape, backward, backward.units),
                            ]
                        }
                        _ => vec![rnn_output(&shape, forward, forward.units)],
                    };
                    let layer = KerasLayer::Bidirectional {
                        name: name.clone(),
                        forward: f,
                        backward: b,
                        merge: *merge,
                        stateful: forward.stateful || backward.stateful,
                    };
                    (layer, outs)
                }
                LayerSpec::Dense {
                    name,
                    units,
                    activation,
                    use_bias,
                    time_distributed,
                } => {
                    let d = features(&shape, name)?;
                    if *time_distributed && shape.len() < 3 {
                        return Err(config_error(format!(
                            "layer {name:?}: TimeDistributed needs a time axis, its input is {shape:?}"
                        )));
                    }
                    let kernel = into2(weight(&[d, *units])?)?;
                    let bias = if *use_bias {
                        Some(into1(weight(&[*units])?)?)
                    } else {
                        None
                    };
                    let mut out = shape.clone();
                    *out.last_mut().expect("features() checked the rank") = Some(*units);
                    let layer = KerasLayer::Dense {
                        name: name.clone(),
                        kernel,
                        bias,
                        activation: *activation,
                        time_distributed: *time_distributed,
                    };
                    (layer, vec![out])
                }
                LayerSpec::Activation { name, activation } => {
                    let layer = KerasLayer::Activation {
                        name: name.clone(),
                        activation: *activation,
                    };
                    (layer, vec![shape.clone()])
                }
                LayerSpec::Dropout { name } => (
                    KerasLayer::Dropout { name: name.clone() },
                    vec![shape.clone()],
                ),
            };
            // Every located weight must have been taken, or unused() would not see it dropped.
            if let Some(extra) = read.next() {
                return Err(config_error(format!(
                    "layer {:?} does not use its weight {}",
                    spec.name(),
                    clip(extra)
                )));
            }
            shape = out[0].clone();
            layers.push(layer);
            output_shapes.push(out);
        }
        if layers.is_empty() {
            return Err(config_error(format!("model {name:?} has no layers")));
        }
        Ok(KerasModel {
            name,
            input_shape,
            integer_input: *integer,
            layers,
            output_shapes,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The input shape from the config, batch axis first (`None` where any size goes).
    pub fn input_shape(&self) -> &[Option<usize>] {
        &self.input_shape
    }

    /// The input's feature count *D*, when the input is a sequence of feature vectors (not
    /// token ids).
    pub fn input_features(&self) -> Option<usize> {
        if self.takes_token_ids() {
            None
        } else {
            self.input_shape.last().copied().flatten()
        }
    }

    /// True when the first layer is an `Embedding`: the input is integer token ids.
    pub fn takes_token_ids(&self) -> bool {
        matches!(self.layers[0], KerasLayer::Embedding { .. })
    }

    /// True when the config declares an integer input dtype.
    pub fn declares_integer_input(&self) -> bool {
        self.integer_input
    }

    /// The layers, in order (without the input layer).
    pub fn layers(&self) -> &[KerasLayer] {
        &self.layers
    }

    /// The output shapes of each layer (two for a `Bidirectional` with `merge_mode=None`).
    pub fn output_shapes(&self) -> &[Vec<Vec<Option<usize>>>] {
        &self.output_shapes
    }

    /// The total number of weights.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(KerasLayer::param_count).sum()
    }

    /// True when some layer was saved with `stateful=True`.
    pub fn is_stateful(&self) -> bool {
        self.layers.iter().any(|l| {
            matches!(
                l,
                KerasLayer::SimpleRnn { stateful: true, .. }
                    | KerasLayer::Bidirectional { stateful: true, .. }
            )
        })
    }
}

fn into2(a: ArrayD<f32>) -> Result<Array2<f32>> {
    a.into_dimensionality::<Ix2>()
        .map_err(|e| config_error(e.to_string()))
}

fn into1(a: ArrayD<f32>) -> Result<Array1<f32>> {
    a.into_dimensionality::<Ix1>()
        .map_err(|e| config_error(e.to_string()))
}

/// The size of the last axis, which a layer needs to know to check its weights.
fn features(shape: &Shape, layer: &str) -> Result<usize> {
    match shape.as_slice() {
        [_, .., Some(d)] => Ok(*d),
        _ => Err(config_error(format!(
            "layer {layer:?}: its input shape {shape:?} has no known feature axis"
        ))),
    }
}

/// The feature count of a (batch, time, features) input.
fn sequence_features(shape: &Shape, layer: &str) -> Result<usize> {
    if shape.len() != 3 {
        return Err(config_error(format!(
            "layer {layer:?} needs a (batch, time, features) input, not {shape:?}"
        )));
    }
    features(shape, layer)
}

fn rnn_output(input: &Shape, spec: &RnnSpec, units: usize) -> Shape {
    if spec.return_sequences {
        vec![None, input[1], Some(units)]
    } else {
        vec![None, Some(units)]
    }
}

fn rnn_layer(
    spec: &RnnSpec,
    d: usize,
    weight: &mut impl FnMut(&[usize]) -> Result<ArrayD<f32>>,
) -> Result<SimpleRnn> {
    let m = spec.units;
    let gm = spec.cell.gates() * m;
    let kernel = into2(weight(&[d, gm])?)?;
    let recurrent = into2(weight(&[m, gm])?)?;
    // A GRU (reset_after=True) stores its input and recurrent biases as the two rows of one.
    let (bias, recurrent_bias) = match (spec.use_bias, spec.cell.has_recurrent_bias()) {
        (false, _) => (None, None),
        (true, false) => (Some(into1(weight(&[gm])?)?), None),
        (true, true) => {
            let both = into2(weight(&[2, gm])?)?;
            (Some(both.row(0).to_owned()), Some(both.row(1).to_owned()))
        }
    };
    let config = SimpleRnnConfig {
        activation: spec.activation,
        recurrent_activation: spec.recurrent_activation,
        return_sequences: spec.return_sequences,
        go_backwards: spec.go_backwards,
        zero_output_for_mask: spec.zero_output_for_mask,
        ..Default::default()
    };
    SimpleRnn::gated(spec.cell, kernel, recurrent, bias, recurrent_bias, config)
}
