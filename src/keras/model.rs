//! A loaded Keras model: its layers and ops with their weights attached, the graph of their
//! calls, and the type of every tensor, checked against the weights when the file is read.

use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayD, Ix1, Ix2, Ix3, IxDyn};

use crate::activation::Activation;
use crate::error::{Result, RnnError, clip, show_names};
use crate::keras::calls::{Call, layer_output_types, op_output_types, resolve, show};
use crate::keras::config::{
    ActivationLayerSpec, ConvPadding, LayerSpec, MergeKind, MergeMode, RnnSpec,
};
use crate::keras::file::open;
use crate::keras::graph::{TensorRef, parse_model};
use crate::keras::ops::{KerasOp, Operand};
use crate::keras::tensor::{DType, Shape, TensorType, resolve_axis};
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
        /// `return_state=True`: a call also returns the final state (*h*, and *c* for an LSTM).
        return_state: bool,
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
        /// `return_state=True`: a call also returns the final states, forward then backward.
        return_state: bool,
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
        /// An activation layer given as its `activation`, run after it.
        then: Option<ActivationLayer>,
        /// Wrapped in `TimeDistributed`.
        time_distributed: bool,
    },
    /// `Activation`.
    Activation {
        /// The layer's name.
        name: String,
        /// The function.
        activation: Activation,
        /// An activation layer given as its `activation`, run after `activation` (linear then).
        then: Option<ActivationLayer>,
    },
    /// `Dropout` and the other noise layers: the identity at inference.
    Dropout {
        /// The layer's name.
        name: String,
    },
    /// A merge layer (`Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`,
    /// `Concatenate`): elementwise over inputs of one rank (broadcast as NumPy does), or a
    /// concatenation along an axis.
    Merge {
        /// The layer's name.
        name: String,
        /// Which merge.
        kind: MergeKind,
    },
    /// `RepeatVector`: *N* × *F* to *N* × `n` × *F*.
    RepeatVector {
        /// The layer's name.
        name: String,
        /// How many times.
        n: usize,
    },
    /// `GlobalAveragePooling1D` (`max` false): *N* × *T* × *F* to the mean over the steps, of
    /// the real steps only under a mask (NaN for a row with none, as Keras divides 0 by 0);
    /// `GlobalMaxPooling1D`: the maximum over every step (Keras's ignores masks).
    GlobalPooling {
        /// The layer's name.
        name: String,
        /// Maximum instead of mean.
        max: bool,
        /// Keep the time axis (of size 1).
        keepdims: bool,
    },
    /// `Flatten`: the axes after the batch as one (`channels_first`: the second axis moved
    /// last first).
    Flatten {
        /// The layer's name.
        name: String,
        /// `data_format="channels_first"`.
        channels_first: bool,
    },
    /// `Reshape`: the axes after the batch to `target` (one -1 is inferred).
    Reshape {
        /// The layer's name.
        name: String,
        /// The shape after the batch axis.
        target: Vec<i64>,
    },
    /// `LayerNormalization` over `axes`: `x · inv + (beta - mean · inv)` with
    /// `inv = gamma / sqrt(var + epsilon)` (Keras's order of operations); with `rms_scaling`
    /// (deprecated in Keras), `x · inv` alone.
    LayerNormalization {
        /// The layer's name.
        name: String,
        /// The normalized axes, ascending.
        axes: Vec<usize>,
        /// Added to the variance.
        epsilon: f32,
        /// Scale, shaped as the normalized axes (absent with `scale=False`).
        gamma: Option<ArrayD<f32>>,
        /// Offset, shaped as the normalized axes (absent with `center=False`).
        beta: Option<ArrayD<f32>>,
        /// `rms_scaling=True`.
        rms_scaling: bool,
    },
    /// `BatchNormalization` at inference: the moving statistics along `axis`.
    BatchNormalization {
        /// The layer's name.
        name: String,
        /// The channel axis.
        axis: usize,
        /// Added to the variance.
        epsilon: f32,
        /// Scale, *C* (absent with `scale=False`).
        gamma: Option<Array1<f32>>,
        /// Offset, *C* (absent with `center=False`).
        beta: Option<Array1<f32>>,
        /// *C*.
        moving_mean: Array1<f32>,
        /// *C*.
        moving_variance: Array1<f32>,
    },
    /// `PReLU`: `relu(x) - alpha · relu(-x)`, `alpha` shaped as the input after the batch axis
    /// (1 along shared axes).
    PRelu {
        /// The layer's name.
        name: String,
        /// The slopes.
        alpha: ArrayD<f32>,
    },
    /// `Conv1D` over *N* × *T* × *C*: `activation(Σ x[t · stride + k · dilation - pad] ·
    /// kernel[k] + bias)` for each output step, zeros where a window passes the input's ends.
    Conv1D {
        /// The layer's name.
        name: String,
        /// *K* × *C* × *F* (taps, input channels, filters), Keras's layout.
        kernel: Array3<f32>,
        /// *F*, absent with `use_bias=False`.
        bias: Option<Array1<f32>>,
        /// Steps between windows.
        stride: usize,
        /// Steps between a window's taps.
        dilation: usize,
        /// How the input's ends are padded.
        padding: ConvPadding,
        /// Applied to each output step's filters.
        activation: Activation,
        /// An activation layer given as its `activation`, run after it.
        then: Option<ActivationLayer>,
    },
    /// The `Softmax` layer, along `axes` (several: as one); under a mask, masked positions
    /// take -1e9 first.
    Softmax {
        /// The layer's name.
        name: String,
        /// The axes, negative from the end.
        axes: Vec<i64>,
    },
}

