//! How a model's layers connect: the directed acyclic graph of calls a functional config
//! records (each layer's `inbound_nodes`, with their positional arguments and the `mask=` and
//! `initial_state=` keyword arguments, every tensor named by its `keras_history`), or the chain
//! of a Sequential model with the masks Keras computes between its layers made explicit, as
//! Keras itself builds a Sequential model into such a graph.
//!
//! The config comes from a file a stranger may have written: every reference is checked, cycles
//! and dangling references are errors that name the layer, and the work is linear in the size of
//! the config.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::{Result, RnnError, clip};
use crate::keras::config::{LayerSpec, MergeKind, MergeMode, entry_name, layer_spec};
use crate::keras::ops::{Compare, KerasOp, Scalar};

/// The most layers and ops a config may hold (a config is at most 16 MB of JSON).
const MAX_ENTRIES: usize = 100_000;
/// The most calls of one layer.
const MAX_CALLS: usize = 100_000;

/// One tensor of the graph: which node made it and which of the node's outputs it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TensorRef {
    pub node: usize,
    pub output: usize,
}

/// An argument of a call, as the config records it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Tensor(TensorRef),
    Scalar(Scalar),
    Null,
    List(Vec<Arg>),
}

impl Arg {
    /// Every tensor the argument holds, in order.
    pub(crate) fn tensors(&self, out: &mut Vec<TensorRef>) {
        match self {
            Arg::Tensor(t) => out.push(*t),
            Arg::List(items) => items.iter().for_each(|a| a.tensors(out)),
            Arg::Scalar(_) | Arg::Null => {}
        }
    }
}

/// One call of a layer or op: a node of the graph.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    /// The layer or op called (an index into [`Graph::entries`]).
    pub entry: usize,
    /// Which call of that layer this is (its index in the layer's `inbound_nodes`).
    pub call: usize,
    pub args: Vec<Arg>,
    /// The `mask=` keyword argument.
    pub mask: Option<Arg>,
    /// The `initial_state=` keyword argument of a recurrent layer.
    pub initial_state: Option<Arg>,
    /// The masks Keras attaches to a merge's inputs as it runs (`_keras_mask`, which
    /// `Maximum`, `Minimum` and `Multiply` read): not in the config, found by
    /// [`propagate_masks`].
    pub input_masks: Vec<Option<TensorRef>>,
}

impl Node {
    fn new(entry: usize, call: usize, args: Vec<Arg>) -> Self {
        Node {
            entry,
            call,
            args,
            mask: None,
            initial_state: None,
            input_masks: Vec::new(),
        }
    }

    /// Every tensor the call reads: arguments, then mask, then initial state, then the masks
    /// of a merge's inputs.
    pub(crate) fn inputs(&self) -> Vec<TensorRef> {
        let mut out = Vec::new();
        for a in self
            .args
            .iter()
            .chain(self.mask.as_ref())
            .chain(self.initial_state.as_ref())
        {
            a.tensors(&mut out);
        }
        out.extend(self.input_masks.iter().flatten());
        out
    }

    fn renumber(&mut self, f: &impl Fn(&mut TensorRef)) {
        for arg in self
            .args
            .iter_mut()
            .chain(self.mask.as_mut())
            .chain(self.initial_state.as_mut())
        {
            visit_tensors(arg, f);
        }
        self.input_masks.iter_mut().flatten().for_each(f);
    }
}

/// A layer or op of the config.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub spec: LayerSpec,
    /// Made by this crate for a Sequential model's mask (not a layer of its config).
    pub synthesized: bool,
}

/// A model's graph: its layers and ops, its calls in an order where every tensor is made
/// before it is read, its inputs and its outputs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Graph {
    pub name: String,
    /// A Functional model (false: Sequential).
    pub functional: bool,
    pub entries: Vec<Entry>,
    pub nodes: Vec<Node>,
    /// The model's inputs, in order: each the only output of an `InputLayer`'s node.
    pub inputs: Vec<TensorRef>,
    pub outputs: Vec<TensorRef>,
}

