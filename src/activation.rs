//! Keras 3 activations, by Keras's names, with Keras's default arguments.
//!
//! The CPU definitions here and the WGSL ones in `shaders/activations.wgsl` are kept in step; both
//! are checked against fixtures written by real Keras, at ordinary values and at the edges of
//! float32 (`tests/activation_edges.rs`). Each follows Keras 3's own formula (on JAX), so both
//! backends give what Keras gives where the formula meets NaN, infinities or overflow:
//!
//! | input | what comes out |
//! |---|---|
//! | NaN | NaN from every activation but `soft_shrink` and `hard_shrink`, which give 0 (Keras's `where` takes its else branch); a NaN anywhere in a row makes the whole `softmax` / `log_softmax` row NaN |
//! | +inf | the limit (`tanh` 1, `sigmoid` 1, `relu6` 6, `softsign` NaN as inf/inf in Keras), `exponential` inf |
//! | -inf | the limit, except NaN where Keras multiplies -inf by 0: `gelu`, `silu`, `mish`, `hard_silu`, `squareplus`, `softsign` |
//! | ±1e30 | the value of the formula in float32: `squareplus` is inf at both (x² overflows in Keras too) |
//! | huge x | `hard_silu(x)` is x (computed as x · (relu6(x + 3) / 6), Keras's order); `selu`, `exponential` overflow to inf where the true value passes f32::MAX |
//! | ±1e-40 (subnormal) | the formula's value; Keras on CPU flushes subnormals to 0, a difference far inside the tolerance |
//!
//! The GPU computes `exponential` with its own range-reduced exp (WGSL allows the built-in an
//! error of 3 + 2·|x| ULP, which grows past float32's needs over many steps): within 1e-6 of
//! exact, as the CPU's.

use crate::error::{Result, RnnError};