/// An activation layer that a layer calls on its output: its `activation` given as a layer
/// object that no [`Activation`] computes (`Dense(4, activation=PReLU())`, a `Softmax(axis=1)`
/// on a sequence). It runs after the layer as the layer of its class runs, without a mask
/// (Keras's layers call their activation without one).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ActivationLayer {
    /// `PReLU`: `relu(x) - alpha · relu(-x)`, `alpha` shaped as the layer's output after the
    /// batch axis, 1 along shared axes (and along the time axis of a `TimeDistributed` layer,
    /// which calls it on every step alike).
    PRelu {
        /// The activation object's name.
        name: String,
        /// The slopes.
        alpha: ArrayD<f32>,
    },
    /// `Softmax` along `axes` of the layer's output (several: as one).
    Softmax {
        /// The activation object's name.
        name: String,
        /// The axes, from 0.
        axes: Vec<i64>,
    },
}

impl ActivationLayer {
    /// The number of weights it holds.
    fn param_count(&self) -> usize {
        match self {
            ActivationLayer::PRelu { alpha, .. } => alpha.len(),
            ActivationLayer::Softmax { .. } => 0,
        }
    }
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
            | KerasLayer::Merge { name, .. }
            | KerasLayer::RepeatVector { name, .. }
            | KerasLayer::GlobalPooling { name, .. }
            | KerasLayer::Flatten { name, .. }
            | KerasLayer::Reshape { name, .. }
            | KerasLayer::LayerNormalization { name, .. }
            | KerasLayer::BatchNormalization { name, .. }
            | KerasLayer::PRelu { name, .. }
            | KerasLayer::Softmax { name, .. }
            | KerasLayer::Conv1D { name, .. }
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
            KerasLayer::Merge { kind, .. } => kind.class_name(),
            KerasLayer::RepeatVector { .. } => "RepeatVector",
            KerasLayer::GlobalPooling { max: false, .. } => "GlobalAveragePooling1D",
            KerasLayer::GlobalPooling { max: true, .. } => "GlobalMaxPooling1D",
            KerasLayer::Flatten { .. } => "Flatten",
            KerasLayer::Reshape { .. } => "Reshape",
            KerasLayer::LayerNormalization { .. } => "LayerNormalization",
            KerasLayer::BatchNormalization { .. } => "BatchNormalization",
            KerasLayer::PRelu { .. } => "PReLU",
            KerasLayer::Softmax { .. } => "Softmax",
            KerasLayer::Conv1D { .. } => "Conv1D",
        }
    }

    /// Whether the layer carries its state between calls (`stateful=True`).
    pub fn is_stateful(&self) -> bool {
        matches!(
            self,
            KerasLayer::SimpleRnn { stateful: true, .. }
                | KerasLayer::Bidirectional { stateful: true, .. }
        )
    }

    /// The recurrent layers inside: one for a recurrent layer, forward and backward for a
    /// Bidirectional, none for the others.
    pub fn recurrent(&self) -> Vec<&SimpleRnn> {
        match self {
            KerasLayer::SimpleRnn { layer, .. } => vec![layer],
            KerasLayer::Bidirectional {
                forward, backward, ..
            } => vec![forward, backward],
            _ => Vec::new(),
        }
    }

    /// The number of weights (`layer.count_params()`).
    pub fn param_count(&self) -> usize {
        let rnn = |l: &SimpleRnn| {
            l.kernel().len()
                + l.recurrent_kernel().len()
                + l.bias().map_or(0, |b| b.len())
                + l.recurrent_bias().map_or(0, |b| b.len())
                + l.unit_slopes().map_or(0, |s| s.len())
        };
        let then = |t: &Option<ActivationLayer>| t.as_ref().map_or(0, ActivationLayer::param_count);
        match self {
            KerasLayer::Embedding { table, .. } => table.len(),
            KerasLayer::SimpleRnn { layer, .. } => rnn(layer),
            KerasLayer::Bidirectional {
                forward, backward, ..
            } => rnn(forward) + rnn(backward),
            KerasLayer::Dense {
                kernel,
                bias,
                then: t,
                ..
            } => kernel.len() + bias.as_ref().map_or(0, |b| b.len()) + then(t),
            KerasLayer::Activation { then: t, .. } => then(t),
            KerasLayer::LayerNormalization { gamma, beta, .. } => {
                gamma.as_ref().map_or(0, |g| g.len()) + beta.as_ref().map_or(0, |b| b.len())
            }
            KerasLayer::BatchNormalization {
                gamma,
                beta,
                moving_mean,
                ..
            } => {
                gamma.as_ref().map_or(0, |g| g.len())
                    + beta.as_ref().map_or(0, |b| b.len())
                    + 2 * moving_mean.len()
            }
            KerasLayer::PRelu { alpha, .. } => alpha.len(),
            KerasLayer::Conv1D {
                kernel,
                bias,
                then: t,
                ..
            } => kernel.len() + bias.as_ref().map_or(0, |b| b.len()) + then(t),
            _ => 0,
        }
    }

    /// How many of [`KerasLayer::param_count`] are not trained (BatchNormalization's moving
    /// statistics).
    pub fn non_trainable_count(&self) -> usize {
        match self {
            KerasLayer::BatchNormalization { moving_mean, .. } => 2 * moving_mean.len(),
            _ => 0,
        }
    }
}

