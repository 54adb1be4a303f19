//! The layers of a saved Keras model's `config.json` (or the legacy `model_config` attribute)
//! turned into layer descriptions; `graph.rs` reads how they connect. Only what changes the
//! numbers is kept; anything this crate cannot run faithfully is an error that names it.

use serde_json::Value;

use crate::activation::Activation;
use crate::cell::Cell;
use crate::error::{Result, RnnError};
use crate::keras::ops::{KerasOp, is_op_class, parse_op};
use crate::keras::tensor::DType;

/// Bidirectional's `merge_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMode {
    /// Forward then backward features side by side.
    Concat,
    /// Elementwise sum.
    Sum,
    /// Elementwise product.
    Mul,
    /// Elementwise mean.
    Ave,
    /// Two outputs, forward and backward (`merge_mode=None`).
    Separate,
}

/// One recurrent layer (SimpleRNN, LSTM, GRU) as the config describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnSpec {
    pub name: String,
    pub cell: Cell,
    pub units: usize,
    pub activation: Activation,
    /// A SimpleRNN's `PReLU` activation: `activation` is then `leaky_relu`, whose slope each
    /// unit takes from the PReLU's alpha.
    pub prelu: Option<PreluSpec>,
    /// LSTM's and GRU's gate activation (sigmoid for a SimpleRNN, which has none).
    pub recurrent_activation: Activation,
    pub use_bias: bool,
    pub return_sequences: bool,
    pub go_backwards: bool,
    pub stateful: bool,
    pub zero_output_for_mask: bool,
    /// The layer also returns its final state (`h`, and `c` for an LSTM).
    pub return_state: bool,
}

impl RnnSpec {
    /// How many states the layer carries: 2 for an LSTM (*h*, *c*), else 1.
    pub fn state_count(&self) -> usize {
        1 + usize::from(self.cell.has_cell_state())
    }
}

/// The merge layers: elementwise over several inputs of one shape, or a concatenation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeKind {
    /// `Add`.
    Add,
    /// `Subtract` (two inputs).
    Subtract,
    /// `Multiply`.
    Multiply,
    /// `Average`.
    Average,
    /// `Maximum`.
    Maximum,
    /// `Minimum`.
    Minimum,
    /// `Concatenate` along an axis (negative from the end).
    Concatenate(i64),
}

impl MergeKind {
    /// The Keras class name.
    pub fn class_name(self) -> &'static str {
        match self {
            MergeKind::Add => "Add",
            MergeKind::Subtract => "Subtract",
            MergeKind::Multiply => "Multiply",
            MergeKind::Average => "Average",
            MergeKind::Maximum => "Maximum",
            MergeKind::Minimum => "Minimum",
            MergeKind::Concatenate(_) => "Concatenate",
        }
    }
}

/// Conv1D's `padding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConvPadding {
    /// No padding: only windows that fit the input.
    Valid,
    /// Zeros around the input so that the output has ⌈*T* / stride⌉ steps (split as XLA's
    /// `SAME`: the extra one after).
    Same,
    /// Zeros before the input only: each output step sees only the steps up to its own.
    Causal,
}

/// A layer (or op) of the model, before its weights are attached.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    Input {
        name: String,
        batch_shape: Vec<Option<usize>>,
        dtype: DType,
    },
    Embedding {
        name: String,
        input_dim: usize,
        output_dim: usize,
        mask_zero: bool,
    },
    Masking {
        name: String,
        mask_value: f32,
    },
    SimpleRnn(RnnSpec),
    Bidirectional {
        name: String,
        forward: RnnSpec,
        backward: RnnSpec,
        merge: MergeMode,
    },
    Dense {
        name: String,
        units: usize,
        activation: Activation,
        /// An activation layer object that runs after the layer (see
        /// [`ActivationLayerSpec`]); its axes are those of the inner layer's call under
        /// `TimeDistributed`.
        then: Option<ActivationLayerSpec>,
        use_bias: bool,
        time_distributed: bool,
    },
    Activation {
        name: String,
        activation: Activation,
        /// An activation layer object given as its `activation`.
        then: Option<ActivationLayerSpec>,
    },
    Dropout {
        name: String,
    },
    Merge {
        name: String,
        kind: MergeKind,
    },
    RepeatVector {
        name: String,
        n: usize,
    },
    /// GlobalAveragePooling1D (`max` false) or GlobalMaxPooling1D.
    GlobalPooling {
        name: String,
        max: bool,
        keepdims: bool,
    },
    Flatten {
        name: String,
        channels_first: bool,
    },
    Reshape {
        name: String,
        /// The shape after the batch axis; one entry may be -1.
        target: Vec<i64>,
    },
    LayerNormalization {
        name: String,
        axes: Vec<i64>,
        epsilon: f32,
        center: bool,
        scale: bool,
        rms_scaling: bool,
    },
    BatchNormalization {
        name: String,
        axis: i64,
        epsilon: f32,
        center: bool,
        scale: bool,
    },
    PRelu {
        name: String,
        /// Axes (1 and up) along which one slope is shared.
        shared_axes: Vec<usize>,
    },
    Conv1D {
        name: String,
        filters: usize,
        kernel_size: usize,
        stride: usize,
        dilation: usize,
        padding: ConvPadding,
        activation: Activation,
        /// An activation layer object that runs after the layer.
        then: Option<ActivationLayerSpec>,
        use_bias: bool,
    },
    /// The Softmax layer: along any axes, with a mask.
    Softmax {
        name: String,
        axes: Vec<i64>,
    },
    Op {
        name: String,
        class: String,
        op: KerasOp,
    },
}

