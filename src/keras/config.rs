//! A saved Keras model's `config.json` (or the legacy `model_config` attribute) turned into a
//! chain of layer descriptions. Only what changes the numbers is kept; anything this crate cannot
//! run faithfully is an error that names it.

use serde_json::Value;

use crate::activation::Activation;
use crate::cell::Cell;
use crate::error::{Result, RnnError};

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
    /// LSTM's and GRU's gate activation (sigmoid for a SimpleRNN, which has none).
    pub recurrent_activation: Activation,
    pub use_bias: bool,
    pub return_sequences: bool,
    pub go_backwards: bool,
    pub stateful: bool,
    pub zero_output_for_mask: bool,
}

/// A layer of the chain, before its weights are attached.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerSpec {
    Input {
        batch_shape: Vec<Option<usize>>,
        integer: bool,
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
        use_bias: bool,
        time_distributed: bool,
    },
    Activation {
        name: String,
        activation: Activation,
    },
    Dropout {
        name: String,
    },
}

impl LayerSpec {
    /// The class name as Keras spells it.
    pub fn class_name(&self) -> &'static str {
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
        }
    }

    /// The layer's name in the model.
    pub fn name(&self) -> &str {
        match self {
            LayerSpec::Input { .. } => "input",
            LayerSpec::Embedding { name, .. }
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

/// A layer's `activation` as configs write it (see [`activation_value`]).
fn activation(config: &Value, layer: &str) -> Result<Activation> {
    activation_value(config.get("activation").unwrap_or(&Value::Null), layer)
}

/// An activation as configs write it: a name, `null`, a serialized function (an object whose
/// `config` is the function's name), or an activation layer object (`ELU(alpha=0.5)`, `ReLU`,
/// `LeakyReLU`, `Softmax`, `Activation`) whose parameters are honoured exactly or refused.
fn activation_value(value: &Value, layer: &str) -> Result<Activation> {
    match value {
        Value::Null => Ok(Activation::Linear),
        Value::String(name) => named_activation(name, layer),
        Value::Object(o) => match (o.get("class_name").and_then(Value::as_str), o.get("config")) {
            (_, Some(Value::String(name))) => named_activation(name, layer),
            (Some(class), Some(config @ Value::Object(_))) => {
                activation_layer(class, config, layer)?.ok_or_else(|| {
                    bad(format!(
                        "layer {layer:?}: activation {class} is not supported (supported objects: \
                         ELU, ReLU, LeakyReLU, Softmax, Activation, and Keras's named functions)"
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

fn named_activation(name: &str, layer: &str) -> Result<Activation> {
    Activation::from_keras_name(name).map_err(|_| {
        bad(format!(
            "layer {layer:?}: activation {name:?} is not supported"
        ))
    })
}

/// The activation an activation layer of class `class` with `config` computes (as an object in
/// another layer's `activation`, or as a layer of the model); `None` for a class that is not an
/// activation layer. Every parameter is honoured or refused by name.
fn activation_layer(class: &str, config: &Value, layer: &str) -> Result<Option<Activation>> {
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
    if let Some(map) = config.as_object()
        && let Some(key) = map
            .keys()
            .find(|k| !known.contains(&k.as_str()) && !LAYER_BOOKKEEPING.contains(&k.as_str()))
    {
        return Err(bad(format!(
            "layer {layer:?}: {class} activation has parameter {key:?}, which this crate does not run"
        )));
    }
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
    let refuse = |what: String| -> Result<Option<Activation>> {
        Err(bad(format!(
            "layer {layer:?}: {class} activation with {what} is not supported"
        )))
    };
    Ok(Some(match class {
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
            if threshold != 0.0 {
                return refuse(format!("threshold {threshold}"));
            }
            let slope = number("negative_slope")?.unwrap_or(0.0);
            match number("max_value")? {
                None if slope == 0.0 => Activation::Relu,
                None => Activation::LeakyRelu {
                    negative_slope: slope,
                },
                Some(max) if max == 6.0 && slope == 0.0 => Activation::Relu6,
                Some(max) => {
                    return refuse(format!("max_value {max} (only 6, with no negative_slope)"));
                }
            }
        }
        "Softmax" => match config.get("axis") {
            None | Some(Value::Null) => Activation::Softmax,
            Some(axis) if axis.as_i64() == Some(-1) => Activation::Softmax,
            Some(axis) => return refuse(format!("axis {} (only -1, the last)", shown(axis))),
        },
        _ => activation_value(config.get("activation").unwrap_or(&Value::Null), layer)?,
    }))
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
    let recurrent_activation = match cell {
        Cell::Simple => Activation::Sigmoid,
        _ => activation_value(
            config.get("recurrent_activation").unwrap_or(&Value::Null),
            &name,
        )?,
    };
    if bool_field(config, "return_state", false) {
        return Err(bad(format!(
            "layer {name:?}: return_state=True is not supported in a model"
        )));
    }
    Ok(RnnSpec {
        cell,
        units: usize_field(config, "units", &name)?,
        activation: activation(config, &name)?,
        recurrent_activation,
        use_bias: bool_field(config, "use_bias", true),
        return_sequences: bool_field(config, "return_sequences", false),
        go_backwards: bool_field(config, "go_backwards", false),
        stateful: bool_field(config, "stateful", false),
        zero_output_for_mask: bool_field(config, "zero_output_for_mask", false),
        name,
    })
}

/// Parses one layer entry of a model config.
fn layer_spec(layer: &Value) -> Result<LayerSpec> {
    let class = layer
        .get("class_name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a layer without class_name"))?;
    let config = layer.get("config").unwrap_or(&Value::Null);
    let name = config
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(class)
        .to_string();
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
            let dtype = config
                .get("dtype")
                .and_then(Value::as_str)
                .unwrap_or("float32");
            LayerSpec::Input {
                batch_shape: shape
                    .iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect(),
                integer: dtype.starts_with("int") || dtype.starts_with("uint"),
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
        "Dense" => LayerSpec::Dense {
            units: usize_field(config, "units", &name)?,
            activation: activation(config, &name)?,
            use_bias: bool_field(config, "use_bias", true),
            time_distributed: false,
            name,
        },
        "TimeDistributed" => {
            let inner = field(config, "layer", &name)?;
            match layer_spec(inner)? {
                LayerSpec::Dense {
                    units,
                    activation,
                    use_bias,
                    ..
                } => LayerSpec::Dense {
                    units,
                    activation,
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
        "Activation" | "ELU" | "ReLU" | "LeakyReLU" | "Softmax" => LayerSpec::Activation {
            activation: activation_layer(class, config, &name)?.expect("an activation layer class"),
            name,
        },
        "Dropout" | "SpatialDropout1D" | "GaussianNoise" | "GaussianDropout" | "AlphaDropout" => {
            LayerSpec::Dropout { name }
        }
        other => {
            return Err(bad(format!(
                "layer {name:?} is a {other}, which this crate does not run (supported: InputLayer, Embedding, \
                 Masking, SimpleRNN, LSTM, GRU, Bidirectional(SimpleRNN, LSTM or GRU), Dense, TimeDistributed(Dense), \
                 Activation, ELU, ReLU, LeakyReLU, Softmax, Dropout)"
            )));
        }
    })
}

/// Parses a Sequential model, or a Functional one that forms a single chain, into its layers
/// in order (starting with the input).
pub fn parse_model(config: &Value) -> Result<(String, Vec<LayerSpec>)> {
    let class = config
        .get("class_name")
        .and_then(Value::as_str)
        .unwrap_or("?");
    let inner = config.get("config").unwrap_or(&Value::Null);
    let name = inner
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("model")
        .to_string();
    let layers = inner
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(format!("model {name:?} ({class}) has no layer list")))?;
    match class {
        "Sequential" => {}
        "Functional" | "Model" => check_single_chain(inner, layers)?,
        other => {
            return Err(bad(format!(
                "a {other} model; only Sequential and Functional models load"
            )));
        }
    }
    let specs = layers.iter().map(layer_spec).collect::<Result<Vec<_>>>()?;
    if !matches!(specs.first(), Some(LayerSpec::Input { .. })) {
        return Err(bad(format!(
            "model {name:?} has no InputLayer first; build it with keras.Input(shape) so the input shape is saved"
        )));
    }
    if specs
        .iter()
        .skip(1)
        .any(|s| matches!(s, LayerSpec::Input { .. }))
    {
        return Err(bad(format!("model {name:?} has more than one input")));
    }
    Ok((name, specs))
}

/// A Functional model must read one input and pass each layer's output to the next one only.
fn check_single_chain(config: &Value, layers: &[Value]) -> Result<()> {
    let names: Vec<&str> = layers
        .iter()
        .map(|l| {
            l.get("config")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("?")
        })
        .collect();
    let count = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_array)
            .map_or(0, Vec::len)
    };
    let nested = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .map(|first| if first.is_array() { 2 } else { 1 })
            .unwrap_or(0)
    };
    // input_layers is [name, 0, 0] for one input, [[...], [...]] for several.
    if (nested("input_layers") == 2 && count("input_layers") != 1)
        || (nested("output_layers") == 2 && count("output_layers") != 1)
    {
        return Err(bad(
            "the model has several inputs or outputs; only single chains load",
        ));
    }
    let output = config
        .get("output_layers")
        .map(Value::to_string)
        .unwrap_or_default();
    if let Some(last) = names.last()
        && !output.contains(&format!("\"{last}\""))
    {
        return Err(bad(format!(
            "the model's output is {output}, not its last layer {last:?}; only single chains load"
        )));
    }
    for (i, layer) in layers.iter().enumerate().skip(1) {
        let text = layer
            .get("inbound_nodes")
            .map(Value::to_string)
            .unwrap_or_default();
        let sources: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| text.contains(&format!("\"{n}\"")))
            .collect();
        if sources != [names[i - 1]] {
            return Err(bad(format!(
                "layer {:?} reads {:?}; only models whose layers form a single chain load (a branching graph)",
                names[i], sources
            )));
        }
    }
    Ok(())
}