/// A Keras model loaded from a `.keras` archive or a legacy `.h5` file: its layers with their
/// weights, and the graph of their calls (a Sequential chain, or any directed acyclic graph a
/// functional model records: several inputs and outputs, layers called more than once, merges,
/// masks computed by ops), every tensor's shape checked against the weights.
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
    functional: bool,
    entries: Vec<ModelEntry>,
    layers: Vec<KerasLayer>,
    nodes: Vec<ModelNode>,
    inputs: Vec<ModelInput>,
    outputs: Vec<TensorRef>,
    /// Whether each node is needed for an output (Keras runs only those).
    live: Vec<bool>,
}

/// What an entry of the config is.
#[derive(Clone, Debug)]
pub(crate) enum EntryKind {
    /// Input number `i` of the model.
    Input(usize),
    /// Layer `i` of [`KerasModel::layers`].
    Layer(usize),
    Op(KerasOp),
}

/// A layer, op or input of the config.
#[derive(Clone, Debug)]
pub(crate) struct ModelEntry {
    pub name: String,
    pub class: String,
    pub kind: EntryKind,
    /// Made by this crate (a Sequential model's mask op), not in the config.
    pub synthesized: bool,
}

/// One call, resolved and typed.
#[derive(Clone, Debug)]
pub(crate) struct ModelNode {
    pub entry: usize,
    /// Which call of its entry this is (Keras's node index).
    pub index: usize,
    pub call: Call,
    pub outputs: Vec<TensorType>,
}