/// An activation function of a SimpleRNN layer, as Keras names it.
///
/// All but [`Activation::Softmax`] and [`Activation::LogSoftmax`] act on each unit alone;
/// those two act across the *M* units of each row, as Keras applies them on the last axis.
/// Keras's names give Keras's default arguments; the ONNX `RNN` operator's activations (with
/// `activation_alpha` / `activation_beta`) map onto the parameterised variants.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Activation {
    /// `x` (Keras `"linear"`, also `None`).
    Linear,
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `clip(alpha x + beta, 0, 1)`; Keras's `hard_sigmoid` is `relu6(x + 3) / 6`, alpha 1/6 and
    /// beta 0.5 (ONNX's default is alpha 0.2, beta 0.5).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x` if `x > 0`, else `alpha (exp(x) - 1)` (Keras and ONNX default alpha 1).
    Elu {
        /// Scale of the negative side.
        alpha: f32,
    },
    /// `scale * elu(x, alpha)` with Keras's constants.
    Selu,
    /// `log(1 + exp(x))`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `0.5 x (1 + erf(x / √2))`, the exact form Keras uses for the string `"gelu"`.
    Gelu,
    /// `x * sigmoid(x)` (also `"swish"`).
    Silu,
    /// `exp(x)`.
    Exponential,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` if `x >= 0`, else `negative_slope x` (Keras's default 0.2, ONNX's 0.01).
    LeakyRelu {
        /// Slope of the negative side.
        negative_slope: f32,
    },
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `x * relu6(x + 3) / 6` (also `"hard_swish"`).
    HardSilu,
    /// `-softplus(-x)`.
    LogSigmoid,
    /// `x - tanh(x)`.
    TanhShrink,
    /// `max(0, x) + min(0, exp(x) - 1)` (alpha 1).
    Celu,
    /// `clip(x, -1, 1)`.
    HardTanh,
    /// `x - 0.5` above 0.5, `x + 0.5` below -0.5, else 0.
    SoftShrink,
    /// `x` where `|x| > 0.5`, else 0.
    HardShrink,
    /// `(x + sqrt(x² + 4)) / 2`.
    Squareplus,
    /// 0 for `x <= -1`, `x` for `x >= 1`, else `(x + 1)² / 4`.
    SparsePlus,
    /// 0 for `x <= -1`, 1 for `x >= 1`, else `(x + 1) / 2`.
    SparseSigmoid,
    /// `exp(x) / Σ exp(x)` across the units of a row.
    Softmax,
    /// `x - log Σ exp(x)` across the units of a row.
    LogSoftmax,
    /// `alpha x + beta` (ONNX `Affine`).
    Affine {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `alpha tanh(beta x)` (ONNX `ScaledTanh`).
    ScaledTanh {
        /// Output scale.
        alpha: f32,
        /// Input scale.
        beta: f32,
    },
    /// `x` if `x > alpha`, else 0 (ONNX `ThresholdedRelu`, default alpha 1).
    ThresholdedRelu {
        /// Threshold.
        alpha: f32,
    },
    /// Keras's `relu` with its parameters (`layers.ReLU(max_value, negative_slope, threshold)`,
    /// `activations.relu(x, ...)`): `x` kept above `threshold` (else 0), clipped to
    /// `max_value`, minus `negative_slope · relu(threshold - x)`. The parameterless cases are
    /// [`Activation::Relu`], [`Activation::Relu6`] and [`Activation::LeakyRelu`].
    KerasRelu {
        /// Slope below the threshold.
        negative_slope: f32,
        /// The most the positive side gives (`None`: no cap).
        max_value: Option<f32>,
        /// Where the positive side starts.
        threshold: f32,
    },
}

const SELU_ALPHA: f32 = 1.673_263_2;
const SELU_SCALE: f32 = 1.050_701;
const SHRINK_THRESHOLD: f32 = 0.5;
const SQUAREPLUS_B: f32 = 4.0;

impl Activation {
    /// Keras's `hard_sigmoid`: `relu6(x + 3) / 6`.
    pub const KERAS_HARD_SIGMOID: Activation = Activation::HardSigmoid {
        alpha: 1.0 / 6.0,
        beta: 0.5,
    };
    /// Keras's `elu` (alpha 1).
    pub const KERAS_ELU: Activation = Activation::Elu { alpha: 1.0 };
    /// Keras's `leaky_relu` (negative slope 0.2).
    pub const KERAS_LEAKY_RELU: Activation = Activation::LeakyRelu {
        negative_slope: 0.2,
    };

    /// Every name [`Activation::from_keras_name`] accepts.
    pub const KERAS_NAMES: &'static [&'static str] = &[
        "linear",
        "tanh",
        "relu",
        "sigmoid",
        "hard_sigmoid",
        "elu",
        "selu",
        "softplus",
        "softsign",
        "gelu",
        "silu",
        "swish",
        "exponential",
        "relu6",
        "leaky_relu",
        "mish",
        "hard_silu",
        "hard_swish",
        "log_sigmoid",
        "tanh_shrink",
        "celu",
        "hard_tanh",
        "soft_shrink",
        "hard_shrink",
        "squareplus",
        "sparse_plus",
        "sparse_sigmoid",
        "softmax",
        "log_softmax",
    ];

    /// Every kind of activation, once each (parameterised ones with Keras's defaults, or example
    /// parameters for the ONNX-only ones).
    pub const ALL: &'static [Activation] = &[
        Activation::Linear,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::KERAS_HARD_SIGMOID,
        Activation::KERAS_ELU,
        Activation::Selu,
        Activation::Softplus,
        Activation::Softsign,
        Activation::Gelu,
        Activation::Silu,
        Activation::Exponential,
        Activation::Relu6,
        Activation::KERAS_LEAKY_RELU,
        Activation::Mish,
        Activation::HardSilu,
        Activation::LogSigmoid,
        Activation::TanhShrink,
        Activation::Celu,
        Activation::HardTanh,
        Activation::SoftShrink,
        Activation::HardShrink,
        Activation::Squareplus,
        Activation::SparsePlus,
        Activation::SparseSigmoid,
        Activation::Softmax,
        Activation::LogSoftmax,
        Activation::Affine {
            alpha: 1.5,
            beta: -0.5,
        },
        Activation::ScaledTanh {
            alpha: 1.5,
            beta: 0.5,
        },
        Activation::ThresholdedRelu { alpha: 1.0 },
        Activation::KerasRelu {
            negative_slope: 0.1,
            max_value: Some(2.0),
            threshold: 0.3,
        },
    ];

    /// Parses a Keras activation name (as in `SimpleRNN(activation="tanh")`); `"None"` and `""`
    /// mean linear, as `activation=None` does.
    ///
    /// # Errors
    /// [`RnnError::UnknownActivation`] for a name Keras does not give to an elementwise or
    /// row-wise activation.
    pub fn from_keras_name(name: &str) -> Result<Self> {
        use Activation::*;
        Ok(match name {
            "linear" | "None" | "none" | "" => Linear,
            "tanh" => Tanh,
            "relu" => Relu,
            "sigmoid" => Sigmoid,
            "hard_sigmoid" => Activation::KERAS_HARD_SIGMOID,
            "elu" => Activation::KERAS_ELU,
            "selu" => Selu,
            "softplus" => Softplus,
            "softsign" => Softsign,
            "gelu" => Gelu,
            "silu" | "swish" => Silu,
            "exponential" => Exponential,
            "relu6" => Relu6,
            "leaky_relu" => Activation::KERAS_LEAKY_RELU,
            "mish" => Mish,
            "hard_silu" | "hard_swish" => HardSilu,
            "log_sigmoid" => LogSigmoid,
            "tanh_shrink" => TanhShrink,
            "celu" => Celu,
            "hard_tanh" => HardTanh,
            "soft_shrink" => SoftShrink,
            "hard_shrink" => HardShrink,
            "squareplus" => Squareplus,
            "sparse_plus" => SparsePlus,
            "sparse_sigmoid" => SparseSigmoid,
            "softmax" => Softmax,
            "log_softmax" => LogSoftmax,
            other => return Err(RnnError::UnknownActivation(other.to_string())),
        })
    }

    /// The canonical Keras name.
    pub fn keras_name(self) -> &'static str {
        use Activation::*;
        match self {
            Linear => "linear",
            Tanh => "tanh",
            Relu => "relu",
            Sigmoid => "sigmoid",
            HardSigmoid { .. } => "hard_sigmoid",
            Elu { .. } => "elu",
            Selu => "selu",
            Softplus => "softplus",
            Softsign => "softsign",
            Gelu => "gelu",
            Silu => "silu",
            Exponential => "exponential",
            Relu6 => "relu6",
            LeakyRelu { .. } => "leaky_relu",
            Mish => "mish",
            HardSilu => "hard_silu",
            LogSigmoid => "log_sigmoid",
            TanhShrink => "tanh_shrink",
            Celu => "celu",
            HardTanh => "hard_tanh",
            SoftShrink => "soft_shrink",
            HardShrink => "hard_shrink",
            Squareplus => "squareplus",
            SparsePlus => "sparse_plus",
            SparseSigmoid => "sparse_sigmoid",
            Softmax => "softmax",
            LogSoftmax => "log_softmax",
            Affine { .. } => "affine",
            ScaledTanh { .. } => "scaled_tanh",
            ThresholdedRelu { .. } => "thresholded_relu",
            KerasRelu { .. } => "relu",
        }
    }

    /// Keras's `relu(x, negative_slope, max_value, threshold)`, as the parameterless
    /// activation it is when it is one.
    pub fn keras_relu(negative_slope: f32, max_value: Option<f32>, threshold: f32) -> Self {
        match (negative_slope, max_value, threshold) {
            (0.0, None, 0.0) => Activation::Relu,
            (0.0, Some(6.0), 0.0) => Activation::Relu6,
            (slope, None, 0.0) => Activation::LeakyRelu {
                negative_slope: slope,
            },
            _ => Activation::KerasRelu {
                negative_slope,
                max_value,
                threshold,
            },
        }
    }

    /// Parses an ONNX `RNN` activation name with its `activation_alpha` / `activation_beta`
    /// (`None` takes ONNX's default, where it has one).
    ///
    /// # Errors
    /// [`RnnError::UnknownActivation`] for a name the ONNX `RNN` operator does not list, or for
    /// `Affine` / `ScaledTanh` without both parameters.
    pub fn from_onnx(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Self> {
        use Activation::*;
        let need = |v: Option<f32>, what: &str| {
            v.ok_or_else(|| RnnError::UnknownActivation(format!("{name} needs activation_{what}")))
        };
        Ok(match name.to_ascii_lowercase().as_str() {
            "relu" => Relu,
            "tanh" => Tanh,
            "sigmoid" => Sigmoid,
            "softsign" => Softsign,
            "softplus" => Softplus,
            "affine" => Affine {
                alpha: need(alpha, "alpha")?,
                beta: need(beta, "beta")?,
            },
            "scaledtanh" => ScaledTanh {
                alpha: need(alpha, "alpha")?,
                beta: need(beta, "beta")?,
            },
            "leakyrelu" => LeakyRelu {
                negative_slope: alpha.unwrap_or(0.01),
            },
            "thresholdedrelu" => ThresholdedRelu {
                alpha: alpha.unwrap_or(1.0),
            },
            "hardsigmoid" => HardSigmoid {
                alpha: alpha.unwrap_or(0.2),
                beta: beta.unwrap_or(0.5),
            },
            "elu" => Elu {
                alpha: alpha.unwrap_or(1.0),
            },
            _ => return Err(RnnError::UnknownActivation(name.to_string())),
        })
    }

    /// The activation's parameters as the shader takes them (`ACT_ALPHA`, `ACT_BETA`).
    pub(crate) fn shader_params(self) -> (f32, f32) {
        use Activation::*;
        match self {
            HardSigmoid { alpha, beta } | Affine { alpha, beta } | ScaledTanh { alpha, beta } => {
                (alpha, beta)
            }
            Elu { alpha } | ThresholdedRelu { alpha } => (alpha, 0.0),
            LeakyRelu { negative_slope } => (negative_slope, 0.0),
            KerasRelu {
                negative_slope,
                threshold,
                ..
            } => (negative_slope, threshold),
            _ => (0.0, 0.0),
        }
    }

    /// The activation's third parameter as the shader takes it (`ACT_GAMMA`): a capped relu's
    /// `max_value`, -1 without a cap (pipeline constants must be finite; Keras refuses a
    /// negative cap).
    pub(crate) fn shader_gamma(self) -> f32 {
        match self {
            Activation::KerasRelu { max_value, .. } => max_value.unwrap_or(-1.0),
            _ => 0.0,
        }
    }

    /// True for the activations that act across the units of a row (softmax, log_softmax).
    pub fn is_row_wise(self) -> bool {
        matches!(self, Activation::Softmax | Activation::LogSoftmax)
    }

    /// The number `shaders/activations.wgsl` knows this activation by (its `ACTIVATION` override).
    /// Row-wise activations run as linear in the step kernel and then in their own kernel.
    pub(crate) fn shader_code(self) -> u32 {
        use Activation::*;
        match self {
            Linear | Softmax | LogSoftmax => 0,
            Tanh => 1,
            Relu => 2,
            Sigmoid => 3,
            HardSigmoid { .. } => 4,
            Elu { .. } => 5,
            Selu => 6,
            Softplus => 7,
            Softsign => 8,
            Gelu => 9,
            Silu => 10,
            Exponential => 11,
            Relu6 => 12,
            LeakyRelu { .. } => 13,
            Mish => 14,
            HardSilu => 15,
            LogSigmoid => 16,
            TanhShrink => 17,
            Celu => 18,
            HardTanh => 19,
            SoftShrink => 20,
            HardShrink => 21,
            Squareplus => 22,
            SparsePlus => 23,
            SparseSigmoid => 24,
            Affine { .. } => 25,
            ScaledTanh { .. } => 26,
            ThresholdedRelu { .. } => 27,
            KerasRelu { .. } => 28,
        }
    }

    /// Applies an elementwise activation to one value.
    ///
    /// Row-wise activations are not elementwise: use [`Activation::apply_row`] for them (this
    /// function returns `x` unchanged for them).
    pub fn apply(self, x: f32) -> f32 {
        use Activation::*;
        match self {
            Linear | Softmax | LogSoftmax => x,
            Tanh => x.tanh(),
            Relu => {
                if x < 0.0 {
                    0.0
                } else {
                    x
                }
            }
            Sigmoid => sigmoid(x),
            HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * x.exp_m1()
                }
            }
            Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * x.exp_m1()
                }
            }
            Softplus => softplus(x),
            Softsign => x / (1.0 + x.abs()),
            Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
            Silu => x * sigmoid(x),
            Exponential => x.exp(),
            Relu6 => relu6(x),
            LeakyRelu { negative_slope } => {
                if x < 0.0 {
                    negative_slope * x
                } else {
                    x
                }
            }
            Mish => x * softplus(x).tanh(),
            // Keras's order: x · (relu6(x + 3) / 6), which is x itself for huge x.
            HardSilu => x * (relu6(x + 3.0) / 6.0),
            LogSigmoid => -softplus(-x),
            TanhShrink => x - x.tanh(),
            Celu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            HardTanh => x.clamp(-1.0, 1.0),
            // Keras's `where(x > t, ..., where(x < -t, ..., 0))`: NaN takes the 0 branch.
            SoftShrink => {
                if x > SHRINK_THRESHOLD {
                    x - SHRINK_THRESHOLD
                } else if x < -SHRINK_THRESHOLD {
                    x + SHRINK_THRESHOLD
                } else {
                    0.0
                }
            }
            // Keras's `where(|x| > t, x, 0)`: NaN takes the 0 branch.
            HardShrink => {
                if x.abs() > SHRINK_THRESHOLD {
                    x
                } else {
                    0.0
                }
            }
            Squareplus => (x + (x * x + SQUAREPLUS_B).sqrt()) / 2.0,
            SparsePlus => {
                if x <= -1.0 {
                    0.0
                } else if x >= 1.0 {
                    x
                } else {
                    (x + 1.0) * (x + 1.0) / 4.0
                }
            }
            SparseSigmoid => {
                if x <= -1.0 {
                    0.0
                } else if x >= 1.0 {
                    1.0
                } else {
                    0.5 * (x + 1.0)
                }
            }
            Affine { alpha, beta } => alpha * x + beta,
            ScaledTanh { alpha, beta } => alpha * (beta * x).tanh(),
            ThresholdedRelu { alpha } => {
                if x <= alpha {
                    0.0
                } else {
                    x
                }
            }
            KerasRelu {
                negative_slope,
                max_value,
                threshold,
            } => keras_relu(x, negative_slope, max_value, threshold),
        }
    }

    /// Applies the activation to one row of *M* units in place: elementwise for most, across the
    /// row for softmax and log_softmax.
    pub fn apply_row(self, row: &mut [f32]) {
        match self {
            Activation::Softmax | Activation::LogSoftmax => {
                // Subtracting the row maximum keeps exp from overflowing, as Keras does.
                let max = row.iter().copied().fold(f32::NEG_INFINITY, |m, v| {
                    if v > m || v.is_nan() { v } else { m }
                });
                let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
                if self == Activation::Softmax {
                    row.iter_mut().for_each(|v| *v = (*v - max).exp() / sum);
                } else {
                    let log_sum = sum.ln();
                    row.iter_mut().for_each(|v| *v = (*v - max) - log_sum);
                }
            }
            _ => row.iter_mut().for_each(|v| *v = self.apply(*v)),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = RnnError;

    fn from_str(s: &str) -> Result<Self> {
        Activation::from_keras_name(s)
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keras_name())
    }
}

/// Keras 3's `ReLU.static_call` step by step (JAX's `relu` and `clip` keep NaN, its `where`
/// takes the else branch for it).
fn keras_relu(x: f32, negative_slope: f32, max_value: Option<f32>, threshold: f32) -> f32 {
    let relu = |v: f32| if v < 0.0 { 0.0 } else { v };
    let negative_part = if threshold != 0.0 {
        relu(-x + threshold)
    } else {
        relu(-x)
    };
    let mut y = if threshold != 0.0 {
        if x > threshold { x } else { 0.0 }
    } else if max_value == Some(6.0) {
        relu6(x)
    } else {
        relu(x)
    };
    if let Some(max) = max_value.filter(|m| threshold != 0.0 || *m != 6.0)
        && !y.is_nan()
    {
        y = y.clamp(0.0, max);
    }
    if negative_slope != 0.0 {
        y -= negative_slope * negative_part;
    }
    y
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn relu6(x: f32) -> f32 {
    // f32::clamp keeps NaN, as Keras does.
    x.clamp(0.0, 6.0)
}

/// `log(1 + exp(x))` without overflow: `max(x, 0) + log1p(exp(-|x|))`.
fn softplus(x: f32) -> f32 {
    let positive = if x > 0.0 { x } else { 0.0 };
    positive + (-x.abs()).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Activation::ALL.iter().filter(|a| a.shader_code() < 25) {
            assert_eq!(Activation::from_keras_name(a.keras_name()).unwrap(), *a);
        }
        for name in Activation::KERAS_NAMES {
            assert!(Activation::from_keras_name(name).is_ok(), "{name}");
        }
        assert!(matches!(
            Activation::from_keras_name("tanhh"),
            Err(RnnError::UnknownActivation(_))
        ));
    }

    #[test]
    fn nan_propagates_through_every_elementwise_activation_but_the_shrinks() {
        for a in Activation::ALL {
            let shrink = matches!(a, Activation::SoftShrink | Activation::HardShrink);
            let y = a.apply(f32::NAN);
            assert_eq!(y.is_nan(), !shrink, "{a}: {y}");
        }
    }

    #[test]
    fn keras_relu_follows_keras_step_by_step() {
        // ReLU(max_value=2, negative_slope=0.1, threshold=0.3), values Keras 3.15 gives.
        let a = Activation::keras_relu(0.1, Some(2.0), 0.3);
        for (x, want) in [
            (-1.0, -0.13),
            (0.2, -0.01),
            (0.3, -0.0),
            (1.0, 1.0),
            (5.0, 2.0),
        ] {
            assert!((a.apply(x) - want).abs() < 1e-6, "{x}: {}", a.apply(x));
        }
        assert_eq!(
            Activation::keras_relu(0.0, Some(6.0), 0.0),
            Activation::Relu6
        );
        assert_eq!(Activation::keras_relu(0.0, None, 0.0), Activation::Relu);
        assert!(matches!(
            Activation::keras_relu(0.2, None, 0.0),
            Activation::LeakyRelu { .. }
        ));
        // NaN: the threshold's `where` gives 0, then the negative part NaN.
        assert!(a.apply(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_rows_sum_to_one_even_with_large_values() {
        let mut row = [1000.0, 1001.0, 999.0];
        Activation::Softmax.apply_row(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let mut log_row = [1000.0, 1001.0, 999.0];
        Activation::LogSoftmax.apply_row(&mut log_row);
        assert!((log_row[1] - (-0.407_605_96)).abs() < 1e-5);
    }

    #[test]
    fn shader_codes_are_distinct_for_elementwise() {
        let mut codes: Vec<u32> = Activation::ALL
            .iter()
            .filter(|a| !a.is_row_wise())
            .map(|a| a.shader_code())
            .collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Activation::ALL.len() - 2);
        assert_eq!(codes.last(), Some(&28));
    }
}