fn bad(message: impl Into<String>) -> RnnError {
    RnnError::bad_file("<model config>", message)
}

/// Reads the graph of a model config (`{"class_name": "Functional" | "Sequential", "config":
/// {...}}`). `legacy` is true for a legacy `.h5` file (see [`layer_spec`]).
pub(crate) fn parse_model(config: &Value, legacy: bool) -> Result<Graph> {
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
    if layers.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "model {name:?} has {} layers, more than the {MAX_ENTRIES} this reader accepts",
            layers.len()
        )));
    }
    match class {
        "Sequential" => sequential(name, layers, legacy),
        "Functional" | "Model" => functional(name, inner, layers, legacy),
        other => Err(bad(format!(
            "a {other} model; only Sequential and Functional models load"
        ))),
    }
}

/// A Sequential model: each layer reads the one before; [`propagate_masks`] then passes the
/// masks between them as Keras does.
fn sequential(name: String, layers: &[Value], legacy: bool) -> Result<Graph> {
    let specs = layers
        .iter()
        .map(|l| layer_spec(l, legacy))
        .collect::<Result<Vec<_>>>()?;
    if !matches!(specs.first(), Some(LayerSpec::Input { .. })) {
        return Err(bad(format!(
            "model {name:?} has no InputLayer first; build it with keras.Input(shape) so the input shape is saved"
        )));
    }
    if let Some(extra) = specs
        .iter()
        .skip(1)
        .find(|s| matches!(s, LayerSpec::Input { .. }))
    {
        return Err(bad(format!(
            "Sequential model {name:?} has a second input layer {:?}",
            extra.name()
        )));
    }
    let last = specs.len() - 1;
    let mut graph = Graph {
        name,
        functional: false,
        entries: Vec::new(),
        nodes: Vec::new(),
        inputs: vec![TensorRef { node: 0, output: 0 }],
        outputs: Vec::new(),
    };
    for (position, spec) in specs.into_iter().enumerate() {
        let count = spec.output_count();
        if position < last && count > 1 {
            return Err(bad(format!(
                "layer {:?} returns {count} tensors (merge_mode=None or return_state), which \
                 only the end of a Sequential model can take",
                spec.name(),
            )));
        }
        if position == last {
            graph.outputs = (0..count)
                .map(|output| TensorRef {
                    node: position,
                    output,
                })
                .collect();
        }
        let args = match position {
            0 => Vec::new(),
            p => vec![Arg::Tensor(TensorRef {
                node: p - 1,
                output: 0,
            })],
        };
        graph.entries.push(Entry {
            spec,
            synthesized: false,
        });
        graph.nodes.push(Node::new(position, 0, args));
    }
    propagate_masks(&mut graph)?;
    Ok(graph)
}

