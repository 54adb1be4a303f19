//! The ONNX `RNN`, `LSTM` and `GRU` operators' semantics through the library API: their tensor
//! layouts, per-direction activations with `activation_alpha` / `activation_beta`, `clip`,
//! `sequence_lens`, `initial_h` (and `initial_c`), LSTM's peepholes and `input_forget`, GRU's
//! `linear_before_reset`.

use ndarray::{Array3, Array4, ArrayView2, ArrayView3, Axis, s};

use crate::Activation;
use crate::backend::Backend;
use crate::cell::Cell;
use crate::error::{Result, RnnError};
use crate::layer::SimpleRnnConfig;
use crate::stack::{RnnStack, gate_blocks, layer_from_gate_rows};

/// The `direction` attribute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnnxDirection {
    /// `"forward"` (the default).
    #[default]
    Forward,
    /// `"reverse"`.
    Reverse,
    /// `"bidirectional"`.
    Bidirectional,
}

impl OnnxDirection {
    /// Parses the attribute's string.
    ///
    /// # Errors
    /// [`RnnError::InvalidOption`] for anything but forward, reverse, bidirectional.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "forward" => Ok(OnnxDirection::Forward),
            "reverse" => Ok(OnnxDirection::Reverse),
            "bidirectional" => Ok(OnnxDirection::Bidirectional),
            other => Err(RnnError::InvalidOption(format!("direction {other:?}"))),
        }
    }

    /// 1, or 2 for bidirectional.
    pub fn count(self) -> usize {
        if self == OnnxDirection::Bidirectional {
            2
        } else {
            1
        }
    }
}

/// The attributes of an `RNN`, `LSTM` or `GRU` node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxRnnAttributes {
    /// `activations`, directions one after the other: per direction one for `RNN`, three for
    /// `LSTM` (f, g, h), two for `GRU` (f, g). Empty: the operator's defaults (Tanh; Sigmoid,
    /// Tanh, Tanh; Sigmoid, Tanh).
    pub activations: Vec<Activation>,
    /// `clip`: every gate's pre-activation is clipped to [-clip, clip].
    pub clip: Option<f32>,
    /// `direction`.
    pub direction: OnnxDirection,
    /// `hidden_size`; checked against the weights when given.
    pub hidden_size: Option<usize>,
    /// `layout`: 0 for *T* × *N* × … tensors, 1 for *N* × *T* × ….
    pub layout: u8,
    /// `LSTM`'s `input_forget`: the forget gate is 1 - i.
    pub input_forget: bool,
    /// `GRU`'s `linear_before_reset`: the reset gate multiplies `h · R_h + Rb_h` (1) instead of
    /// `h` before its product (0, the default).
    pub linear_before_reset: bool,
}

impl OnnxRnnAttributes {
    /// Builds the activation list from the attribute strings and the `activation_alpha` /
    /// `activation_beta` lists, which are consumed in order by the activations that take them
    /// (defaults apply when a list runs out).
    ///
    /// # Errors
    /// As [`Activation::from_onnx`].
    pub fn activations_from(
        names: &[&str],
        alphas: &[f32],
        betas: &[f32],
    ) -> Result<Vec<Activation>> {
        let (mut alphas, mut betas) = (alphas.iter().copied(), betas.iter().copied());
        names
            .iter()
            .map(|name| {
                let lower = name.to_ascii_lowercase();
                let takes_alpha = matches!(
                    lower.as_str(),
                    "affine"
                        | "scaledtanh"
                        | "leakyrelu"
                        | "thresholdedrelu"
                        | "hardsigmoid"
                        | "elu"
                );
                let takes_beta = matches!(lower.as_str(), "affine" | "scaledtanh" | "hardsigmoid");
                let alpha = if takes_alpha { alphas.next() } else { None };
                let beta = if takes_beta { betas.next() } else { None };
                Activation::from_onnx(name, alpha, beta)
            })
            .collect()
    }
}