/// One input of the model.
#[derive(Clone, Debug)]
pub(crate) struct ModelInput {
    pub name: String,
    pub dtype: DType,
    /// Batch axis first, open (`None`).
    pub shape: Shape,
    pub tensor: TensorRef,
}

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
    /// model file, is truncated or corrupt, uses a layer, op, option or dtype this crate does
    /// not run, has a graph that is not acyclic or references what it does not have, or holds
    /// weights whose shapes do not fit its config. A legacy `.h5` file whose graph holds ops
    /// (the masks of a functional model) is refused, as Keras refuses it.
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
        let legacy = matches!(opened.weights, WeightStore::Legacy(_));
        let graph = parse_model(&opened.config, legacy)?;
        // Keras's model.layers: the layers (inputs too), not the ops.
        let layer_entries: Vec<usize> = (0..graph.entries.len())
            .filter(|&i| !matches!(graph.entries[i].spec, LayerSpec::Op { .. }))
            .collect();
        let specs: Vec<&LayerSpec> = layer_entries
            .iter()
            .map(|&i| &graph.entries[i].spec)
            .collect();
        let paths = opened.weights.locate(&specs)?;
        let mut paths_of = vec![Vec::new(); graph.entries.len()];
        for (&entry, p) in layer_entries.iter().zip(&paths) {
            paths_of[entry] = p.clone();
        }
        let model = Self::build(graph, &paths_of, &opened.weights)?;
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
        graph: crate::keras::graph::Graph,
        paths: &[Vec<String>],
        store: &WeightStore,
    ) -> Result<Self> {
        let mut entries: Vec<ModelEntry> = graph
            .entries
            .iter()
            .map(|e| ModelEntry {
                name: e.spec.name().to_string(),
                class: e.spec.class_name().to_string(),
                kind: EntryKind::Op(KerasOp::LogicalNot),
                synthesized: e.synthesized,
            })
            .collect();
        let mut layers: Vec<KerasLayer> = Vec::new();
        let mut built = vec![false; entries.len()];
        let mut calls = vec![0usize; entries.len()];
        let mut nodes: Vec<ModelNode> = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let spec = &graph.entries[node.entry].spec;
            let name = spec.name();
            let call = resolve(spec, node)?;
            let type_of = |t: TensorRef| -> Result<TensorType> {
                let made = &nodes[t.node];
                made.outputs.get(t.output).cloned().ok_or_else(|| {
                    config_error(format!(
                        "layer {name:?} reads output {} of {:?}, which returns {}",
                        t.output,
                        entries[made.entry].name,
                        made.outputs.len()
                    ))
                })
            };
            let operands = call
                .operands
                .iter()
                .map(|o| match o {
                    Operand::Tensor(t) => type_of(*t).map(Operand::Tensor),
                    Operand::Scalar(s) => Ok(Operand::Scalar(*s)),
                })
                .collect::<Result<Vec<_>>>()?;
            let inputs: Vec<TensorType> = operands
                .iter()
                .filter_map(|o| match o {
                    Operand::Tensor(t) => Some(t.clone()),
                    Operand::Scalar(_) => None,
                })
                .collect();
            let mask = call.mask.map(type_of).transpose()?;
            let states = call
                .initial_state
                .iter()
                .map(|&t| type_of(t))
                .collect::<Result<Vec<_>>>()?;
            // A merge's input masks are broadcast along the inputs' last axis.
            for (m, x) in call.input_masks.iter().zip(&inputs) {
                if let Some(m) = m {
                    let m = type_of(*m)?;
                    let fits = m.shape.len() + 1 == x.shape.len()
                        && m.shape
                            .iter()
                            .zip(&x.shape)
                            .all(|(a, b)| a.zip(*b).is_none_or(|(a, b)| a == b || a == 1));
                    if !fits {
                        return Err(config_error(format!(
                            "layer {name:?}: an input's mask {} does not fit the input {}",
                            show(&m.shape),
                            show(&x.shape)
                        )));
                    }
                }
            }
            calls[node.entry] += 1;
            let outputs = match spec {
                LayerSpec::Input {
                    batch_shape, dtype, ..
                } => {
                    if batch_shape.is_empty() {
                        return Err(config_error(format!("input layer {name:?} has no shape")));
                    }
                    let mut shape = batch_shape.clone();
                    shape[0] = None;
                    vec![TensorType::new(*dtype, shape)]
                }
                LayerSpec::Op { op, .. } => {
                    entries[node.entry].kind = EntryKind::Op(op.clone());
                    op_output_types(op, &operands, name)?
                }
                _ => {
                    if !built[node.entry] {
                        let mut read = paths[node.entry].iter();
                        let mut weight = |expected: &[usize]| -> Result<ArrayD<f32>> {
                            let path = read.next().ok_or_else(|| {
                                config_error(format!("layer {name:?} lacks a weight"))
                            })?;
                            store.read(path, expected)
                        };
                        let layer = build_layer(spec, &inputs[0], &mut weight)?;
                        // Every located weight must have been taken, or unused() would not see
                        // it dropped.
                        if let Some(extra) = read.next() {
                            return Err(config_error(format!(
                                "layer {name:?} does not use its weight {}",
                                clip(extra)
                            )));
                        }
                        entries[node.entry].kind = EntryKind::Layer(layers.len());
                        layers.push(layer);
                        built[node.entry] = true;
                    }
                    let EntryKind::Layer(index) = entries[node.entry].kind else {
                        unreachable!("built above");
                    };
                    let layer = &layers[index];
                    if layer.is_stateful() && (calls[node.entry] > 1 || !states.is_empty()) {
                        return Err(config_error(format!(
                            "layer {name:?} is stateful and called more than once or with an \
                             initial_state, which this crate does not run"
                        )));
                    }
                    layer_output_types(layer, &inputs, mask.as_ref(), &states)?
                }
            };
            if outputs.len() != spec.output_count() {
                return Err(config_error(format!(
                    "layer {name:?} returns {} tensors where its config says {}",
                    outputs.len(),
                    spec.output_count()
                )));
            }
            nodes.push(ModelNode {
                entry: node.entry,
                index: node.call,
                call,
                outputs,
            });
        }
        let mut inputs = Vec::with_capacity(graph.inputs.len());
        for (i, &t) in graph.inputs.iter().enumerate() {
            let entry = nodes[t.node].entry;
            entries[entry].kind = EntryKind::Input(i);
            let ty = &nodes[t.node].outputs[0];
            inputs.push(ModelInput {
                name: entries[entry].name.clone(),
                dtype: ty.dtype,
                shape: ty.shape.clone(),
                tensor: t,
            });
        }
        for &t in &graph.outputs {
            if t.output >= nodes[t.node].outputs.len() {
                return Err(config_error(format!(
                    "the model's output is output {} of {:?}, which returns {}",
                    t.output,
                    entries[nodes[t.node].entry].name,
                    nodes[t.node].outputs.len()
                )));
            }
        }
        if layers.is_empty() && graph.outputs.iter().all(|t| graph.inputs.contains(t)) {
            return Err(config_error(format!(
                "model {:?} has no layers",
                graph.name
            )));
        }
        let mut live = vec![false; nodes.len()];
        let mut pending: Vec<usize> = graph.outputs.iter().map(|t| t.node).collect();
        while let Some(i) = pending.pop() {
            if !std::mem::replace(&mut live[i], true) {
                let n = &nodes[i];
                pending.extend(n.call.reads().iter().map(|t| t.node));
            }
        }
        Ok(KerasModel {
            name: graph.name,
            functional: graph.functional,
            entries,
            layers,
            nodes,
            inputs,
            outputs: graph.outputs,
            live,
        })
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for a Functional model (false for a Sequential one).
    pub fn is_functional(&self) -> bool {
        self.functional
    }

    /// The first input's shape from the config, batch axis first (`None` where any size goes).
    pub fn input_shape(&self) -> &[Option<usize>] {
        &self.inputs[0].shape
    }

    /// The input names, in the order the model takes them (`model.input_names` in Keras).
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    /// Every input's shape, in order, batch axis first.
    pub fn input_shapes(&self) -> Vec<&[Option<usize>]> {
        self.inputs.iter().map(|i| i.shape.as_slice()).collect()
    }

    /// How many inputs the model takes.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// The first input's feature count *D*, when it is a sequence of feature vectors (not
    /// token ids).
    pub fn input_features(&self) -> Option<usize> {
        if self.takes_token_ids() {
            None
        } else {
            self.input_shape().last().copied().flatten()
        }
    }

    /// True when the first input is token ids: declared as integers, or read by an
    /// `Embedding`.
    pub fn takes_token_ids(&self) -> bool {
        self.input_takes_ids(0)
    }

    pub(crate) fn input_takes_ids(&self, input: usize) -> bool {
        let tensor = self.inputs[input].tensor;
        self.inputs[input].dtype == DType::I32
            || self.nodes.iter().any(|n| {
                matches!(
                    self.entries[n.entry].kind,
                    EntryKind::Layer(l) if matches!(self.layers[l], KerasLayer::Embedding { .. })
                ) && n.call.input() == tensor
            })
    }

    /// True when the first input's config declares an integer dtype.
    pub fn declares_integer_input(&self) -> bool {
        self.inputs[0].dtype == DType::I32
    }

    /// The layers, in the config's order (without input layers and ops). A layer called
    /// several times is here once.
    pub fn layers(&self) -> &[KerasLayer] {
        &self.layers
    }

    /// The shape of each of the model's outputs, in order, batch axis first.
    pub fn output_shapes(&self) -> Vec<&[Option<usize>]> {
        self.outputs
            .iter()
            .map(|t| self.nodes[t.node].outputs[t.output].shape.as_slice())
            .collect()
    }

    /// How many outputs the model returns.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// The total number of weights.
    pub fn param_count(&self) -> usize {
        self.layers.iter().map(KerasLayer::param_count).sum()
    }

    /// True when some layer was saved with `stateful=True`.
    pub fn is_stateful(&self) -> bool {
        self.layers.iter().any(KerasLayer::is_stateful)
    }

    pub(crate) fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub(crate) fn nodes(&self) -> &[ModelNode] {
        &self.nodes
    }

    pub(crate) fn inputs(&self) -> &[ModelInput] {
        &self.inputs
    }

    pub(crate) fn outputs(&self) -> &[TensorRef] {
        &self.outputs
    }

    /// Whether node `i` is needed for an output.
    pub(crate) fn is_live(&self, i: usize) -> bool {
        self.live[i]
    }
}

