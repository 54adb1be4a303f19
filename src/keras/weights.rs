//! Weights of a saved Keras model: `model.weights.h5` inside a `.keras` archive (Keras 3), or the
//! `model_weights` group of a legacy single-file `.h5`. Read with hdf5-pure (no C library).

use std::collections::{HashMap, HashSet};

use ndarray::{ArrayD, IxDyn};

use crate::error::{Result, RnnError, clip};

/// How deep the groups of a weights file may nest (Keras nests four or five deep).
const MAX_GROUP_DEPTH: usize = 32;
/// How many groups a weights file may hold (a few per layer).
const MAX_GROUPS: usize = 100_000;
use crate::keras::config::{ActivationLayerSpec, LayerSpec, RnnSpec};

/// Where a model's weights live.
pub enum WeightStore {
    /// Keras 3: `layers/<snake_case class>[_k]/...`.
    Keras3(hdf5_pure::File),
    /// Legacy HDF5: `model_weights/<layer name>/` with a `weight_names` attribute.
    Legacy(hdf5_pure::File),
}

fn bad(message: impl Into<String>) -> RnnError {
    RnnError::bad_file("<model weights>", message)
}

/// Keras's `to_snake_case` of a class name: `SimpleRNN` → `simple_rnn`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let starts_word = c.is_uppercase()
            && prev.is_some()
            && (prev.is_some_and(|p| p.is_lowercase()) || next.is_some_and(|n| n.is_lowercase()));
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The strings of a string attribute (h5py writes lists of names as fixed-width or
/// variable-length strings depending on its version).
pub(crate) fn attr_strings(value: &hdf5_pure::AttrValue) -> Option<Vec<String>> {
    use hdf5_pure::AttrValue as A;
    Some(match value {
        A::String(s) | A::AsciiString(s) | A::VarLenString(s) | A::VarLenAsciiString(s) => {
            vec![s.clone()]
        }
        A::StringSized { value, .. } | A::AsciiStringSized { value, .. } => vec![value.clone()],
        A::StringArray(v)
        | A::AsciiStringArray(v)
        | A::VarLenAsciiCharArray(v)
        | A::VarLenStringArray(v)
        | A::VarLenAsciiStringArray(v) => v.clone(),
        A::StringArraySized { values, .. } | A::AsciiStringArraySized { values, .. } => {
            values.clone()
        }
        _ => return None,
    })
}

impl WeightStore {
    /// The HDF5 file behind the store.
    fn file(&self) -> &hdf5_pure::File {
        match self {
            WeightStore::Keras3(f) | WeightStore::Legacy(f) => f,
        }
    }

    /// Reads one weight after checking that its stored shape is `expected`, so that a forged
    /// shape can never make us allocate more than the config promised.
    pub fn read(&self, path: &str, expected: &[usize]) -> Result<ArrayD<f32>> {
        let dataset = self
            .file()
            .dataset(path)
            .map_err(|e| bad(format!("missing weight {path}: {e}")))?;
        let shape: Vec<usize> = dataset
            .shape()
            .map_err(|e| bad(format!("{path}: {e}")))?
            .into_iter()
            .map(|d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        if shape != expected {
            return Err(bad(format!(
                "weight {path} has shape {shape:?}; the model config needs {expected:?}"
            )));
        }
        match dataset.dtype().map_err(|e| bad(format!("{path}: {e}")))? {
            hdf5_pure::DType::F32 | hdf5_pure::DType::F64 => {}
            other => {
                return Err(bad(format!(
                    "weight {path} is stored as {other:?}; only float32 models are supported"
                )));
            }
        }
        let values = dataset
            .read_f32()
            .map_err(|e| bad(format!("{path}: not readable as float32: {e}")))?;
        ArrayD::from_shape_vec(IxDyn(&shape), values).map_err(|e| bad(format!("{path}: {e}")))
    }

    /// The datasets under the store's weights group (`layers/` in Keras 3, `model_weights/` in a
    /// legacy file) that `used` does not name: weights that no layer of the model takes, such as
    /// a bias stored for a layer whose config says `use_bias=False`. Keras 3 refuses such a file
    /// too ("expected 2 variables, but received 3").
    ///
    /// # Errors
    /// A group that cannot be listed, or a tree deeper or larger than a model's weights can be
    /// (a forged file with looping links).
    pub fn unused(&self, used: &[Vec<String>]) -> Result<Vec<String>> {
        let (file, root) = match self {
            WeightStore::Keras3(f) => (f, "layers"),
            WeightStore::Legacy(f) => (f, "model_weights"),
        };
        let used: HashSet<&str> = used.iter().flatten().map(String::as_str).collect();
        let mut unused = Vec::new();
        // A model without weights may have no such group at all.
        let Ok(group) = file.group(root) else {
            return Ok(unused);
        };
        let mut pending = vec![(group, root.to_string(), 0)];
        let mut visited = 0usize;
        while let Some((group, path, depth)) = pending.pop() {
            visited += 1;
            if depth > MAX_GROUP_DEPTH || visited > MAX_GROUPS {
                return Err(bad(format!(
                    "{root} nests groups deeper than {MAX_GROUP_DEPTH} or holds more than \
                     {MAX_GROUPS} (looping links?)"
                )));
            }
            let listing = |e: hdf5_pure::Error| bad(format!("{}: {e}", clip(&path)));
            for name in group.datasets().map_err(listing)? {
                let full = format!("{path}/{name}");
                if !used.contains(full.as_str()) {
                    unused.push(full);
                }
            }
            for name in group.groups().map_err(listing)? {
                let child = group.group(&name).map_err(listing)?;
                pending.push((child, format!("{path}/{name}"), depth + 1));
            }
        }
        unused.sort();
        Ok(unused)
    }

    /// Where the weights of each layer are (`specs` in the config's order, as Keras's
    /// `model.layers` lists them: inputs too, ops not), in Keras's order
    /// (`layer.get_weights()`): one list per layer, empty for layers without weights;
    /// Bidirectional gives forward then backward.
    ///
    /// # Errors
    /// A legacy file whose layer groups or `weight_names` are missing or of the wrong count.
    pub fn locate(&self, specs: &[&LayerSpec]) -> Result<Vec<Vec<String>>> {
        let count = |spec: &LayerSpec| match spec {
            LayerSpec::Embedding { .. } => 1,
            LayerSpec::SimpleRnn(r) => rnn_count(r),
            LayerSpec::Bidirectional {
                forward, backward, ..
            } => rnn_count(forward) + rnn_count(backward),
            LayerSpec::Dense { use_bias, then, .. } | LayerSpec::Conv1D { use_bias, then, .. } => {
                1 + usize::from(*use_bias) + then_count(then)
            }
            LayerSpec::Activation { then, .. } => then_count(then),
            LayerSpec::LayerNormalization {
                center,
                scale,
                rms_scaling,
                ..
            } => usize::from(*center && !*rms_scaling) + usize::from(*scale || *rms_scaling),
            LayerSpec::BatchNormalization { center, scale, .. } => {
                2 + usize::from(*center) + usize::from(*scale)
            }
            LayerSpec::PRelu { .. } => 1,
            _ => 0,
        };
        match self {
            WeightStore::Keras3(_) => {
                let mut seen: HashMap<String, usize> = HashMap::new();
                Ok(specs
                    .iter()
                    .map(|spec| {
                        if matches!(spec, LayerSpec::Input { .. }) {
                            return Vec::new();
                        }
                        // Keras 3 names each layer's group after its class, numbered from the
                        // second of a class on, in model order.
                        let base = snake_case(spec.class_name());
                        let k = seen.entry(base.clone()).or_insert(0);
                        let group = if *k == 0 {
                            format!("layers/{base}")
                        } else {
                            format!("layers/{base}_{k}")
                        };
                        *k += 1;
                        let vars = |sub: &str, n: usize| -> Vec<String> {
                            (0..n).map(|i| format!("{group}/{sub}vars/{i}")).collect()
                        };
                        // A layer's weights, then its activation object's (Keras saves the
                        // object under the attribute `activation` of the layer, a recurrent
                        // layer's too, not of its cell).
                        let with_activation = |sub: &str, own: usize, activation: usize| {
                            let mut paths = vars(sub, own);
                            paths.extend(vars(&format!("{sub}activation/"), activation));
                            paths
                        };
                        let rnn = |sub: &str, r: &RnnSpec| {
                            let mut paths =
                                vars(&format!("{sub}cell/"), 2 + usize::from(r.use_bias));
                            paths.extend(vars(&format!("{sub}activation/"), slope_count(r)));
                            paths
                        };
                        match *spec {
                            LayerSpec::SimpleRnn(r) => rnn("", r),
                            LayerSpec::Bidirectional {
                                forward, backward, ..
                            } => {
                                let mut paths = rnn("forward_layer/", forward);
                                paths.extend(rnn("backward_layer/", backward));
                                paths
                            }
                            LayerSpec::Dense {
                                time_distributed,
                                use_bias,
                                then,
                                ..
                            } => with_activation(
                                if *time_distributed { "layer/" } else { "" },
                                1 + usize::from(*use_bias),
                                then_count(then),
                            ),
                            LayerSpec::Conv1D { use_bias, then, .. } => {
                                with_activation("", 1 + usize::from(*use_bias), then_count(then))
                            }
                            LayerSpec::Activation { then, .. } => {
                                with_activation("", 0, then_count(then))
                            }
                            _ => vars("", count(spec)),
                        }
                    })
                    .collect())
            }
            WeightStore::Legacy(file) => specs
                .iter()
                .map(|spec| {
                    let expected = count(spec);
                    if expected == 0 {
                        return Ok(Vec::new());
                    }
                    let group_path = format!("model_weights/{}", spec.name());
                    let group = file.group(&group_path).map_err(|e| {
                        bad(format!("missing weights of layer {:?}: {e}", spec.name()))
                    })?;
                    let attrs = group
                        .attrs()
                        .map_err(|e| bad(format!("{group_path}: {e}")))?;
                    let names = attrs
                        .get("weight_names")
                        .and_then(attr_strings)
                        .unwrap_or_default();
                    if names.len() != expected {
                        return Err(bad(format!(
                            "layer {:?} stores {} weights; the model config needs {expected}",
                            spec.name(),
                            names.len()
                        )));
                    }
                    Ok(names.iter().map(|n| format!("{group_path}/{n}")).collect())
                })
                .collect(),
        }
    }
}

/// The weights a recurrent layer stores: kernel, recurrent kernel, bias, and its PReLU
/// activation's alpha when Keras built it before saving.
fn rnn_count(r: &RnnSpec) -> usize {
    2 + usize::from(r.use_bias) + slope_count(r)
}

/// 1 when a recurrent layer's PReLU activation has its alpha in the weights.
fn slope_count(r: &RnnSpec) -> usize {
    usize::from(r.prelu.as_ref().is_some_and(|p| p.constant.is_none()))
}

/// 1 when a layer's activation object is a PReLU whose alpha is in the weights.
fn then_count(then: &Option<ActivationLayerSpec>) -> usize {
    usize::from(matches!(then, Some(ActivationLayerSpec::PRelu(p)) if p.constant.is_none()))
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_matches_keras() {
        assert_eq!(snake_case("SimpleRNN"), "simple_rnn");
        assert_eq!(snake_case("TimeDistributed"), "time_distributed");
        assert_eq!(snake_case("Dense"), "dense");
        assert_eq!(snake_case("Bidirectional"), "bidirectional");
        assert_eq!(snake_case("InputLayer"), "input_layer");
    }
}