/// Keras's masks as they travel while a model runs: each layer that supports masking attaches
/// a mask to its output (`Layer.compute_mask`: Embedding's `not_equal(ids, 0)`, Masking's
/// `any(not_equal(x, value), -1)`, the input's mask passed on, a merge's masks or-ed), a layer
/// whose `call` takes a mask and is given none explicitly receives its input's, and `Maximum`,
/// `Minimum` and `Multiply` read their inputs' masks. Masks the config does not record are
/// computed by op nodes added here, right after the node that makes them.
fn propagate_masks(graph: &mut Graph) -> Result<()> {
    let old = std::mem::take(&mut graph.nodes);
    let mut new_index = vec![0usize; old.len()];
    let mut mask_of: HashMap<TensorRef, TensorRef> = HashMap::new();
    for (i, mut node) in old.into_iter().enumerate() {
        node.renumber(&|t: &mut TensorRef| t.node = new_index[t.node]);
        let spec = graph.entries[node.entry].spec.clone();
        let first: Vec<TensorRef> = match node.args.first() {
            Some(Arg::Tensor(t)) => vec![*t],
            Some(Arg::List(items)) => items
                .iter()
                .filter_map(|a| match a {
                    Arg::Tensor(t) => Some(*t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        // Keras fills in `mask` only for a call whose one tensor argument is its input (an
        // initial_state makes two, and the layer then runs unmasked unless given a mask).
        let single =
            matches!(node.args.as_slice(), [Arg::Tensor(_)]) && node.initial_state.is_none();
        let runtime = |t: &TensorRef| mask_of.get(t).copied();
        if spec.takes_mask() && node.mask.is_none() && single {
            node.mask = runtime(&first[0]).map(Arg::Tensor);
        }
        if let LayerSpec::Merge {
            kind: MergeKind::Maximum | MergeKind::Minimum | MergeKind::Multiply,
            ..
        } = spec
        {
            node.input_masks = first.iter().map(runtime).collect();
        }
        // The mask the layer is given, or its input's: what compute_mask starts from.
        let previous: Vec<Option<TensorRef>> = match &node.mask {
            Some(Arg::Tensor(m)) => vec![Some(*m)],
            Some(Arg::List(items)) => items
                .iter()
                .map(|a| match a {
                    Arg::Tensor(m) => Some(*m),
                    _ => None,
                })
                .collect(),
            _ => first.iter().map(runtime).collect(),
        };
        let input = first.first().copied();
        let at = graph.nodes.len();
        new_index[i] = at;
        graph.nodes.push(node);
        let out = |output| TensorRef { node: at, output };
        let first_mask = previous.first().copied().flatten();
        match &spec {
            LayerSpec::Embedding {
                mask_zero: true, ..
            } => {
                // A call without a tensor gets no mask: resolving it refuses it.
                let Some(ids) = input else { continue };
                let m = graph.synthesize(
                    "not_equal",
                    KerasOp::Compare(Compare::NotEqual),
                    vec![Arg::Tensor(ids), Arg::Scalar(Scalar::Int(0))],
                );
                mask_of.insert(out(0), m);
            }
            LayerSpec::Masking { mask_value, .. } => {
                let Some(x) = input else { continue };
                let differs = graph.synthesize(
                    "not_equal",
                    KerasOp::Compare(Compare::NotEqual),
                    vec![
                        Arg::Tensor(x),
                        Arg::Scalar(Scalar::Float(f64::from(*mask_value))),
                    ],
                );
                let m = graph.synthesize(
                    "any",
                    KerasOp::Reduce {
                        any: true,
                        axes: Some(vec![-1]),
                        keepdims: false,
                    },
                    vec![Arg::Tensor(differs)],
                );
                mask_of.insert(out(0), m);
            }
            LayerSpec::Bidirectional {
                forward,
                merge: MergeMode::Separate,
                ..
            } if forward.return_sequences => {
                if let Some(m) = first_mask {
                    mask_of.insert(out(0), m);
                    mask_of.insert(out(1), m);
                }
            }
            LayerSpec::Merge { kind, .. } => {
                let masks: Option<Vec<TensorRef>> = previous.iter().copied().collect();
                let m = match (kind, masks) {
                    (MergeKind::Concatenate(axis), _) if previous.iter().any(Option::is_some) => {
                        Some(graph.concatenate_mask(*axis, &first, &previous))
                    }
                    (MergeKind::Concatenate(_), _) | (_, None) => None,
                    (_, Some(masks)) => Some(graph.or_all(&masks)),
                };
                if let Some(m) = m {
                    mask_of.insert(out(0), m);
                }
            }
            _ if spec.passes_mask() => {
                if let Some(m) = first_mask {
                    mask_of.insert(out(0), m);
                }
            }
            _ => {}
        }
    }
    let renumber = |t: &mut TensorRef| t.node = new_index[t.node];
    graph.inputs.iter_mut().for_each(renumber);
    graph.outputs.iter_mut().for_each(renumber);
    Ok(())
}

impl Graph {
    /// Adds a node of an op this crate made for a mask and returns its output.
    fn synthesize(&mut self, name: &str, op: KerasOp, args: Vec<Arg>) -> TensorRef {
        let class = match &op {
            KerasOp::Compare(kind) => kind.class_name(),
            KerasOp::Reduce { any: true, .. } => "Any",
            KerasOp::Reduce { any: false, .. } => "All",
            KerasOp::Logical { and: false } => "LogicalOr",
            KerasOp::Logical { and: true } => "LogicalAnd",
            KerasOp::LogicalNot => "LogicalNot",
            KerasOp::Cast(_) => "Cast",
            KerasOp::ExpandDims(_) => "ExpandDims",
            KerasOp::Fill { one: true, .. } => "OnesLike",
            KerasOp::Fill { one: false, .. } => "ZerosLike",
            KerasOp::Concatenate { .. } => "Concatenate",
        };
        let entry = self.entries.len();
        self.entries.push(Entry {
            spec: LayerSpec::Op {
                name: name.to_string(),
                class: class.to_string(),
                op,
            },
            synthesized: true,
        });
        let node = self.nodes.len();
        self.nodes.push(Node::new(entry, 0, args));
        TensorRef { node, output: 0 }
    }

    /// `logical_or` of the masks, folded from the first (base `Merge.compute_mask`).
    fn or_all(&mut self, masks: &[TensorRef]) -> TensorRef {
        let mut m = masks[0];
        for &next in &masks[1..] {
            m = self.synthesize(
                "logical_or",
                KerasOp::Logical { and: false },
                vec![Arg::Tensor(m), Arg::Tensor(next)],
            );
        }
        m
    }

    /// `Concatenate.compute_mask`: each input's mask (all true where it has none) widened to
    /// the input's rank, concatenated along the axis, then `any` over the last axis.
    fn concatenate_mask(
        &mut self,
        axis: i64,
        inputs: &[TensorRef],
        masks: &[Option<TensorRef>],
    ) -> TensorRef {
        let bool_like = |one| KerasOp::Fill {
            one,
            dtype: Some(crate::keras::tensor::DType::Bool),
        };
        let widened: Vec<Arg> = inputs
            .iter()
            .zip(masks)
            .map(|(&x, m)| {
                Arg::Tensor(match m {
                    None => self.synthesize("ones_like", bool_like(true), vec![Arg::Tensor(x)]),
                    // Keras widens a mask of lower rank than its input; a mask of the
                    // input's rank is taken as it is (checked when the types are known).
                    Some(m) => {
                        let expanded = self.synthesize(
                            "expand_dims",
                            KerasOp::ExpandDims(vec![-1]),
                            vec![Arg::Tensor(*m)],
                        );
                        let zeros =
                            self.synthesize("zeros_like", bool_like(false), vec![Arg::Tensor(x)]);
                        self.synthesize(
                            "logical_or",
                            KerasOp::Logical { and: false },
                            vec![Arg::Tensor(expanded), Arg::Tensor(zeros)],
                        )
                    }
                })
            })
            .collect();
        let joined = self.synthesize(
            "concatenate",
            KerasOp::Concatenate { axis },
            vec![Arg::List(widened)],
        );
        self.synthesize(
            "any",
            KerasOp::Reduce {
                any: true,
                axes: Some(vec![-1]),
                keepdims: false,
            },
            vec![Arg::Tensor(joined)],
        )
    }
}

/// A functional config's graph.
fn functional(name: String, config: &Value, layers: &[Value], legacy: bool) -> Result<Graph> {
    let mut entries = Vec::with_capacity(layers.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for layer in layers {
        let spec = layer_spec(layer, legacy)?;
        let entry_name = entry_name(layer);
        if index.insert(entry_name.clone(), entries.len()).is_some() {
            return Err(bad(format!("two layers are named {:?}", clip(&entry_name))));
        }
        entries.push(Entry {
            spec,
            synthesized: false,
        });
    }
    // The calls of each layer, numbered as keras_history numbers them.
    let mut first_node = Vec::with_capacity(layers.len());
    let mut raw: Vec<(usize, usize, &Value)> = Vec::new();
    static EMPTY: Value = Value::Null;
    for (i, layer) in layers.iter().enumerate() {
        first_node.push(raw.len());
        let calls = match layer.get("inbound_nodes") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(calls)) => calls.as_slice(),
            Some(other) => {
                return Err(bad(format!(
                    "layer {:?}: inbound_nodes {} is not a list",
                    entry_name(layer),
                    clip(&other.to_string())
                )));
            }
        };
        if calls.len() > MAX_CALLS {
            return Err(bad(format!(
                "layer {:?} is called {} times, more than the {MAX_CALLS} this reader accepts",
                entry_name(layer),
                calls.len()
            )));
        }
        if let LayerSpec::Input { .. } = entries[i].spec {
            if !calls.is_empty() {
                return Err(bad(format!(
                    "input layer {:?} reads other layers",
                    entry_name(layer)
                )));
            }
            raw.push((i, 0, &EMPTY));
        } else if calls.is_empty() {
            return Err(bad(format!(
                "layer {:?} is never called: it reads nothing",
                entry_name(layer)
            )));
        }
        for (call, node) in calls.iter().enumerate() {
            raw.push((i, call, node));
        }
    }
    first_node.push(raw.len());
    let reader = Reader {
        index: &index,
        first_node: &first_node,
        entries: &entries,
    };
    let mut nodes = Vec::with_capacity(raw.len());
    for &(entry, call, node) in &raw {
        let what = entries[entry].spec.name().to_string();
        nodes.push(if node.is_null() {
            Node::new(entry, call, Vec::new())
        } else {
            reader.node(entry, call, node, &what)?
        });
    }
    let inputs = reader.endpoints(config.get("input_layers"), "input_layers")?;
    let outputs = reader.endpoints(config.get("output_layers"), "output_layers")?;
    for (i, t) in inputs.iter().enumerate() {
        if !matches!(entries[nodes[t.node].entry].spec, LayerSpec::Input { .. }) || t.output != 0 {
            return Err(bad(format!(
                "input {i} of the model is not an input layer's tensor"
            )));
        }
    }
    for (entry, e) in entries.iter().enumerate() {
        if matches!(e.spec, LayerSpec::Input { .. })
            && !inputs.iter().any(|t| nodes[t.node].entry == entry)
        {
            return Err(bad(format!(
                "input layer {:?} is not one of the model's inputs",
                e.spec.name()
            )));
        }
    }
    let order = topological_order(&nodes, &entries)?;
    // Renumber the nodes in that order.
    let mut position = vec![0; nodes.len()];
    for (new, &old) in order.iter().enumerate() {
        position[old] = new;
    }
    let renumber = |t: &mut TensorRef| t.node = position[t.node];
    let mut sorted: Vec<Node> = order.iter().map(|&i| nodes[i].clone()).collect();
    sorted.iter_mut().for_each(|n| n.renumber(&renumber));
    let mut inputs = inputs;
    let mut outputs = outputs;
    inputs
        .iter_mut()
        .chain(outputs.iter_mut())
        .for_each(renumber);
    let mut graph = Graph {
        name,
        functional: true,
        entries,
        nodes: sorted,
        inputs,
        outputs,
    };
    propagate_masks(&mut graph)?;
    Ok(graph)
}

fn visit_tensors(arg: &mut Arg, f: &impl Fn(&mut TensorRef)) {
    match arg {
        Arg::Tensor(t) => f(t),
        Arg::List(items) => items.iter_mut().for_each(|a| visit_tensors(a, f)),
        Arg::Scalar(_) | Arg::Null => {}
    }
}

/// Kahn's algorithm: the nodes in an order where each comes after every node it reads; an
/// error naming a layer on a cycle when there is none.
fn topological_order(nodes: &[Node], entries: &[Entry]) -> Result<Vec<usize>> {
    let mut pending = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for t in node.inputs() {
            pending[i] += 1;
            readers[t.node].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &r in readers[i].iter().rev() {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push(r);
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len())
            .find(|&i| pending[i] > 0)
            .expect("a node left over");
        return Err(bad(format!(
            "the graph has a cycle: layer {:?} depends on its own output",
            entries[nodes[stuck].entry].spec.name()
        )));
    }
    Ok(order)
}

/// Resolves `keras_history` references against the config's layers.
struct Reader<'a> {
    index: &'a HashMap<String, usize>,
    /// The first node of each entry, and one past the last entry's last.
    first_node: &'a [usize],
    entries: &'a [Entry],
}

impl Reader<'_> {
    /// The node made by call `call` of the layer named `layer`.
    fn resolve(&self, layer: &str, call: u64, output: u64, what: &str) -> Result<TensorRef> {
        let &entry = self.index.get(layer).ok_or_else(|| {
            bad(format!(
                "layer {what:?} reads layer {:?}, which the model does not have",
                clip(layer)
            ))
        })?;
        let calls = (self.first_node[entry + 1] - self.first_node[entry]) as u64;
        if call >= calls {
            return Err(bad(format!(
                "layer {what:?} reads call {call} of layer {:?}, which is called {calls} times",
                clip(layer)
            )));
        }
        // Outputs are checked against each layer's output count once their types are known.
        let output = usize::try_from(output)
            .ok()
            .filter(|&o| o < 1 << 20)
            .ok_or_else(|| {
                bad(format!(
                    "layer {what:?} reads output {output} of layer {:?}",
                    clip(layer)
                ))
            })?;
        Ok(TensorRef {
            node: self.first_node[entry] + call as usize,
            output,
        })
    }

    /// `[layer, call, output]` (a `keras_history`, or an entry of input_layers and
    /// output_layers).
    fn history(&self, value: &Value, what: &str) -> Result<TensorRef> {
        let triple = value.as_array().filter(|a| a.len() >= 3);
        let parsed = triple.and_then(|a| Some((a[0].as_str()?, a[1].as_u64()?, a[2].as_u64()?)));
        let (layer, call, output) = parsed.ok_or_else(|| {
            bad(format!(
                "layer {what:?}: {} is not a [layer, node, tensor] reference",
                clip(&value.to_string())
            ))
        })?;
        self.resolve(layer, call, output, what)
    }

    /// input_layers or output_layers: one reference, or a list (or dict) of them.
    fn endpoints(&self, value: Option<&Value>, key: &str) -> Result<Vec<TensorRef>> {
        let value = value.ok_or_else(|| bad(format!("the model config has no {key}")))?;
        let list: Vec<&Value> = match value {
            Value::Array(items) if items.first().is_some_and(Value::is_string) => vec![value],
            Value::Array(items) => items.iter().collect(),
            Value::Object(map) => map.values().collect(),
            other => {
                return Err(bad(format!(
                    "{key} is {}, not a list of layer references",
                    clip(&other.to_string())
                )));
            }
        };
        if list.is_empty() {
            return Err(bad(format!("the model has no {key}")));
        }
        list.into_iter().map(|v| self.history(v, key)).collect()
    }

    /// One argument: a tensor (`__keras_tensor__`), a constant, null or a list of arguments.
    fn arg(&self, value: &Value, what: &str, depth: usize) -> Result<Arg> {
        if depth > 16 {
            return Err(bad(format!("layer {what:?}: arguments nest too deep")));
        }
        Ok(match value {
            Value::Null => Arg::Null,
            Value::Bool(b) => Arg::Scalar(Scalar::Bool(*b)),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Arg::Scalar(Scalar::Int(i)),
                None => Arg::Scalar(Scalar::Float(n.as_f64().unwrap_or(f64::NAN))),
            },
            Value::Array(items) => Arg::List(
                items
                    .iter()
                    .map(|v| self.arg(v, what, depth + 1))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(map) => {
                let class = map.get("class_name").and_then(Value::as_str);
                let history = map.get("config").and_then(|c| c.get("keras_history"));
                match (class, history) {
                    (Some("__keras_tensor__") | None, Some(h)) => {
                        Arg::Tensor(self.history(h, what)?)
                    }
                    _ => {
                        return Err(bad(format!(
                            "layer {what:?} is called with {}, which this crate does not read",
                            clip(&value.to_string())
                        )));
                    }
                }
            }
            Value::String(s) => {
                return Err(bad(format!(
                    "layer {what:?} is called with the string {:?}",
                    clip(s)
                )));
            }
        })
    }

    /// One call of entry `entry`: Keras 3's `{"args": [...], "kwargs": {...}}`, or tf.keras 2's
    /// list of `[layer, node, tensor, kwargs]`.
    fn node(&self, entry: usize, call: usize, value: &Value, what: &str) -> Result<Node> {
        let mut node = Node::new(entry, call, Vec::new());
        let (args, kwargs) = match value {
            Value::Object(map) => (map.get("args"), map.get("kwargs")),
            Value::Array(refs) => {
                // tf.keras 2: the tensors of one call; several make a list argument.
                let tensors = refs
                    .iter()
                    .map(|r| self.history(r, what))
                    .collect::<Result<Vec<_>>>()?;
                let kwargs = refs.first().and_then(|r| r.get(3));
                node.args = match tensors.as_slice() {
                    [one] => vec![Arg::Tensor(*one)],
                    _ => vec![Arg::List(tensors.into_iter().map(Arg::Tensor).collect())],
                };
                self.kwargs(&mut node, kwargs, what)?;
                return Ok(node);
            }
            other => {
                return Err(bad(format!(
                    "layer {what:?}: call {} is not a node",
                    clip(&other.to_string())
                )));
            }
        };
        node.args = match args {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| self.arg(v, what, 0))
                .collect::<Result<_>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "layer {what:?}: args {} is not a list",
                    clip(&other.to_string())
                )));
            }
        };
        self.kwargs(&mut node, kwargs, what)?;
        if let LayerSpec::Op { .. } = self.entries[entry].spec
            && (node.mask.is_some() || node.initial_state.is_some())
        {
            return Err(bad(format!(
                "op {what:?} is called with a mask or initial state"
            )));
        }
        Ok(node)
    }

    /// The keyword arguments of a call: `mask` and `initial_state` are read, `training` (which
    /// inference ignores) is allowed; anything else is refused by name.
    fn kwargs(&self, node: &mut Node, kwargs: Option<&Value>, what: &str) -> Result<()> {
        let Some(kwargs) = kwargs.filter(|k| !k.is_null()) else {
            return Ok(());
        };
        let map = kwargs.as_object().ok_or_else(|| {
            bad(format!(
                "layer {what:?}: kwargs {} is not a mapping",
                clip(&kwargs.to_string())
            ))
        })?;
        for (key, value) in map {
            match key.as_str() {
                // Inference: a call recorded with training=True would run as in training
                // (dropout, batch statistics), which this crate does not.
                "training" if value.is_null() || value == &Value::Bool(false) => {}
                "mask" => {
                    node.mask = match self.arg(value, what, 0)? {
                        Arg::Null => None,
                        arg => Some(arg),
                    }
                }
                "initial_state" => {
                    node.initial_state = match self.arg(value, what, 0)? {
                        Arg::Null => None,
                        arg => Some(arg),
                    }
                }
                other => {
                    return Err(bad(format!(
                        "layer {what:?} is called with {other}={}, which this crate does not run",
                        clip(&value.to_string())
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(layer: &str, node: u64, out: u64) -> Value {
        serde_json::json!({"class_name": "__keras_tensor__",
            "config": {"shape": [null, 3], "dtype": "float32", "keras_history": [layer, node, out]}})
    }

    fn input(name: &str) -> Value {
        serde_json::json!({"class_name": "InputLayer", "name": name,
            "config": {"name": name, "batch_shape": [null, 4, 3], "dtype": "float32"},
            "inbound_nodes": []})
    }

    fn dropout(name: &str, reads: &[(&str, u64)]) -> Value {
        let nodes: Vec<Value> = reads
            .iter()
            .map(|(l, n)| serde_json::json!({"args": [tensor(l, *n, 0)], "kwargs": {}}))
            .collect();
        serde_json::json!({"class_name": "Dropout", "name": name,
            "config": {"name": name, "rate": 0.5}, "inbound_nodes": nodes})
    }

    fn model(layers: Vec<Value>, inputs: Value, outputs: Value) -> Value {
        serde_json::json!({"class_name": "Functional", "config": {"name": "m", "layers": layers,
            "input_layers": inputs, "output_layers": outputs}})
    }

    fn error(config: &Value) -> String {
        match parse_model(config, false) {
            Ok(g) => panic!("parsed: {g:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn calls_are_ordered_so_that_every_tensor_is_made_before_it_is_read() {
        // Listed out of order: b reads a, which comes after it.
        let config = model(
            vec![
                input("x"),
                dropout("b", &[("a", 0)]),
                dropout("a", &[("x", 0)]),
            ],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["b", 0, 0]),
        );
        let graph = parse_model(&config, false).unwrap();
        let names: Vec<&str> = graph
            .nodes
            .iter()
            .map(|n| graph.entries[n.entry].spec.name())
            .collect();
        assert_eq!(names, ["x", "a", "b"]);
        assert_eq!(graph.outputs, [TensorRef { node: 2, output: 0 }]);
    }

    #[test]
    fn cycles_and_dangling_references_are_named() {
        let cycle = model(
            vec![
                input("x"),
                dropout("a", &[("b", 0)]),
                dropout("b", &[("a", 0)]),
            ],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["b", 0, 0]),
        );
        assert!(error(&cycle).contains("cycle"));
        let own = model(
            vec![input("x"), dropout("a", &[("a", 0)])],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["a", 0, 0]),
        );
        assert!(error(&own).contains("cycle"));
        let dangling = model(
            vec![input("x"), dropout("a", &[("nowhere", 0)])],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["a", 0, 0]),
        );
        assert!(error(&dangling).contains("nowhere"));
        let past = model(
            vec![input("x"), dropout("a", &[("x", 3)])],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["a", 0, 0]),
        );
        assert!(error(&past).contains("call 3"));
        let no_output = model(
            vec![input("x"), dropout("a", &[("x", 0)])],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["zz", 0, 0]),
        );
        assert!(error(&no_output).contains("zz"));
        let unknown_kwarg = model(
            vec![
                input("x"),
                serde_json::json!({"class_name": "Dropout", "name": "a", "config": {"name": "a"},
                    "inbound_nodes": [{"args": [tensor("x", 0, 0)], "kwargs": {"noise_shape": 3}}]}),
            ],
            serde_json::json!(["x", 0, 0]),
            serde_json::json!(["a", 0, 0]),
        );
        assert!(error(&unknown_kwarg).contains("noise_shape"));
    }

    #[test]
    fn a_long_chain_and_a_wide_fan_out_read_in_linear_time() {
        let n = 20_000;
        let mut layers = vec![input("x")];
        layers.extend((0..n).map(|i| {
            let prev = if i == 0 {
                "x".to_string()
            } else {
                format!("d{}", i - 1)
            };
            dropout(&format!("d{i}"), &[(&prev, 0)])
        }));
        let config = model(
            layers,
            serde_json::json!(["x", 0, 0]),
            serde_json::json!([format!("d{}", n - 1), 0, 0]),
        );
        assert_eq!(parse_model(&config, false).unwrap().nodes.len(), n + 1);
        let mut layers = vec![input("x")];
        layers.extend((0..n).map(|i| dropout(&format!("f{i}"), &[("x", 0)])));
        let outputs: Vec<Value> = (0..n)
            .map(|i| serde_json::json!([format!("f{i}"), 0, 0]))
            .collect();
        let config = model(
            layers,
            serde_json::json!(["x", 0, 0]),
            Value::Array(outputs),
        );
        assert_eq!(parse_model(&config, false).unwrap().outputs.len(), n);
    }
}