/// An ONNX `RNN`, `LSTM` or `GRU` node ready to run.
///
/// ```
/// use ndarray::{Array2, Array3};
/// use wgpu_rnn::{Activation, Backend, OnnxDirection, OnnxRnn, OnnxRnnAttributes};
///
/// // One direction, hidden_size M = 2, D = 3: W is dirs × M × D, R dirs × M × M, B dirs × 2M.
/// let w = Array3::from_elem((1, 2, 3), 0.1f32);
/// let r = Array3::zeros((1, 2, 2));
/// let b = Array2::zeros((1, 4));
/// let attributes = OnnxRnnAttributes {
///     direction: OnnxDirection::Forward,
///     activations: vec![Activation::Tanh],
///     ..Default::default()
/// };
/// let node = OnnxRnn::new(w.view(), r.view(), Some(b.view()), &attributes, &Backend::Cpu)?;
/// let x = Array3::<f32>::ones((4, 1, 3)); // layout 0: T × N × D
/// let out = node.forward(x.view(), None, None)?;
/// assert!((out.y_h[[0, 0, 0]] - 0.3f32.tanh()).abs() < 1e-6);
/// # Ok::<(), wgpu_rnn::RnnError>(())
/// ```
pub struct OnnxRnn {
    stack: RnnStack,
    layout: u8,
}

impl std::fmt::Debug for OnnxRnn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRnn")
            .field("cell", &self.stack.cell())
            .field("directions", &self.stack.directions())
            .field("hidden_size", &self.stack.units())
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// `W`, `R`, `B` and `P` of a node.
type Tensors<'a> = (
    ArrayView3<'a, f32>,
    ArrayView3<'a, f32>,
    Option<ArrayView2<'a, f32>>,
    Option<ArrayView2<'a, f32>>,
);

/// The node's outputs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OnnxRnnOutput {
    /// `Y`: *T* × dirs × *N* × *M* (layout 0) or *N* × *T* × dirs × *M* (layout 1).
    pub y: Array4<f32>,
    /// `Y_h`: dirs × *N* × *M* (layout 0) or *N* × dirs × *M* (layout 1).
    pub y_h: Array3<f32>,
    /// `Y_c` of an `LSTM`, shaped as `Y_h`; `None` for the other operators.
    pub y_c: Option<Array3<f32>>,
}

/// The operator a node runs, with its gate order in ONNX's tensors.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operator {
    Rnn,
    Lstm,
    Gru,
}

impl Operator {
    fn name(self) -> &'static str {
        match self {
            Operator::Rnn => "RNN",
            Operator::Lstm => "LSTM",
            Operator::Gru => "GRU",
        }
    }

    fn gates(self) -> usize {
        match self {
            Operator::Rnn => 1,
            Operator::Lstm => 4,
            Operator::Gru => 3,
        }
    }

    /// Keras's gate *k* is ONNX's block `order[k]`: LSTM's W, R and B are ordered i, o, f, c
    /// (Keras: i, f, c, o); GRU's z, r, h as Keras's.
    fn order(self) -> &'static [usize] {
        match self {
            Operator::Rnn => &[0],
            Operator::Lstm => &[0, 2, 3, 1],
            Operator::Gru => &[0, 1, 2],
        }
    }

    /// The default activations of one direction.
    fn default_activations(self) -> &'static [Activation] {
        match self {
            Operator::Rnn => &[Activation::Tanh],
            Operator::Lstm => &[Activation::Sigmoid, Activation::Tanh, Activation::Tanh],
            Operator::Gru => &[Activation::Sigmoid, Activation::Tanh],
        }
    }
}