impl LayerSpec {
    /// The class name as Keras spells it.
    pub fn class_name(&self) -> &str {
        match self {
            LayerSpec::Input { .. } => "InputLayer",
            LayerSpec::Embedding { .. } => "Embedding",
            LayerSpec::Masking { .. } => "Masking",
            LayerSpec::SimpleRnn(spec) => spec.cell.keras_class(),
            LayerSpec::Bidirectional { .. } => "Bidirectional",
            LayerSpec::Dense {
                time_distributed: false,
                ..
            } => "Dense",
            LayerSpec::Dense {
                time_distributed: true,
                ..
            } => "TimeDistributed",
            LayerSpec::Activation { .. } => "Activation",
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::Merge { kind, .. } => kind.class_name(),
            LayerSpec::RepeatVector { .. } => "RepeatVector",
            LayerSpec::GlobalPooling { max: false, .. } => "GlobalAveragePooling1D",
            LayerSpec::GlobalPooling { max: true, .. } => "GlobalMaxPooling1D",
            LayerSpec::Flatten { .. } => "Flatten",
            LayerSpec::Reshape { .. } => "Reshape",
            LayerSpec::LayerNormalization { .. } => "LayerNormalization",
            LayerSpec::BatchNormalization { .. } => "BatchNormalization",
            LayerSpec::PRelu { .. } => "PReLU",
            LayerSpec::Softmax { .. } => "Softmax",
            LayerSpec::Conv1D { .. } => "Conv1D",
            LayerSpec::Op { class, .. } => class,
        }
    }

    /// Whether the layer's `call` takes a `mask` (and so whether a Sequential model passes it
    /// the mask of the layer before).
    pub(crate) fn takes_mask(&self) -> bool {
        matches!(
            self,
            LayerSpec::SimpleRnn(_)
                | LayerSpec::Bidirectional { .. }
                | LayerSpec::GlobalPooling { max: false, .. }
                | LayerSpec::BatchNormalization { .. }
                | LayerSpec::Softmax { .. }
        ) || matches!(
            self,
            LayerSpec::Dense {
                time_distributed: true,
                ..
            }
        )
    }

    /// Whether the layer's output carries its input's mask on (Keras's `compute_mask`):
    /// layers that support masking without changing the time axis, and recurrent layers that
    /// return sequences. Embedding and Masking make a mask of their own.
    pub(crate) fn passes_mask(&self) -> bool {
        match self {
            LayerSpec::SimpleRnn(spec) => spec.return_sequences,
            LayerSpec::Bidirectional { forward, .. } => forward.return_sequences,
            LayerSpec::Dense { .. }
            | LayerSpec::Activation { .. }
            | LayerSpec::Dropout { .. }
            | LayerSpec::LayerNormalization { .. }
            | LayerSpec::BatchNormalization { .. }
            | LayerSpec::PRelu { .. }
            | LayerSpec::Softmax { .. } => true,
            _ => false,
        }
    }

    /// How many tensors a call of the layer returns.
    pub(crate) fn output_count(&self) -> usize {
        match self {
            LayerSpec::SimpleRnn(spec) => {
                1 + if spec.return_state {
                    spec.state_count()
                } else {
                    0
                }
            }
            LayerSpec::Bidirectional {
                forward,
                backward,
                merge,
                ..
            } => {
                let outputs = if *merge == MergeMode::Separate { 2 } else { 1 };
                let states = if forward.return_state {
                    forward.state_count() + backward.state_count()
                } else {
                    0
                };
                outputs + states
            }
            _ => 1,
        }
    }

    /// The layer's name in the model.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Embedding { name, .. }
            | LayerSpec::Input { name, .. }
            | LayerSpec::Merge { name, .. }
            | LayerSpec::RepeatVector { name, .. }
            | LayerSpec::GlobalPooling { name, .. }
            | LayerSpec::Flatten { name, .. }
            | LayerSpec::Reshape { name, .. }
            | LayerSpec::LayerNormalization { name, .. }
            | LayerSpec::BatchNormalization { name, .. }
            | LayerSpec::PRelu { name, .. }
            | LayerSpec::Softmax { name, .. }
            | LayerSpec::Conv1D { name, .. }
            | LayerSpec::Op { name, .. }
            | LayerSpec::Masking { name, .. }
            | LayerSpec::Bidirectional { name, .. }
            | LayerSpec::Dense { name, .. }
            | LayerSpec::Activation { name, .. }
            | LayerSpec::Dropout { name } => name,
            LayerSpec::SimpleRnn(spec) => &spec.name,
        }
    }
}

fn bad(message: impl Into<String>) -> RnnError {
    RnnError::bad_file("<model config>", message)
}

