//! The ONNX `RNN` operator's semantics through the library API: its tensor layouts, per-direction
//! activations with `activation_alpha` / `activation_beta`, `clip`, `sequence_lens` and
//! `initial_h`.

use ndarray::{Array3, Array4, ArrayView2, ArrayView3, Axis, s};

use crate::Activation;
use crate::backend::Backend;
use crate::error::{Result, RnnError};
use crate::layer::SimpleRnnConfig;
use crate::stack::{RnnStack, layer_from_transposed};

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

/// The `RNN` node's attributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxRnnAttributes {
    /// `activations`, one per direction (empty: Tanh for each).
    pub activations: Vec<Activation>,
    /// `clip`: the pre-activation is clipped to [-clip, clip].
    pub clip: Option<f32>,
    /// `direction`.
    pub direction: OnnxDirection,
    /// `hidden_size`; checked against the weights when given.
    pub hidden_size: Option<usize>,
    /// `layout`: 0 for *T* × *N* × … tensors, 1 for *N* × *T* × ….
    pub layout: u8,
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

/// An ONNX `RNN` node ready to run.
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

/// The node's outputs.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct OnnxRnnOutput {
    /// `Y`: *T* × dirs × *N* × *M* (layout 0) or *N* × *T* × dirs × *M* (layout 1).
    pub y: Array4<f32>,
    /// `Y_h`: dirs × *N* × *M* (layout 0) or *N* × dirs × *M* (layout 1).
    pub y_h: Array3<f32>,
}

impl OnnxRnn {
    /// Builds the node from `W` (dirs × *M* × *D*), `R` (dirs × *M* × *M*) and the optional `B`
    /// (dirs × 2*M*: `Wb` then `Rb`, added).
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] when the tensors disagree with each other, with `direction`
    /// or with `hidden_size`; [`RnnError::InvalidOption`] for a layout other than 0 or 1 or an
    /// activation count other than the directions'; backend errors.
    pub fn new(
        w: ArrayView3<'_, f32>,
        r: ArrayView3<'_, f32>,
        b: Option<ArrayView2<'_, f32>>,
        attributes: &OnnxRnnAttributes,
        backend: &Backend,
    ) -> Result<Self> {
        let dirs = attributes.direction.count();
        let (w_dirs, m, _) = w.dim();
        if w_dirs != dirs || attributes.hidden_size.is_some_and(|h| h != m) {
            return Err(RnnError::shape(
                "W",
                format!("[{dirs}, hidden_size, D]"),
                w.shape(),
            ));
        }
        if r.dim() != (dirs, m, m) {
            return Err(RnnError::shape(
                "R",
                format!("[{dirs}, {m}, {m}]"),
                r.shape(),
            ));
        }
        if let Some(b) = &b
            && b.dim() != (dirs, 2 * m)
        {
            return Err(RnnError::shape(
                "B",
                format!("[{dirs}, {}]", 2 * m),
                b.shape(),
            ));
        }
        if attributes.layout > 1 {
            return Err(RnnError::InvalidOption(format!(
                "layout {}",
                attributes.layout
            )));
        }
        let activations = match attributes.activations.len() {
            0 => vec![Activation::Tanh; dirs],
            n if n == dirs => attributes.activations.clone(),
            n => {
                return Err(RnnError::InvalidOption(format!(
                    "{n} activations for {dirs} direction(s)"
                )));
            }
        };
        let layer = (0..dirs)
            .map(|dir| {
                let biases = b.as_ref().map(|b| {
                    (
                        b.slice(s![dir, ..m]).to_owned(),
                        b.slice(s![dir, m..]).to_owned(),
                    )
                });
                let config = SimpleRnnConfig {
                    activation: activations[dir],
                    clip: attributes.clip,
                    ..Default::default()
                };
                layer_from_transposed(
                    w.index_axis(Axis(0), dir).to_owned(),
                    r.index_axis(Axis(0), dir).to_owned(),
                    biases,
                    config,
                )
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
        let batch_major = if self.layout == 0 {
            x.permuted_axes([1, 0, 2])
        } else {
            x
        };
        let h0 = initial_h.map(|h| {
            if self.layout == 0 {
                h
            } else {
                h.permuted_axes([1, 0, 2])
            }
        });
        let out = self.stack.forward(batch_major, h0, sequence_lens)?;
        let (n, t, _) = out.output.dim();
        let dirs = self.stack.directions();
        let m = self.stack.units();
        // N × T × (dirs·M) → N × T × dirs × M.
        let y = out
            .output
            .into_shape_with_order((n, t, dirs, m))
            .expect("dirs·M features split into dirs × M");
        let (y, y_h) = if self.layout == 0 {
            (
                y.permuted_axes([1, 2, 0, 3])
                    .as_standard_layout()
                    .into_owned(),
                out.h_n,
            )
        } else {
            (
                y,
                out.h_n
                    .permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned(),
            )
        };
        Ok(OnnxRnnOutput { y, y_h })
    }
}