/// Builds a layer from its spec, its first call's input type and its weights (read in Keras's
/// order through `weight`, each checked against the shape it must have).
fn build_layer(
    spec: &LayerSpec,
    input: &TensorType,
    weight: &mut impl FnMut(&[usize]) -> Result<ArrayD<f32>>,
) -> Result<KerasLayer> {
    let name = spec.name();
    let features = || -> Result<usize> {
        match input.shape.as_slice() {
            [_, .., Some(d)] => Ok(*d),
            _ => Err(config_error(format!(
                "layer {name:?}: its input shape {} has no known feature axis",
                show(&input.shape)
            ))),
        }
    };
    Ok(match spec {
        LayerSpec::Input { .. } | LayerSpec::Op { .. } => {
            unreachable!("inputs and ops are not layers")
        }
        LayerSpec::Embedding {
            name,
            input_dim,
            output_dim,
            mask_zero,
        } => KerasLayer::Embedding {
            name: name.clone(),
            table: into2(weight(&[*input_dim, *output_dim])?)?,
            mask_zero: *mask_zero,
        },
        LayerSpec::Masking { name, mask_value } => KerasLayer::Masking {
            name: name.clone(),
            mask_value: *mask_value,
        },
        LayerSpec::SimpleRnn(spec) => {
            let d = sequence_features(input, &spec.name)?;
            KerasLayer::SimpleRnn {
                name: spec.name.clone(),
                layer: rnn_layer(spec, d, weight)?,
                stateful: spec.stateful,
                return_state: spec.return_state,
            }
        }
        LayerSpec::Bidirectional {
            name,
            forward,
            backward,
            merge,
        } => {
            let d = sequence_features(input, name)?;
            let f = rnn_layer(forward, d, weight)?;
            let b = rnn_layer(backward, d, weight)?;
            if forward.return_state != backward.return_state {
                return Err(config_error(format!(
                    "layer {name:?}: forward and backward layers differ in return_state"
                )));
            }
            KerasLayer::Bidirectional {
                name: name.clone(),
                forward: f,
                backward: b,
                merge: *merge,
                stateful: forward.stateful || backward.stateful,
                return_state: forward.return_state,
            }
        }
        LayerSpec::Dense {
            name,
            units,
            activation,
            then,
            use_bias,
            time_distributed,
        } => {
            let d = features()?;
            if *time_distributed && input.shape.len() < 3 {
                return Err(config_error(format!(
                    "layer {name:?}: TimeDistributed needs a time axis, its input is {}",
                    show(&input.shape)
                )));
            }
            let kernel = into2(weight(&[d, *units])?)?;
            let bias = if *use_bias {
                Some(into1(weight(&[*units])?)?)
            } else {
                None
            };
            let layer = KerasLayer::Dense {
                name: name.clone(),
                kernel,
                bias,
                activation: *activation,
                then: None,
                time_distributed: *time_distributed,
            };
            with_activation_after(layer, then.as_ref(), input, *time_distributed, weight)?
        }
        LayerSpec::Activation {
            name,
            activation,
            then,
        } => {
            let layer = KerasLayer::Activation {
                name: name.clone(),
                activation: *activation,
                then: None,
            };
            with_activation_after(layer, then.as_ref(), input, false, weight)?
        }
        LayerSpec::Dropout { name } => KerasLayer::Dropout { name: name.clone() },
        LayerSpec::Merge { name, kind } => KerasLayer::Merge {
            name: name.clone(),
            kind: *kind,
        },
        LayerSpec::RepeatVector { name, n } => KerasLayer::RepeatVector {
            name: name.clone(),
            n: *n,
        },
        LayerSpec::GlobalPooling {
            name,
            max,
            keepdims,
        } => KerasLayer::GlobalPooling {
            name: name.clone(),
            max: *max,
            keepdims: *keepdims,
        },
        LayerSpec::Flatten {
            name,
            channels_first,
        } => KerasLayer::Flatten {
            name: name.clone(),
            channels_first: *channels_first,
        },
        LayerSpec::Reshape { name, target } => KerasLayer::Reshape {
            name: name.clone(),
            target: target.clone(),
        },
        LayerSpec::Softmax { name, axes } => KerasLayer::Softmax {
            name: name.clone(),
            axes: axes.clone(),
        },
        LayerSpec::LayerNormalization {
            name,
            axes,
            epsilon,
            center,
            scale,
            rms_scaling,
        } => {
            let rank = input.shape.len();
            let raw_sorted = axes.windows(2).all(|w| w[0] < w[1]);
            let axes = axes
                .iter()
                .map(|&a| resolve_axis(a, rank, name).map_err(|e| config_error(e.to_string())))
                .collect::<Result<Vec<_>>>()?;
            // Keras sorts the axes as written, then reshapes its weights as if they were in
            // the axes' order: only lists in both orders at once are run.
            if axes.contains(&0) || axes.windows(2).any(|w| w[0] >= w[1]) || !raw_sorted {
                return Err(config_error(format!(
                    "layer {name:?}: axes {axes:?} must be ascending and after the batch axis"
                )));
            }
            let shape = known_dims(input, &axes, name)?;
            // Keras's build: rms_scaling keeps gamma and drops beta.
            let gamma = if *scale || *rms_scaling {
                Some(weight(&shape)?)
            } else {
                None
            };
            let beta = if *center && !*rms_scaling {
                Some(weight(&shape)?)
            } else {
                None
            };
            KerasLayer::LayerNormalization {
                name: name.clone(),
                axes,
                epsilon: *epsilon,
                gamma,
                beta,
                rms_scaling: *rms_scaling,
            }
        }
        LayerSpec::BatchNormalization {
            name,
            axis,
            epsilon,
            center,
            scale,
        } => {
            let axis = resolve_axis(*axis, input.shape.len(), name)
                .ok()
                .filter(|&a| a > 0)
                .ok_or_else(|| {
                    config_error(format!(
                        "layer {name:?}: axis {axis} is not an axis after the batch of {}",
                        show(&input.shape)
                    ))
                })?;
            let c = known_dims(input, &[axis], name)?;
            let gamma = if *scale {
                Some(into1(weight(&c)?)?)
            } else {
                None
            };
            let beta = if *center {
                Some(into1(weight(&c)?)?)
            } else {
                None
            };
            KerasLayer::BatchNormalization {
                name: name.clone(),
                axis,
                epsilon: *epsilon,
                gamma,
                beta,
                moving_mean: into1(weight(&c)?)?,
                moving_variance: into1(weight(&c)?)?,
            }
        }
        LayerSpec::Conv1D {
            name,
            filters,
            kernel_size,
            stride,
            dilation,
            padding,
            activation,
            then,
            use_bias,
        } => {
            let c = sequence_features(input, name)?;
            let kernel = weight(&[*kernel_size, c, *filters])?
                .into_dimensionality::<Ix3>()
                .map_err(|e| config_error(e.to_string()))?;
            let bias = if *use_bias {
                Some(into1(weight(&[*filters])?)?)
            } else {
                None
            };
            let layer = KerasLayer::Conv1D {
                name: name.clone(),
                kernel,
                bias,
                stride: *stride,
                dilation: *dilation,
                padding: *padding,
                activation: *activation,
                then: None,
            };
            with_activation_after(layer, then.as_ref(), input, false, weight)?
        }
        LayerSpec::PRelu { name, shared_axes } => KerasLayer::PRelu {
            name: name.clone(),
            alpha: weight(&prelu_shape(input, shared_axes, name)?)?,
        },
    })
}