impl OnnxRnn {
    /// Builds an `RNN` node from `W` (dirs × *M* × *D*), `R` (dirs × *M* × *M*) and the optional
    /// `B` (dirs × 2*M*: `Wb` then `Rb`, added).
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] when the tensors disagree with each other, with `direction`
    /// or with `hidden_size`; [`RnnError::InvalidOption`] for a layout other than 0 or 1, an
    /// activation count other than the directions', or `input_forget` or
    /// `linear_before_reset` (not `RNN` attributes); backend errors.
    pub fn new(
        w: ArrayView3<'_, f32>,
        r: ArrayView3<'_, f32>,
        b: Option<ArrayView2<'_, f32>>,
        attributes: &OnnxRnnAttributes,
        backend: &Backend,
    ) -> Result<Self> {
        Self::build(Operator::Rnn, (w, r, b, None), attributes, backend)
    }

    /// Builds an `LSTM` node from `W` (dirs × 4*M* × *D*), `R` (dirs × 4*M* × *M*), the
    /// optional `B` (dirs × 8*M*: `Wb` then `Rb`, added) and the optional peepholes `P`
    /// (dirs × 3*M*), gates in ONNX's order (i, o, f, c; P: i, o, f).
    ///
    /// # Errors
    /// As [`OnnxRnn::new`], with three activations per direction, and
    /// [`RnnError::InvalidOption`] for `linear_before_reset`.
    pub fn lstm(
        w: ArrayView3<'_, f32>,
        r: ArrayView3<'_, f32>,
        b: Option<ArrayView2<'_, f32>>,
        p: Option<ArrayView2<'_, f32>>,
        attributes: &OnnxRnnAttributes,
        backend: &Backend,
    ) -> Result<Self> {
        Self::build(Operator::Lstm, (w, r, b, p), attributes, backend)
    }

    /// Builds a `GRU` node from `W` (dirs × 3*M* × *D*), `R` (dirs × 3*M* × *M*) and the
    /// optional `B` (dirs × 6*M*: `Wb` then `Rb`), gates z, r, h.
    ///
    /// # Errors
    /// As [`OnnxRnn::new`], with two activations per direction, and
    /// [`RnnError::InvalidOption`] for `input_forget`.
    pub fn gru(
        w: ArrayView3<'_, f32>,
        r: ArrayView3<'_, f32>,
        b: Option<ArrayView2<'_, f32>>,
        attributes: &OnnxRnnAttributes,
        backend: &Backend,
    ) -> Result<Self> {
        Self::build(Operator::Gru, (w, r, b, None), attributes, backend)
    }

    fn build(
        op: Operator,
        (w, r, b, p): Tensors<'_>,
        attributes: &OnnxRnnAttributes,
        backend: &Backend,
    ) -> Result<Self> {
        let dirs = attributes.direction.count();
        let g = op.gates();
        let (w_dirs, gm, _) = w.dim();
        let m = gm / g;
        if w_dirs != dirs || gm % g != 0 || m == 0 || attributes.hidden_size.is_some_and(|h| h != m)
        {
            let rows = if g == 1 {
                "hidden_size".to_string()
            } else {
                format!("{g}·hidden_size")
            };
            return Err(RnnError::shape(
                "W",
                format!("[{dirs}, {rows}, D]"),
                w.shape(),
            ));
        }
        if r.dim() != (dirs, gm, m) {
            return Err(RnnError::shape(
                "R",
                format!("[{dirs}, {gm}, {m}]"),
                r.shape(),
            ));
        }
        if let Some(b) = &b
            && b.dim() != (dirs, 2 * gm)
        {
            return Err(RnnError::shape(
                "B",
                format!("[{dirs}, {}]", 2 * gm),
                b.shape(),
            ));
        }
        if let Some(p) = &p
            && p.dim() != (dirs, 3 * m)
        {
            return Err(RnnError::shape(
                "P",
                format!("[{dirs}, {}]", 3 * m),
                p.shape(),
            ));
        }
        if attributes.layout > 1 {
            return Err(RnnError::InvalidOption(format!(
                "layout {}",
                attributes.layout
            )));
        }
        for (name, set, owner) in [
            ("input_forget", attributes.input_forget, Operator::Lstm),
            (
                "linear_before_reset",
                attributes.linear_before_reset,
                Operator::Gru,
            ),
        ] {
            if set && op != owner {
                return Err(RnnError::InvalidOption(format!(
                    "{name} is not an attribute of {}",
                    op.name()
                )));
            }
        }
        let per_direction = op.default_activations().len();
        let activations = match attributes.activations.len() {
            0 => op.default_activations().repeat(dirs),
            n if n == per_direction * dirs => attributes.activations.clone(),
            n => {
                return Err(RnnError::InvalidOption(format!(
                    "{n} activations for an {} of {dirs} direction(s): it takes {per_direction} \
                     per direction",
                    op.name()
                )));
            }
        };
        let cell = match op {
            Operator::Rnn => Cell::Simple,
            Operator::Lstm => Cell::Lstm,
            Operator::Gru if attributes.linear_before_reset => Cell::Gru,
            Operator::Gru => Cell::GruResetBefore,
        };
        let layer = (0..dirs)
            .map(|dir| {
                let biases = b.as_ref().map(|b| {
                    (
                        b.slice(s![dir, ..gm]).to_owned(),
                        b.slice(s![dir, gm..]).to_owned(),
                    )
                });
                let acts = &activations[dir * per_direction..(dir + 1) * per_direction];
                let config = match op {
                    Operator::Rnn => SimpleRnnConfig {
                        activation: acts[0],
                        ..Default::default()
                    },
                    Operator::Lstm => SimpleRnnConfig {
                        recurrent_activation: acts[0],
                        activation: acts[1],
                        output_activation: Some(acts[2]),
                        input_forget: attributes.input_forget,
                        ..Default::default()
                    },
                    Operator::Gru => SimpleRnnConfig {
                        recurrent_activation: acts[0],
                        activation: acts[1],
                        ..Default::default()
                    },
                };
                let config = SimpleRnnConfig {
                    clip: attributes.clip,
                    ..config
                };
                let layer = layer_from_gate_rows(
                    cell,
                    op.order(),
                    w.index_axis(Axis(0), dir).to_owned(),
                    r.index_axis(Axis(0), dir).to_owned(),
                    biases,
                    config,
                )?;
                match &p {
                    // P is ordered i, o, f; the layer's peepholes i, f, o.
                    Some(p) => layer.with_peepholes(gate_blocks(p.row(dir), &[0, 2, 1], m)),
                    None => Ok(layer),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        // A reverse-only node is one reversed layer.
        let reverse_only = attributes.direction == OnnxDirection::Reverse;
        let stack = if reverse_only {
            let mut only = layer.into_iter().next().expect("one direction");
            let mut config = *only.config();
            config.go_backwards = true;
            only = only.with_config(config)?;
            RnnStack::new(vec![vec![only]], backend)?
        } else {
            RnnStack::new(vec![layer], backend)?
        };
        Ok(OnnxRnn {
            stack,
            layout: attributes.layout,
        })
    }

    /// Runs the node on `X` (*T* × *N* × *D*, or *N* × *T* × *D* with layout 1), with
    /// `sequence_lens` (*N*, each 1 ≤ length ≤ *T*) and `initial_h` (as `Y_h`'s layout).
    ///
    /// # Errors
    /// Shape errors for `X`, `initial_h` or `sequence_lens`; [`RnnError::BadLength`] for a
    /// length of 0 or past *T*; backend errors.
    pub fn forward(
        &self,
        x: ArrayView3<'_, f32>,
        sequence_lens: Option<&[usize]>,
        initial_h: Option<ArrayView3<'_, f32>>,
    ) -> Result<OnnxRnnOutput> {
        self.forward_states(x, sequence_lens, initial_h, None)
    }

    /// [`OnnxRnn::forward`] with an `LSTM`'s `initial_c` (as `initial_h`); `Y_c` is in the
    /// output.
    ///
    /// # Errors
    /// As [`OnnxRnn::forward`]; [`RnnError::InvalidOption`] for `initial_c` on another
    /// operator, [`RnnError::ShapeMismatch`] for one shaped unlike `Y_h`.
    pub fn forward_states(
        &self,
        x: ArrayView3<'_, f32>,
        sequence_lens: Option<&[usize]>,
        initial_h: Option<ArrayView3<'_, f32>>,
        initial_c: Option<ArrayView3<'_, f32>>,
    ) -> Result<OnnxRnnOutput> {
        let batch_major = if self.layout == 0 {
            x.permuted_axes([1, 0, 2])
        } else {
            x
        };
        // The stack takes states as dirs × N × M, layout 0's.
        let layout = self.layout;
        let out = self.stack.forward_states(
            batch_major,
            initial_h.map(|h| directions_first(layout, h)),
            initial_c.map(|c| directions_first(layout, c)),
            sequence_lens,
        )?;
        let (n, t, _) = out.output.dim();
        let dirs = self.stack.directions();
        let m = self.stack.units();
        // N × T × (dirs·M) → N × T × dirs × M.
        let y = out
            .output
            .into_shape_with_order((n, t, dirs, m))
            .expect("dirs·M features split into dirs × M");
        let state_layout = |h: Array3<f32>| {
            if self.layout == 0 {
                h
            } else {
                h.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()
            }
        };
        let y = if self.layout == 0 {
            y.permuted_axes([1, 2, 0, 3])
                .as_standard_layout()
                .into_owned()
        } else {
            y
        };
        Ok(OnnxRnnOutput {
            y,
            y_h: state_layout(out.h_n),
            y_c: out.c_n.map(state_layout),
        })
    }
}

/// A state tensor of `layout` as dirs × *N* × *M*.
fn directions_first(layout: u8, h: ArrayView3<'_, f32>) -> ArrayView3<'_, f32> {
    if layout == 0 {
        h
    } else {
        h.permuted_axes([1, 0, 2])
    }
}