fn field<'a>(config: &'a Value, key: &str, layer: &str) -> Result<&'a Value> {
    config
        .get(key)
        .ok_or_else(|| bad(format!("layer {layer:?} has no {key:?} in its config")))
}

fn usize_field(config: &Value, key: &str, layer: &str) -> Result<usize> {
    field(config, key, layer)?
        .as_u64()
        .filter(|v| *v > 0 && *v < (1 << 31))
        .map(|v| v as usize)
        .ok_or_else(|| bad(format!("layer {layer:?}: {key} must be a positive integer")))
}

fn bool_field(config: &Value, key: &str, default: bool) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// A layer's `activation` as configs write it (see [`activation_on`]): the function it applies
/// to each unit (or row), and the activation layer that runs after it when the object given is
/// one no such function carries.
fn activation(config: &Value, layer: &str) -> Result<(Activation, Option<ActivationLayerSpec>)> {
    Ok(activation_on(
        config.get("activation").unwrap_or(&Value::Null),
        layer,
        None,
    )?
    .split())
}

/// A recurrent layer's `activation` or `recurrent_activation` (`key`), applied to *N* × *M*
/// tensors: there a `Softmax(axis=1)` object acts on the last axis too. A `PReLU` object is
/// `leaky_relu` whose slope each unit takes from its alpha (given back for the caller to take
/// or refuse); a softmax along other axes is refused.
fn recurrent_activation(
    config: &Value,
    key: &str,
    layer: &str,
) -> Result<(Activation, Option<PreluSpec>)> {
    let value = config.get(key).unwrap_or(&Value::Null);
    match activation_on(value, layer, Some(1))? {
        ActivationSpec::Function(a) => Ok((a, None)),
        ActivationSpec::Layer(ActivationLayerSpec::PRelu(p)) => Ok((
            Activation::LeakyRelu {
                negative_slope: 0.0,
            },
            Some(p),
        )),
        ActivationSpec::Layer(ActivationLayerSpec::Softmax { axes, .. }) => Err(bad(format!(
            "layer {layer:?}: its {key} Softmax along axis {axes:?} of each step's batch × \
             units is not supported (a recurrent layer's softmax runs over its units: axis -1 \
             or 1)"
        ))),
    }
}

/// What a layer's `activation` runs (see [`activation_on`]).
#[derive(Clone, Debug, PartialEq)]
enum ActivationSpec {
    /// A function of each unit, or of each row (softmax over the last axis).
    Function(Activation),
    /// An activation layer no function carries.
    Layer(ActivationLayerSpec),
}

impl ActivationSpec {
    /// The function the layer applies, and the activation layer after it: linear then the
    /// layer, for a layer.
    fn split(self) -> (Activation, Option<ActivationLayerSpec>) {
        match self {
            ActivationSpec::Function(a) => (a, None),
            ActivationSpec::Layer(l) => (Activation::Linear, Some(l)),
        }
    }
}

/// An activation layer object in a layer's `activation` that no [`Activation`] computes: one
/// with weights of its own (`Dense(4, activation=PReLU())`), or a softmax along axes other than
/// the last. Keras calls it on the layer's output, without a mask; it runs after the layer as
/// the layer of its class would.
#[derive(Clone, Debug, PartialEq)]
pub enum ActivationLayerSpec {
    /// `PReLU`.
    PRelu(PreluSpec),
    /// `Softmax` along `axes` (negative from the end), one of them not the last.
    Softmax { name: String, axes: Vec<i64> },
}

/// Keras's `PReLU` layer given as another layer's activation: `relu(x) - alpha · relu(-x)`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreluSpec {
    /// The activation object's own name.
    pub name: String,
    /// Axes (1 and up, of the tensor it is called on) along which one slope is shared.
    pub shared_axes: Vec<usize>,
    /// `None` when its alpha is in the weights: Keras built it before the model was saved (its
    /// config records a `build_config`). Otherwise the value every slope holds: Keras builds
    /// it on the first call from its `alpha_initializer`, read here only when constant.
    pub constant: Option<f32>,
}

/// An activation as configs write it, applied to tensors whose last axis is `last` (when
/// known): a name, `null`, a serialized function (an object whose `config` is the function's
/// name), or an activation layer object (`ELU(alpha=0.5)`, `ReLU`, `LeakyReLU`, `Softmax`,
/// `Activation`, `PReLU`) whose parameters and weights are honoured exactly or refused.
fn activation_on(value: &Value, layer: &str, last: Option<i64>) -> Result<ActivationSpec> {
    match value {
        Value::Null => Ok(ActivationSpec::Function(Activation::Linear)),
        Value::String(name) => named_activation(name, layer).map(ActivationSpec::Function),
        Value::Object(o) => match (o.get("class_name").and_then(Value::as_str), o.get("config")) {
            (_, Some(Value::String(name))) => {
                named_activation(name, layer).map(ActivationSpec::Function)
            }
            (Some("PReLU"), Some(config @ Value::Object(_))) => {
                check_dtype(config, layer)?;
                Ok(ActivationSpec::Layer(ActivationLayerSpec::PRelu(
                    prelu_object(config, o.contains_key("build_config"), layer)?,
                )))
            }
            (Some(class), Some(config @ Value::Object(_))) => {
                activation_layer(class, config, layer, last)?.ok_or_else(|| {
                    bad(format!(
                        "layer {layer:?}: activation {class} is not supported (supported objects: \
                         ELU, ReLU, LeakyReLU, PReLU, Softmax, Activation, and Keras's named \
                         functions)"
                    ))
                })
            }
            _ => Err(bad(format!(
                "layer {layer:?}: activation {} is not a Keras activation",
                shown(value)
            ))),
        },
        other => Err(bad(format!(
            "layer {layer:?}: activation {} is not a Keras activation",
            shown(other)
        ))),
    }
}