/// The shape of `PReLU`'s alpha for an input of type `input`: the input's after the batch, 1
/// along the shared axes (as Keras's `PReLU.build`).
fn prelu_shape(input: &TensorType, shared_axes: &[usize], layer: &str) -> Result<Vec<usize>> {
    let rank = input.shape.len();
    if let Some(bad) = shared_axes.iter().find(|&&a| a >= rank) {
        return Err(config_error(format!(
            "layer {layer:?}: PReLU's shared axis {bad} is past its input {}",
            show(&input.shape)
        )));
    }
    let mut shape = known_dims(
        input,
        &(1..rank)
            .filter(|a| !shared_axes.contains(a))
            .collect::<Vec<_>>(),
        layer,
    )?;
    let mut shared = shared_axes.to_vec();
    shared.sort_unstable();
    shared.dedup();
    for a in shared {
        shape.insert(a - 1, 1);
    }
    Ok(shape)
}

/// `layer` (built from an input of type `input`, a layer that takes an `activation`) with the
/// activation layer `spec` it calls on its output, when it has one. Under `TimeDistributed`
/// (`per_step`) Keras calls it on the inner layer's output, the steps folded into the batch:
/// its axes and alpha are turned here to the output's.
fn with_activation_after(
    mut layer: KerasLayer,
    spec: Option<&ActivationLayerSpec>,
    input: &TensorType,
    per_step: bool,
    weight: &mut impl FnMut(&[usize]) -> Result<ArrayD<f32>>,
) -> Result<KerasLayer> {
    let Some(spec) = spec else {
        return Ok(layer);
    };
    let built = activation_after(spec, &layer, input, per_step, weight)?;
    if let KerasLayer::Dense { then, .. }
    | KerasLayer::Conv1D { then, .. }
    | KerasLayer::Activation { then, .. } = &mut layer
    {
        *then = Some(built);
    }
    Ok(layer)
}

