//! What a SimpleRNN layer means: its weights, its options and the shapes it takes. Both backends
//! read this one description; loaders translate files into it and do no math.

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewD};

use crate::activation::Activation;
use crate::error::{Result, RnnError};

/// The options of a Keras `SimpleRNN` layer that change what it computes.
///
/// `Default` gives Keras's defaults: `tanh`, no `return_sequences`, no `go_backwards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimpleRnnConfig {
    /// Applied to `x_t · kernel + bias + h_{t-1} · recurrent_kernel`.
    pub activation: Activation,
    /// Return the state after every step (*N* × *T* × *M*) instead of the last one (*N* × *M*).
    pub return_sequences: bool,
    /// Read the input from the last step to the first. With `return_sequences`, output step 0
    /// belongs to the last input step (Keras returns the sequence in processing order).
    pub go_backwards: bool,
}

impl Default for SimpleRnnConfig {
    fn default() -> Self {
        SimpleRnnConfig {
            activation: Activation::Tanh,
            return_sequences: false,
            go_backwards: false,
        }
    }
}

/// A Keras `SimpleRNN` layer: `h_t = activation(x_t · kernel + bias + h_{t-1} · recurrent_kernel)`.
///
/// Weights follow Keras's layout: `kernel` is *D* × *M*, `recurrent_kernel` is *M* × *M*,
/// `bias` has *M* entries (absent when the layer was built with `use_bias=False`), where *D* is
/// the number of input features and *M* the number of units.
#[derive(Clone, Debug)]
pub struct SimpleRnn {
    kernel: Array2<f32>,
    recurrent_kernel: Array2<f32>,
    bias: Option<Array1<f32>>,
    config: SimpleRnnConfig,
}

impl SimpleRnn {
    /// Builds a layer from Keras-layout weights.
    ///
    /// # Errors
    /// [`RnnError::EmptyDimension`] when *D* or *M* is 0; [`RnnError::ShapeMismatch`] when
    /// `recurrent_kernel` is not *M* × *M* or `bias` does not have *M* entries.
    pub fn new(
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
        config: SimpleRnnConfig,
    ) -> Result<Self> {
        let (d, m) = kernel.dim();
        if d == 0 {
            return Err(RnnError::EmptyDimension {
                what: "kernel rows (input features D)".into(),
            });
        }
        if m == 0 {
            return Err(RnnError::EmptyDimension {
                what: "kernel columns (units M)".into(),
            });
        }
        if recurrent_kernel.dim() != (m, m) {
            return Err(RnnError::shape(
                "recurrent_kernel",
                format!("[{m}, {m}] (M × M, M from the kernel's columns)"),
                recurrent_kernel.shape(),
            ));
        }
        if let Some(b) = &bias
            && b.len() != m
        {
            return Err(RnnError::shape("bias", format!("[{m}] (M)"), b.shape()));
        }
        Ok(SimpleRnn {
            kernel: kernel.as_standard_layout().into_owned(),
            recurrent_kernel: recurrent_kernel.as_standard_layout().into_owned(),
            bias,
            config,
        })
    }

    /// *D*, the number of input features.
    pub fn input_dim(&self) -> usize {
        self.kernel.nrows()
    }

    /// *M*, the number of units (the size of the state).
    pub fn units(&self) -> usize {
        self.kernel.ncols()
    }

    /// The input kernel, *D* × *M*, in standard (row-major) layout.
    pub fn kernel(&self) -> &Array2<f32> {
        &self.kernel
    }

    /// The recurrent kernel, *M* × *M*, in standard (row-major) layout.
    pub fn recurrent_kernel(&self) -> &Array2<f32> {
        &self.recurrent_kernel
    }

    /// The bias, *M* entries, or `None` for a layer without bias.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }

    /// The layer's options.
    pub fn config(&self) -> &SimpleRnnConfig {
        &self.config
    }

    /// Changes the layer's options, keeping its weights.
    pub fn with_config(mut self, config: SimpleRnnConfig) -> Self {
        self.config = config;
        self
    }

    /// Checks an input (*N* × *T* × *D*) and optional initial state (*N* × *M*) against the layer.
    ///
    /// # Errors
    /// [`RnnError::EmptyDimension`] when *N* or *T* is 0; [`RnnError::ShapeMismatch`] when the
    /// input's last axis is not *D* or the initial state is not *N* × *M*.
    pub fn check_input(
        &self,
        input: &ArrayView3<'_, f32>,
        initial_state: Option<&ArrayView2<'_, f32>>,
    ) -> Result<()> {
        let (n, t, d) = input.dim();
        if n == 0 {
            return Err(RnnError::EmptyDimension {
                what: "batch size N".into(),
            });
        }
        if t == 0 {
            return Err(RnnError::EmptyDimension {
                what: "time steps T".into(),
            });
        }
        if d != self.input_dim() {
            return Err(RnnError::shape(
                "input",
                format!(
                    "[N, T, {}] (features D from the kernel's rows)",
                    self.input_dim()
                ),
                input.shape(),
            ));
        }
        if let Some(h0) = initial_state
            && h0.dim() != (n, self.units())
        {
            return Err(RnnError::shape(
                "initial state",
                format!("[{n}, {}] (N × M)", self.units()),
                h0.shape(),
            ));
        }
        Ok(())
    }

    /// The input time step read at processing step `s` of `t` (reversed under `go_backwards`).
    pub(crate) fn input_step(&self, s: usize, t: usize) -> usize {
        if self.config.go_backwards {
            t - 1 - s
        } else {
            s
        }
    }
}

/// What a forward pass returns.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnOutput {
    /// The state after every processing step, *N* × *T* × *M*; `Some` only with `return_sequences`.
    pub sequences: Option<Array3<f32>>,
    /// The state after the last step, *N* × *M* (Keras's `return_state`).
    pub final_state: Array2<f32>,
}

impl RnnOutput {
    /// The layer's output as Keras gives it: the sequences with `return_sequences`, else the
    /// final state.
    pub fn output(&self) -> ArrayViewD<'_, f32> {
        match &self.sequences {
            Some(seq) => seq.view().into_dyn(),
            None => self.final_state.view().into_dyn(),
        }
    }
}

/// A SimpleRNN layer ready to run on one backend. [`crate::CpuRnn`] and [`crate::GpuRnn`]
/// implement it, so callers can pick a backend at run time.
pub trait RnnForward: Send + Sync {
    /// The layer this backend runs.
    fn layer(&self) -> &SimpleRnn;

    /// Runs the layer on `input` (*N* × *T* × *D*) from `initial_state` (*N* × *M*, zeros when
    /// `None`).
    ///
    /// # Errors
    /// As [`SimpleRnn::check_input`]; backends add their own (see each one's `forward`).
    fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
    ) -> Result<RnnOutput>;

    /// A short name of the backend, for messages (`"cpu"`, `"gpu"`).
    fn backend_name(&self) -> &'static str;
}