/// A `PReLU` object's config (see [`PreluSpec`]); `built` says whether the object carried a
/// `build_config`.
fn prelu_object(config: &Value, built: bool, layer: &str) -> Result<PreluSpec> {
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("p_re_lu")
        .to_string();
    only_keys(config, layer, "PReLU activation", PRELU_KEYS)?;
    let constant = if built {
        None
    } else {
        // Keras 3 writes an initializer as {"class_name", "config"}, tf.keras also by name.
        let init = config.get("alpha_initializer").unwrap_or(&Value::Null);
        let class = match init {
            Value::String(s) => s.as_str(),
            Value::Null => "Zeros",
            other => other
                .get("class_name")
                .and_then(Value::as_str)
                .unwrap_or("?"),
        };
        let value = init.get("config").and_then(|c| c.get("value"));
        Some(match (class, value.and_then(Value::as_f64)) {
            ("Zeros" | "zeros", _) => 0.0,
            ("Ones" | "ones", _) => 1.0,
            ("Constant" | "constant", Some(v)) => v as f32,
            _ => {
                return Err(bad(format!(
                    "layer {layer:?}: its PReLU activation {name:?} was saved before it ran, so \
                     Keras draws its alpha from the initializer {class} on the first call; only \
                     a constant one (Zeros, Ones, Constant) gives numbers this crate reproduces"
                )));
            }
        })
    };
    Ok(PreluSpec {
        shared_axes: shared_axes(config, layer)?,
        constant,
        name,
    })
}

/// The parameters of a `PReLU` config (the regularizer and the constraint act in training
/// only).
const PRELU_KEYS: &[&str] = &[
    "alpha_initializer",
    "alpha_regularizer",
    "alpha_constraint",
    "shared_axes",
];

/// `PReLU`'s `shared_axes`: axes after the batch.
fn shared_axes(config: &Value, layer: &str) -> Result<Vec<usize>> {
    axis_list(config.get("shared_axes"), layer)?
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            usize::try_from(a).ok().filter(|&a| a >= 1).ok_or_else(|| {
                bad(format!(
                    "layer {layer:?}: shared axis {a} is not an axis after the batch"
                ))
            })
        })
        .collect()
}

fn named_activation(name: &str, layer: &str) -> Result<Activation> {
    Activation::from_keras_name(name).map_err(|_| {
        bad(format!(
            "layer {layer:?}: activation {name:?} is not supported"
        ))
    })
}

/// What an activation layer of class `class` with `config` computes (as an object in another
/// layer's `activation`, or as a layer of the model) on tensors whose last axis is `last` (when
/// known); `None` for a class that is not an activation layer. Every parameter is honoured or
/// refused by name.
fn activation_layer(
    class: &str,
    config: &Value,
    layer: &str,
    last: Option<i64>,
) -> Result<Option<ActivationSpec>> {
    let known: &[&str] = match class {
        "ELU" => &["alpha"],
        // tf.keras 2 calls the slope `alpha`.
        "LeakyReLU" => &["negative_slope", "alpha"],
        "ReLU" => &["max_value", "negative_slope", "threshold"],
        "Softmax" => &["axis"],
        "Activation" => &["activation"],
        _ => return Ok(None),
    };
    check_dtype(config, layer)?;
    only_keys(config, layer, &format!("{class} activation"), known)?;
    let number = |key: &str| -> Result<Option<f32>> {
        match config.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(|x| Some(x as f32)).ok_or_else(|| {
                bad(format!(
                    "layer {layer:?}: {class} parameter {key} must be a number, not {}",
                    shown(v)
                ))
            }),
        }
    };
    let refuse = |what: String| -> Result<Option<ActivationSpec>> {
        Err(bad(format!(
            "layer {layer:?}: {class} activation with {what} is not supported"
        )))
    };
    Ok(Some(ActivationSpec::Function(match class {
        "ELU" => Activation::Elu {
            alpha: number("alpha")?.unwrap_or(1.0),
        },
        "LeakyReLU" => Activation::LeakyRelu {
            // The layer's default (0.3), not the function's (0.2).
            negative_slope: match number("negative_slope")? {
                Some(slope) => slope,
                None => number("alpha")?.unwrap_or(0.3),
            },
        },
        "ReLU" => {
            let threshold = number("threshold")?.unwrap_or(0.0);
            let slope = number("negative_slope")?.unwrap_or(0.0);
            let max = number("max_value")?;
            // Keras's ReLU refuses these when it is built.
            if threshold < 0.0
                || slope < 0.0
                || max.is_some_and(|m| m < 0.0)
                || threshold.is_nan()
                || slope.is_nan()
                || max.is_some_and(f32::is_nan)
            {
                return refuse(format!(
                    "threshold {threshold}, negative_slope {slope}, max_value {max:?} (Keras \
                     refuses negative ones)"
                ));
            }
            Activation::keras_relu(slope, max, threshold)
        }
        "Softmax" => {
            let axes = axis_list(config.get("axis"), layer)?.unwrap_or_else(|| vec![-1]);
            if axes == [-1] || (axes.len() == 1 && Some(axes[0]) == last) {
                Activation::Softmax
            } else {
                // Along other axes: the Softmax layer, after the layer.
                return Ok(Some(ActivationSpec::Layer(ActivationLayerSpec::Softmax {
                    name: config
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("softmax")
                        .to_string(),
                    axes,
                })));
            }
        }
        _ => {
            return activation_on(
                config.get("activation").unwrap_or(&Value::Null),
                layer,
                last,
            )
            .map(Some);
        }
    })))
}