/// The activation layer of [`with_activation_after`].
fn activation_after(
    spec: &ActivationLayerSpec,
    layer: &KerasLayer,
    input: &TensorType,
    per_step: bool,
    weight: &mut impl FnMut(&[usize]) -> Result<ArrayD<f32>>,
) -> Result<ActivationLayer> {
    let mut output =
        layer_output_types(layer, std::slice::from_ref(input), None, &[])?.swap_remove(0);
    if !per_step {
        return activation_layer(spec, &output, layer.name(), weight);
    }
    // The inner call's output: the time axis folded into the batch.
    output.shape.remove(1);
    Ok(
        match activation_layer(spec, &output, layer.name(), weight)? {
            ActivationLayer::PRelu { name, alpha } => ActivationLayer::PRelu {
                name,
                alpha: alpha.insert_axis(ndarray::Axis(0)),
            },
            ActivationLayer::Softmax { name, axes } => {
                if axes.contains(&0) {
                    return Err(config_error(format!(
                        "layer {:?}: its Softmax activation {name:?} along axis 0 of each inner \
                     call (the batch and the steps together) is not supported",
                        layer.name()
                    )));
                }
                ActivationLayer::Softmax {
                    axes: axes.iter().map(|a| a + 1).collect(),
                    name,
                }
            }
        },
    )
}