/// Keys every layer config holds that do not change what it computes.
const LAYER_BOOKKEEPING: &[&str] = &["name", "trainable", "dtype"];

/// A config value as an error message shows it, capped ([`crate::error::clip`]).
fn shown(value: &Value) -> String {
    crate::error::clip(&value.to_string())
}

/// Checks the layer's dtype policy: only float32 models run.
fn check_dtype(config: &Value, layer: &str) -> Result<()> {
    let policy = match config.get("dtype") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v
            .get("config")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    };
    if policy == "float32" {
        Ok(())
    } else {
        Err(bad(format!(
            "layer {layer:?} uses dtype policy {policy:?}; only float32 models are supported"
        )))
    }
}

fn rnn_spec(layer: &Value) -> Result<RnnSpec> {
    let class = layer
        .get("class_name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let config = layer.get("config").unwrap_or(&Value::Null);
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_string();
    let cell = match class {
        "SimpleRNN" => Cell::Simple,
        "LSTM" => Cell::Lstm,
        "GRU" if bool_field(config, "reset_after", true) => Cell::Gru,
        "GRU" => Cell::GruResetBefore,
        _ => {
            return Err(bad(format!(
                "layer {name:?} is a {class}; the recurrent layers supported are SimpleRNN, LSTM and GRU"
            )));
        }
    };
    check_dtype(config, &name)?;
    let (recurrent_activation, gate_prelu) = match cell {
        Cell::Simple => (Activation::Sigmoid, None),
        _ => self::recurrent_activation(config, "recurrent_activation", &name)?,
    };
    let (activation, prelu) = self::recurrent_activation(config, "activation", &name)?;
    // The gated kernels apply their activations with one set of parameters for every unit.
    let refused = match (&gate_prelu, &prelu) {
        (Some(p), _) => Some(("recurrent_activation", p)),
        (None, Some(p)) if cell != Cell::Simple => Some(("activation", p)),
        _ => None,
    };
    if let Some((key, p)) = refused {
        return Err(bad(format!(
            "layer {name:?} ({class}): PReLU {:?} as its {key} is not supported (only a \
             SimpleRNN's activation takes a slope per unit)",
            p.name
        )));
    }
    // A gated cell's kernel has one third activation parameter, its activation's.
    if matches!(recurrent_activation, Activation::KerasRelu { .. }) {
        return Err(bad(format!(
            "layer {name:?}: a recurrent_activation of relu with parameters (max_value, \
             threshold) is not supported"
        )));
    }
    Ok(RnnSpec {
        return_state: bool_field(config, "return_state", false),
        cell,
        units: usize_field(config, "units", &name)?,
        activation,
        prelu,
        recurrent_activation,
        use_bias: bool_field(config, "use_bias", true),
        return_sequences: bool_field(config, "return_sequences", false),
        go_backwards: bool_field(config, "go_backwards", false),
        stateful: bool_field(config, "stateful", false),
        zero_output_for_mask: bool_field(config, "zero_output_for_mask", false),
        name,
    })
}

/// The name of a layer entry: its config's, else the entry's own, else its class.
pub(crate) fn entry_name(layer: &Value) -> String {
    layer
        .get("config")
        .and_then(|c| c.get("name"))
        .or_else(|| layer.get("name"))
        .and_then(Value::as_str)
        .or_else(|| layer.get("class_name").and_then(Value::as_str))
        .unwrap_or("?")
        .to_string()
}

/// Parses one layer (or op) entry of a model config. `legacy` is true for a legacy `.h5`
/// file, whose loader in Keras knows layers only: an op there is refused, as Keras refuses it.
pub(crate) fn layer_spec(layer: &Value, legacy: bool) -> Result<LayerSpec> {
    let class = layer
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a layer without class_name"))?;
    let config = layer.get("config").unwrap_or(&Value::Null);
    let name = entry_name(layer);
    let module = layer.get("module").and_then(Value::as_str);
    if is_op_class(class, module) {
        if legacy {
            return Err(bad(format!(
                "layer {name:?} is the op {class}, which Keras cannot load from a legacy .h5 \
                 file either (\"Unknown layer: '{class}'\"); save the model as .keras"
            )));
        }
        return Ok(LayerSpec::Op {
            op: parse_op(class, config, &name)?,
            class: class.to_string(),
            name,
        });
    }
    if class != "InputLayer" {
        check_dtype(config, &name)?;
    }
    Ok(match class {
        "InputLayer" => {
            let shape = config
                .get("batch_shape")
                .or_else(|| config.get("batch_input_shape"))
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("input layer {name:?} has no batch_shape")))?;
            let dtype = match config.get("dtype") {
                None | Some(Value::Null) => DType::F32,
                Some(Value::String(s)) => DType::from_keras(s).ok_or_else(|| {
                    bad(format!(
                        "input layer {name:?} has dtype {s:?}; float32, int32, int64 and bool \
                         inputs are supported"
                    ))
                })?,
                Some(other) => {
                    return Err(bad(format!(
                        "input layer {name:?}: dtype {} is not a dtype name",
                        shown(other)
                    )));
                }
            };
            if let Some(bad_dim) = shape
                .iter()
                .find(|d| !d.is_null() && d.as_u64().is_none_or(|d| d == 0 || d >= 1 << 31))
            {
                return Err(bad(format!(
                    "input layer {name:?}: size {} in its batch_shape is not a positive integer",
                    shown(bad_dim)
                )));
            }
            if config.get("sparse").and_then(Value::as_bool) == Some(true)
                || config.get("ragged").and_then(Value::as_bool) == Some(true)
            {
                return Err(bad(format!(
                    "input layer {name:?} is sparse or ragged; only dense inputs are supported"
                )));
            }
            LayerSpec::Input {
                batch_shape: shape
                    .iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect(),
                dtype,
                name,
            }
        }
        "Embedding" => LayerSpec::Embedding {
            input_dim: usize_field(config, "input_dim", &name)?,
            output_dim: usize_field(config, "output_dim", &name)?,
            mask_zero: bool_field(config, "mask_zero", false),
            name,
        },
        "Masking" => LayerSpec::Masking {
            mask_value: config
                .get("mask_value")
                .and_then(Value::as_f64)
                .unwrap_or(0.0) as f32,
            name,
        },
        "SimpleRNN" | "LSTM" | "GRU" => LayerSpec::SimpleRnn(rnn_spec(layer)?),
        "Bidirectional" => {
            let inner = field(config, "layer", &name)?;
            let mut forward = rnn_spec(inner)?;
            let mut backward = match config.get("backward_layer") {
                Some(b) if !b.is_null() => rnn_spec(b)?,
                _ => {
                    let mut b = forward.clone();
                    b.name = format!("backward_{}", forward.name);
                    b.go_backwards = !forward.go_backwards;
                    b
                }
            };
            // Bidirectional zeroes the output of masked steps when it returns sequences.
            forward.zero_output_for_mask = forward.return_sequences;
            backward.zero_output_for_mask = backward.return_sequences;
            let merge = match config.get("merge_mode").unwrap_or(&Value::Null) {
                Value::Null => MergeMode::Separate,
                Value::String(s) if s == "concat" => MergeMode::Concat,
                Value::String(s) if s == "sum" => MergeMode::Sum,
                Value::String(s) if s == "mul" => MergeMode::Mul,
                Value::String(s) if s == "ave" => MergeMode::Ave,
                other => {
                    return Err(bad(format!(
                        "layer {name:?}: merge_mode {other} is not known"
                    )));
                }
            };
            let same_units = forward.units == backward.units;
            if forward.return_sequences != backward.return_sequences
                || (!same_units && !matches!(merge, MergeMode::Concat | MergeMode::Separate))
            {
                return Err(bad(format!(
                    "layer {name:?}: forward and backward layers do not match"
                )));
            }
            LayerSpec::Bidirectional {
                name,
                forward,
                backward,
                merge,
            }
        }
        "Dense" => {
            let (activation, then) = activation(config, &name)?;
            LayerSpec::Dense {
                units: usize_field(config, "units", &name)?,
                activation,
                then,
                use_bias: bool_field(config, "use_bias", true),
                time_distributed: false,
                name,
            }
        }
        "TimeDistributed" => {
            let inner = field(config, "layer", &name)?;
            match layer_spec(inner, legacy)? {
                LayerSpec::Dense {
                    units,
                    activation,
                    then,
                    use_bias,
                    ..
                } => LayerSpec::Dense {
                    units,
                    activation,
                    then,
                    use_bias,
                    time_distributed: true,
                    name,
                },
                other => {
                    return Err(bad(format!(
                        "layer {name:?}: TimeDistributed({}) is not supported, only TimeDistributed(Dense)",
                        other.class_name()
                    )));
                }
            }
        }
        "Activation" | "ELU" | "ReLU" | "LeakyReLU" => {
            let (activation, then) = activation_layer(class, config, &name, None)?
                .expect("an activation layer class")
                .split();
            LayerSpec::Activation {
                activation,
                then,
                name,
            }
        }
        "Softmax" => {
            only_keys(config, &name, class, &["axis"])?;
            LayerSpec::Softmax {
                axes: axis_list(config.get("axis"), &name)?.unwrap_or_else(|| vec![-1]),
                name,
            }
        }
        "PReLU" => {
            only_keys(config, &name, class, PRELU_KEYS)?;
            LayerSpec::PRelu {
                shared_axes: shared_axes(config, &name)?,
                name,
            }
        }
        "Conv1D" => {
            only_keys(
                config,
                &name,
                class,
                &[
                    "filters",
                    "kernel_size",
                    "strides",
                    "padding",
                    "data_format",
                    "dilation_rate",
                    "groups",
                    "activation",
                    "use_bias",
                    "kernel_initializer",
                    "bias_initializer",
                    "kernel_regularizer",
                    "bias_regularizer",
                    "activity_regularizer",
                    "kernel_constraint",
                    "bias_constraint",
                    "lora_rank",
                    "lora_alpha",
                ],
            )?;
            channels_last(config, &name, class)?;
            let one = |key: &str, default: usize| -> Result<usize> {
                match axis_list(config.get(key), &name)?.as_deref() {
                    None => Ok(default),
                    Some([v]) if *v > 0 && *v < 1 << 31 => Ok(*v as usize),
                    Some(other) => Err(bad(format!(
                        "layer {name:?}: {key} {other:?} is not one positive integer"
                    ))),
                }
            };
            if one("groups", 1)? != 1 {
                return Err(bad(format!(
                    "layer {name:?}: Conv1D with groups other than 1 is not supported"
                )));
            }
            if config
                .get("lora_rank")
                .is_some_and(|r| !r.is_null() && r.as_u64() != Some(0))
            {
                return Err(bad(format!(
                    "layer {name:?}: Conv1D with lora_rank is not supported"
                )));
            }
            let (stride, dilation) = (one("strides", 1)?, one("dilation_rate", 1)?);
            if stride > 1 && dilation > 1 {
                return Err(bad(format!(
                    "layer {name:?}: strides {stride} with dilation_rate {dilation} (Keras refuses both above 1)"
                )));
            }
            let padding = match config
                .get("padding")
                .and_then(Value::as_str)
                .unwrap_or("valid")
            {
                "valid" => ConvPadding::Valid,
                "same" => ConvPadding::Same,
                "causal" => ConvPadding::Causal,
                other => {
                    return Err(bad(format!(
                        "layer {name:?}: padding {other:?} is not valid, same or causal"
                    )));
                }
            };
            let (activation, then) = activation(config, &name)?;
            LayerSpec::Conv1D {
                filters: usize_field(config, "filters", &name)?,
                kernel_size: one("kernel_size", 0)?,
                stride,
                dilation,
                padding,
                activation,
                then,
                use_bias: bool_field(config, "use_bias", true),
                name,
            }
        }
        "GlobalAveragePooling1D" | "GlobalMaxPooling1D" => {
            only_keys(config, &name, class, &["data_format", "keepdims"])?;
            channels_last(config, &name, class)?;
            LayerSpec::GlobalPooling {
                max: class == "GlobalMaxPooling1D",
                keepdims: bool_field(config, "keepdims", false),
                name,
            }
        }
        "Flatten" => {
            only_keys(config, &name, class, &["data_format"])?;
            let channels_first = match config.get("data_format") {
                Some(Value::String(s)) if s == "channels_first" => true,
                _ => {
                    channels_last(config, &name, class)?;
                    false
                }
            };
            LayerSpec::Flatten {
                channels_first,
                name,
            }
        }
        "Reshape" => {
            only_keys(config, &name, class, &["target_shape"])?;
            let target = axis_list(config.get("target_shape"), &name)?.unwrap_or_default();
            let unknown = target.iter().filter(|&&d| d == -1).count();
            if target
                .iter()
                .any(|&d| d == 0 || !(-1..1 << 31).contains(&d))
                || unknown > 1
            {
                return Err(bad(format!(
                    "layer {name:?}: target_shape {target:?} is not a shape (positive sizes, at most one -1)"
                )));
            }
            LayerSpec::Reshape { name, target }
        }
        "LayerNormalization" => {
            only_keys(
                config,
                &name,
                class,
                &[
                    "axis",
                    "epsilon",
                    "center",
                    "scale",
                    "rms_scaling",
                    "beta_initializer",
                    "gamma_initializer",
                    "beta_regularizer",
                    "gamma_regularizer",
                    "beta_constraint",
                    "gamma_constraint",
                ],
            )?;
            LayerSpec::LayerNormalization {
                axes: axis_list(config.get("axis"), &name)?.unwrap_or_else(|| vec![-1]),
                epsilon: epsilon(config, &name, 1e-3)?,
                center: bool_field(config, "center", true),
                scale: bool_field(config, "scale", true),
                rms_scaling: bool_field(config, "rms_scaling", false),
                name,
            }
        }
        "BatchNormalization" => {
            only_keys(
                config,
                &name,
                class,
                &[
                    "axis",
                    "momentum",
                    "epsilon",
                    "center",
                    "scale",
                    "beta_initializer",
                    "gamma_initializer",
                    "moving_mean_initializer",
                    "moving_variance_initializer",
                    "beta_regularizer",
                    "gamma_regularizer",
                    "beta_constraint",
                    "gamma_constraint",
                    "synchronized",
                    "renorm",
                    "renorm_clipping",
                    "renorm_momentum",
                ],
            )?;
            if bool_field(config, "renorm", false) {
                return Err(bad(format!(
                    "layer {name:?}: BatchNormalization with renorm=True is not supported"
                )));
            }
            let axis = match axis_list(config.get("axis"), &name)?.as_deref() {
                None => -1,
                Some([axis]) => *axis,
                Some(other) => {
                    return Err(bad(format!(
                        "layer {name:?}: BatchNormalization over axes {other:?} is not supported (one axis is)"
                    )));
                }
            };
            LayerSpec::BatchNormalization {
                axis,
                epsilon: epsilon(config, &name, 1e-3)?,
                center: bool_field(config, "center", true),
                scale: bool_field(config, "scale", true),
                name,
            }
        }
        "Dropout" | "SpatialDropout1D" | "GaussianNoise" | "GaussianDropout" | "AlphaDropout" => {
            LayerSpec::Dropout { name }
        }
        "Add" | "Subtract" | "Multiply" | "Average" | "Maximum" | "Minimum" | "Concatenate" => {
            let kind = match class {
                "Add" => MergeKind::Add,
                "Subtract" => MergeKind::Subtract,
                "Multiply" => MergeKind::Multiply,
                "Average" => MergeKind::Average,
                "Maximum" => MergeKind::Maximum,
                "Minimum" => MergeKind::Minimum,
                _ => MergeKind::Concatenate(match config.get("axis") {
                    None | Some(Value::Null) => -1,
                    Some(v) => v.as_i64().ok_or_else(|| {
                        bad(format!(
                            "layer {name:?}: axis {} is not an integer",
                            shown(v)
                        ))
                    })?,
                }),
            };
            only_keys(config, &name, class, &["axis"])?;
            LayerSpec::Merge { name, kind }
        }
        "RepeatVector" => {
            only_keys(config, &name, class, &["n"])?;
            LayerSpec::RepeatVector {
                n: usize_field(config, "n", &name)?,
                name,
            }
        }
        "Functional" | "Sequential" | "Model" => {
            return Err(bad(format!(
                "layer {name:?} is a nested {class} model; only models whose layers are not \
                 themselves models load"
            )));
        }
        other => {
            return Err(bad(format!(
                "layer {name:?} is a {other}, which this crate does not run (supported: {SUPPORTED_LAYERS})"
            )));
        }
    })
}