/// The activation layer `spec` called on tensors of type `input` by layer `layer`, its alpha
/// read through `weight` when it was saved.
fn activation_layer(
    spec: &ActivationLayerSpec,
    input: &TensorType,
    layer: &str,
    weight: &mut impl FnMut(&[usize]) -> Result<ArrayD<f32>>,
) -> Result<ActivationLayer> {
    Ok(match spec {
        ActivationLayerSpec::PRelu(p) => {
            let shape = prelu_shape(input, &p.shared_axes, layer)?;
            ActivationLayer::PRelu {
                name: p.name.clone(),
                alpha: match p.constant {
                    None => weight(&shape)?,
                    Some(value) => ArrayD::from_elem(IxDyn(&shape), value),
                },
            }
        }
        ActivationLayerSpec::Softmax { name, axes } => ActivationLayer::Softmax {
            name: name.clone(),
            axes: axes
                .iter()
                .map(|&a| {
                    resolve_axis(a, input.shape.len(), name)
                        .map(|a| a as i64)
                        .map_err(|e| config_error(format!("layer {layer:?}: {e}")))
                })
                .collect::<Result<_>>()?,
        },
    })
}

/// The sizes of `axes` of the input, which must be known (a layer's weights are shaped by
/// them).
fn known_dims(input: &TensorType, axes: &[usize], layer: &str) -> Result<Vec<usize>> {
    axes.iter()
        .map(|&a| {
            input.shape[a].ok_or_else(|| {
                config_error(format!(
                    "layer {layer:?}: axis {a} of its input {} has no fixed size",
                    show(&input.shape)
                ))
            })
        })
        .collect()
}

/// The feature count of a (batch, time, features) input.
fn sequence_features(input: &TensorType, layer: &str) -> Result<usize> {
    match input.shape.as_slice() {
        [_, _, Some(d)] => Ok(*d),
        _ => Err(config_error(format!(
            "layer {layer:?} needs a (batch, time, features) input, not {}",
            show(&input.shape)
        ))),
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
    let layer = SimpleRnn::gated(spec.cell, kernel, recurrent, bias, recurrent_bias, config)?;
    let Some(prelu) = &spec.prelu else {
        return Ok(layer);
    };
    // Keras calls it on each step's N × M: one slope per unit, or one for all along axis 1.
    let shared = &prelu.shared_axes;
    let slopes = match shared.iter().max() {
        None => m,
        Some(1) => 1,
        Some(_) => {
            return Err(config_error(format!(
                "layer {:?}: its PReLU activation {:?} shares axes {shared:?}, past the units \
                 of each step",
                spec.name, prelu.name
            )));
        }
    };
    let alpha = match prelu.constant {
        None => into1(weight(&[slopes])?)?,
        Some(value) => Array1::from_elem(slopes, value),
    };
    layer.with_unit_slopes(alpha)
}