/// The layer classes this crate runs, for messages.
const SUPPORTED_LAYERS: &str = "InputLayer, Embedding, Masking, SimpleRNN, LSTM, GRU, \
    Bidirectional(SimpleRNN, LSTM or GRU), Dense, TimeDistributed(Dense), Activation, ELU, ReLU, \
    LeakyReLU, PReLU, Softmax, Dropout, Add, Subtract, Multiply, Average, Maximum, Minimum, \
    Concatenate, RepeatVector, GlobalAveragePooling1D, GlobalMaxPooling1D, Flatten, Reshape, \
    LayerNormalization, BatchNormalization, Conv1D";

/// An axis or list of axes (`axis`, `shared_axes`, `target_shape`): `None` when absent.
fn axis_list(value: Option<&Value>, layer: &str) -> Result<Option<Vec<i64>>> {
    let one = |v: &Value| {
        v.as_i64()
            .ok_or_else(|| bad(format!("layer {layer:?}: {} is not an integer", shown(v))))
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items.iter().map(one).collect::<Result<_>>().map(Some),
        Some(v) => Ok(Some(vec![one(v)?])),
    }
}

/// A normalization's `epsilon`: a positive number.
fn epsilon(config: &Value, layer: &str, default: f32) -> Result<f32> {
    match config.get("epsilon") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_f64()
            .filter(|e| *e >= 0.0 && e.is_finite())
            .map(|e| e as f32)
            .ok_or_else(|| {
                bad(format!(
                    "layer {layer:?}: epsilon {} is not a number",
                    shown(v)
                ))
            }),
    }
}

/// Refuses a pooling layer's `data_format` other than channels_last.
fn channels_last(config: &Value, layer: &str, class: &str) -> Result<()> {
    match config.get("data_format") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) if s == "channels_last" => Ok(()),
        Some(other) => Err(bad(format!(
            "layer {layer:?} ({class}): data_format {} is not supported (channels_last is)",
            shown(other)
        ))),
    }
}

/// Refuses a config key that changes what the layer computes and is not one of `known`
/// (the bookkeeping keys every layer holds aside).
fn only_keys(config: &Value, name: &str, class: &str, known: &[&str]) -> Result<()> {
    if let Some(map) = config.as_object()
        && let Some(key) = map
            .keys()
            .find(|k| !known.contains(&k.as_str()) && !LAYER_BOOKKEEPING.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "layer {name:?} ({class}) has parameter {key:?}, which this crate does not run"
        )));
    }
    Ok(())
}
