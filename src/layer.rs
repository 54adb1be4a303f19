//! What a SimpleRNN layer means: its weights, its options and the shapes it takes. Both backends
//! read this one description; loaders translate files into it and do no math.

use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayView3, ArrayViewD};

use crate::activation::Activation;
use crate::cell::Cell;
use crate::error::{Result, RnnError};

/// Where the state after each step goes in the sequence output when the input is read backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputOrder {
    /// Output step `s` is the `s`-th step processed (Keras's `go_backwards`).
    #[default]
    Processing,
    /// Output step `t` is the state after reading input step `t` (PyTorch's and ONNX's reverse
    /// direction).
    Input,
}

/// Which steps of each sequence are real, and which are padding.
#[derive(Clone, Copy, Debug, Default)]
pub enum Padding<'a> {
    /// Every step of every sequence is real.
    #[default]
    None,
    /// Keras masking: `mask[n, t]` (*N* × *T*) false makes step `t` of sequence `n` keep the
    /// previous state, and its output be that state (zeros instead with
    /// [`SimpleRnnConfig::zero_output_for_mask`]), as Keras 3 computes it.
    Mask(ArrayView2<'a, bool>),
    /// PyTorch's packed sequences and ONNX's `sequence_lens`: sequence `n` is the first
    /// `lengths[n]` steps (1 ≤ length ≤ *T*). A reversed layer starts at each sequence's own last
    /// real step; outputs at padded steps are zeros; the final state is the last real step's.
    Lengths(&'a [usize]),
}

/// The options of a Keras `SimpleRNN` layer that change what it computes, plus the two that
/// PyTorch and ONNX need (`output_order`, `clip`).
///
/// `Default` gives Keras's defaults: `tanh`, no `return_sequences`, no `go_backwards`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimpleRnnConfig {
    /// Applied to `x_t · kernel + bias + h_{t-1} · recurrent_kernel` (the simple cell), to the
    /// candidate and the cell state (LSTM), to the candidate (GRU).
    pub activation: Activation,
    /// The gates' activation of LSTM and GRU (Keras's `recurrent_activation`, default
    /// `sigmoid`); the simple cell has no gates and ignores it.
    pub recurrent_activation: Activation,
    /// Return the state after every step (*N* × *T* × *M*) instead of the last one (*N* × *M*).
    pub return_sequences: bool,
    /// Read the input from the last step to the first. With `return_sequences`, output step 0
    /// belongs to the last input step (Keras returns the sequence in processing order).
    pub go_backwards: bool,
    /// Where outputs go under `go_backwards` (Keras: processing order).
    pub output_order: OutputOrder,
    /// Clip the pre-activation to `[-clip, clip]` (ONNX's `clip`); `None` for no clipping.
    pub clip: Option<f32>,
    /// Under a Keras mask, output zeros at masked steps instead of the carried state (Keras's
    /// `zero_output_for_mask`, which `Bidirectional` turns on for its layers).
    pub zero_output_for_mask: bool,
    /// LSTM only: the activation of the cell state in `h = o · act(c)` (ONNX's third LSTM
    /// activation, *h*); `None` uses `activation`, as Keras and PyTorch do.
    pub output_activation: Option<Activation>,
    /// LSTM only: couple the forget gate to the input gate, `f = 1 - i` (ONNX's
    /// `input_forget=1`); the forget gate's weights are then unused.
    pub input_forget: bool,
}

impl Default for SimpleRnnConfig {
    fn default() -> Self {
        SimpleRnnConfig {
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            return_sequences: false,
            go_backwards: false,
            output_order: OutputOrder::Processing,
            clip: None,
            zero_output_for_mask: false,
            output_activation: None,
            input_forget: false,
        }
    }
}

impl SimpleRnnConfig {
    /// The activation of an LSTM's cell state: `output_activation`, else `activation`.
    pub fn cell_output_activation(&self) -> Activation {
        self.output_activation.unwrap_or(self.activation)
    }
}

/// A recurrent layer: Keras's `SimpleRNN`,
/// `h_t = activation(x_t · kernel + bias + h_{t-1} · recurrent_kernel)`, or with another
/// [`Cell`] an `LSTM` or a `GRU` ([`SimpleRnn::gated`]).
///
/// Weights follow Keras's layout: `kernel` is *D* × *G*·*M*, `recurrent_kernel` is
/// *M* × *G*·*M*, `bias` has *G*·*M* entries (absent when the layer was built with
/// `use_bias=False`), where *D* is the number of input features, *M* the number of units and *G*
/// the cell's gates ([`Cell::gates`]: 1, 4 for LSTM, 3 for GRU), packed in Keras's gate order.
#[derive(Clone, Debug)]
pub struct SimpleRnn {
    cell: Cell,
    kernel: Array2<f32>,
    recurrent_kernel: Array2<f32>,
    bias: Option<Array1<f32>>,
    /// GRU's bias of the recurrent product (*G*·*M*); zeros where the layer has no bias.
    recurrent_bias: Option<Array1<f32>>,
    /// An LSTM's peephole weights (3·*M*: i, f, o).
    peepholes: Option<Array1<f32>>,
    /// An LSTM's output projection (*M* × *P*): the state is `(o · act(c)) · projection`.
    projection: Option<Array2<f32>>,
    /// The simple cell's leaky_relu slopes, one per unit or one for all (Keras's `PReLU` as
    /// the activation).
    unit_slopes: Option<Array1<f32>>,
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
        Self::gated(Cell::Simple, kernel, recurrent_kernel, bias, None, config)
    }

    /// Builds a layer of any [`Cell`] from Keras-layout weights: `kernel` *D* × *G*·*M*,
    /// `recurrent_kernel` *M* × *G*·*M*, `bias` *G*·*M* (the first row of a GRU's 2 × 3*M* bias),
    /// `recurrent_bias` *G*·*M* (the second row; GRU only).
    ///
    /// # Errors
    /// [`RnnError::EmptyDimension`] when *D* or *M* is 0; [`RnnError::ShapeMismatch`] when the
    /// kernel's columns are not a multiple of the gates, `recurrent_kernel` is not
    /// *M* × *G*·*M*, or a bias does not have *G*·*M* entries; [`RnnError::InvalidOption`] for
    /// a recurrent bias on a cell that has none, a row-wise activation (softmax) on a gated
    /// cell, or an LSTM-only option ([`SimpleRnnConfig::output_activation`],
    /// [`SimpleRnnConfig::input_forget`]) on another cell.
    pub fn gated(
        cell: Cell,
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
        recurrent_bias: Option<Array1<f32>>,
        config: SimpleRnnConfig,
    ) -> Result<Self> {
        let g = cell.gates();
        let (d, columns) = kernel.dim();
        if !columns.is_multiple_of(g) {
            return Err(RnnError::shape(
                "kernel",
                format!("[D, {g}·M] (the {cell} gates' columns)"),
                kernel.shape(),
            ));
        }
        let m = columns / g;
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
        if recurrent_kernel.dim() != (m, g * m) {
            let expected = if g == 1 {
                format!("[{m}, {m}] (M × M, M from the kernel's columns)")
            } else {
                format!("[{m}, {}] (M × {g}·M, M from the kernel's columns)", g * m)
            };
            return Err(RnnError::shape(
                "recurrent_kernel",
                expected,
                recurrent_kernel.shape(),
            ));
        }
        for (name, b) in [("bias", &bias), ("recurrent bias", &recurrent_bias)] {
            if let Some(b) = b
                && b.len() != g * m
            {
                let expected = if g == 1 {
                    format!("[{m}] (M)")
                } else {
                    format!("[{}] ({g}·M)", g * m)
                };
                return Err(RnnError::shape(name, expected, b.shape()));
            }
        }
        if recurrent_bias.is_some() && !cell.has_recurrent_bias() {
            return Err(RnnError::InvalidOption(format!(
                "a {cell} has no recurrent bias"
            )));
        }
        check_cell_options(cell, &config)?;
        Ok(SimpleRnn {
            cell,
            kernel: kernel.as_standard_layout().into_owned(),
            recurrent_kernel: recurrent_kernel.as_standard_layout().into_owned(),
            bias,
            recurrent_bias,
            peepholes: None,
            projection: None,
            unit_slopes: None,
            config,
        })
    }

    /// Builds an LSTM whose state is projected (PyTorch's `nn.LSTM(proj_size=P)`): the cell has
    /// *M* units and the state *h* = `(o · act(c)) · projection` has *P*; `kernel` is
    /// *D* × 4*M*, `recurrent_kernel` *P* × 4*M* (it multiplies the projected state),
    /// `projection` *M* × *P* (`weight_hr` transposed), `bias` 4*M*. The output and *h* are
    /// *P* wide, *c* is *M* wide.
    ///
    /// # Errors
    /// As [`SimpleRnn::gated`] for the kernel and bias; [`RnnError::ShapeMismatch`] when
    /// `projection` is not *M* × *P* with *P* ≥ 1 or `recurrent_kernel` is not *P* × 4*M*.
    pub fn projected_lstm(
        kernel: Array2<f32>,
        recurrent_kernel: Array2<f32>,
        bias: Option<Array1<f32>>,
        projection: Array2<f32>,
        config: SimpleRnnConfig,
    ) -> Result<Self> {
        let (m, p) = projection.dim();
        if m == 0 || p == 0 || kernel.ncols() != 4 * m {
            return Err(RnnError::shape(
                "projection",
                format!(
                    "[M, P] (M = {} from the kernel's 4·M columns)",
                    kernel.ncols() / 4
                ),
                projection.shape(),
            ));
        }
        if recurrent_kernel.dim() != (p, 4 * m) {
            return Err(RnnError::shape(
                "recurrent_kernel",
                format!("[{p}, {}] (P × 4·M)", 4 * m),
                recurrent_kernel.shape(),
            ));
        }
        // Validated as an unprojected LSTM of the same cell, then given its true U.
        let square = Array2::zeros((m, 4 * m));
        let mut layer = SimpleRnn::gated(Cell::Lstm, kernel, square, bias, None, config)?;
        layer.recurrent_kernel = recurrent_kernel.as_standard_layout().into_owned();
        layer.projection = Some(projection.as_standard_layout().into_owned());
        Ok(layer)
    }

    /// An LSTM's output projection (*M* × *P*), when it has one.
    pub fn projection(&self) -> Option<&Array2<f32>> {
        self.projection.as_ref()
    }

    /// The width of the state *h* and of the output: *P* for a projected LSTM, else *M*.
    pub fn state_size(&self) -> usize {
        self.projection.as_ref().map_or(self.units(), |p| p.ncols())
    }

    /// Adds an LSTM's peephole weights, 3·*M* entries in the order i, f, o: the i and f
    /// pre-activations add `p_i·c` and `p_f·c` of the previous cell state, o's adds `p_o·c'` of
    /// the new one (ONNX's `P`, which is ordered i, o, f: reorder it first).
    ///
    /// # Errors
    /// [`RnnError::InvalidOption`] on a cell other than LSTM; [`RnnError::ShapeMismatch`] when
    /// `peepholes` does not have 3·*M* entries.
    pub fn with_peepholes(mut self, peepholes: Array1<f32>) -> Result<Self> {
        if self.cell != Cell::Lstm {
            return Err(RnnError::InvalidOption(format!(
                "peepholes on a {}: only an LSTM has them",
                self.cell
            )));
        }
        let m = self.units();
        if peepholes.len() != 3 * m {
            return Err(RnnError::shape(
                "peepholes",
                format!("[{}] (3·M: i, f, o)", 3 * m),
                peepholes.shape(),
            ));
        }
        self.peepholes = Some(peepholes);
        Ok(self)
    }

    /// An LSTM's peephole weights (3·*M*: i, f, o), when it has them.
    pub fn peepholes(&self) -> Option<&Array1<f32>> {
        self.peepholes.as_ref()
    }

    /// Gives the activation a slope per unit: Keras's `PReLU` layer as a SimpleRNN's
    /// activation, `relu(x) - alpha_j · relu(-x)` for unit *j*, which is `leaky_relu` with
    /// slope `alpha_j`. `slopes` holds *M* entries, or one shared by every unit (a PReLU with
    /// `shared_axes=[1]`); they replace the activation's own `negative_slope`.
    ///
    /// # Errors
    /// [`RnnError::InvalidOption`] on a gated cell (its kernels apply one activation to every
    /// unit) or when the activation is not [`Activation::LeakyRelu`];
    /// [`RnnError::ShapeMismatch`] when `slopes` has neither *M* entries nor one.
    pub fn with_unit_slopes(mut self, slopes: Array1<f32>) -> Result<Self> {
        if self.cell != Cell::Simple {
            return Err(RnnError::InvalidOption(format!(
                "a slope per unit on a {}: only the simple cell's activation takes them",
                self.cell
            )));
        }
        let m = self.units();
        if slopes.len() != m && slopes.len() != 1 {
            return Err(RnnError::shape(
                "unit slopes",
                format!("[{m}] (M) or [1]"),
                slopes.shape(),
            ));
        }
        self.unit_slopes = Some(slopes);
        check_slopes(&self.unit_slopes, &self.config)?;
        Ok(self)
    }

    /// The activation's slope per unit (*M* entries, or one for all), when it has them
    /// ([`SimpleRnn::with_unit_slopes`]).
    pub fn unit_slopes(&self) -> Option<&Array1<f32>> {
        self.unit_slopes.as_ref()
    }

    /// The slopes of [`SimpleRnn::with_unit_slopes`] as *M* values, one per unit.
    pub(crate) fn slopes_per_unit(&self) -> Option<Vec<f32>> {
        let slopes = self.unit_slopes.as_ref()?;
        Some(
            (0..self.units())
                .map(|j| slopes[j % slopes.len()])
                .collect(),
        )
    }

    /// Applies the simple cell's activation in place to one row of pre-activations of units
    /// `first_unit ..` (a whole row of *M* from 0, or a range of it): the configured one, with
    /// each unit's slope when the layer has them.
    pub(crate) fn activate_row(&self, row: &mut [f32], first_unit: usize) {
        match &self.unit_slopes {
            Some(slopes) => row.iter_mut().enumerate().for_each(|(j, v)| {
                let negative_slope = slopes[(first_unit + j) % slopes.len()];
                *v = Activation::LeakyRelu { negative_slope }.apply(*v);
            }),
            None => self.config.activation.apply_row(row),
        }
    }

    /// The cell: simple, LSTM or GRU.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// GRU's recurrent bias (*G*·*M*), when the layer has one.
    pub fn recurrent_bias(&self) -> Option<&Array1<f32>> {
        self.recurrent_bias.as_ref()
    }

    /// *D*, the number of input features.
    pub fn input_dim(&self) -> usize {
        self.kernel.nrows()
    }

    /// *M*, the number of units (the size of the state).
    pub fn units(&self) -> usize {
        self.kernel.ncols() / self.cell.gates()
    }

    /// The input kernel, *D* × *G*·*M*, in standard (row-major) layout.
    pub fn kernel(&self) -> &Array2<f32> {
        &self.kernel
    }

    /// The recurrent kernel, *M* × *G*·*M* (*P* × 4·*M* for a projected LSTM), in standard
    /// (row-major) layout.
    pub fn recurrent_kernel(&self) -> &Array2<f32> {
        &self.recurrent_kernel
    }

    /// The bias, *G*·*M* entries, or `None` for a layer without bias.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }

    /// The layer's options.
    pub fn config(&self) -> &SimpleRnnConfig {
        &self.config
    }

    /// Changes the layer's options, keeping its weights.
    ///
    /// # Errors
    /// As [`SimpleRnn::gated`] for options a gated cell does not run;
    /// [`RnnError::InvalidOption`] for an activation other than leaky_relu on a layer with
    /// [`SimpleRnn::unit_slopes`].
    pub fn with_config(self, config: SimpleRnnConfig) -> Result<Self> {
        check_cell_options(self.cell, &config)?;
        check_slopes(&self.unit_slopes, &config)?;
        Ok(SimpleRnn { config, ..self })
    }

    /// Checks an initial cell state (*N* × *M*, LSTM only) against the layer and a batch of `n`.
    ///
    /// # Errors
    /// [`RnnError::InvalidOption`] for a cell state on a cell without one;
    /// [`RnnError::ShapeMismatch`] when it is not *N* × *M*.
    pub fn check_initial_cell(&self, n: usize, c0: Option<&ArrayView2<'_, f32>>) -> Result<()> {
        let Some(c0) = c0 else {
            return Ok(());
        };
        if !self.cell.has_cell_state() {
            return Err(RnnError::InvalidOption(format!(
                "an initial cell state was given, but a {} has none",
                self.cell
            )));
        }
        if c0.dim() != (n, self.units()) {
            return Err(RnnError::shape(
                "initial cell state",
                format!("[{n}, {}] (N × M)", self.units()),
                c0.shape(),
            ));
        }
        Ok(())
    }

    /// Checks an input (*N* × *T* × *D*) and optional initial state (*N* ×
    /// [`SimpleRnn::state_size`]) against the layer.
    ///
    /// # Errors
    /// [`RnnError::EmptyDimension`] when *N* or *T* is 0; [`RnnError::ShapeMismatch`] when the
    /// input's last axis is not *D* or the initial state is not *N* × *M*.
    pub fn check_input(
        &self,
        input: &ArrayView3<'_, f32>,
        initial_state: Option<&ArrayView2<'_, f32>>,
    ) -> Result<()> {
        self.check_padded_input(input, initial_state, &Padding::None)
    }

    /// [`SimpleRnn::check_input`], plus the padding: a mask must be *N* × *T*, lengths must have
    /// *N* entries between 1 and *T*.
    ///
    /// # Errors
    /// As [`SimpleRnn::check_input`]; [`RnnError::ShapeMismatch`] for a mask or lengths of the
    /// wrong size; [`RnnError::BadLength`] for a length of 0 or past *T*.
    pub fn check_padded_input(
        &self,
        input: &ArrayView3<'_, f32>,
        initial_state: Option<&ArrayView2<'_, f32>>,
        padding: &Padding<'_>,
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
            && h0.dim() != (n, self.state_size())
        {
            return Err(RnnError::shape(
                "initial state",
                format!("[{n}, {}] (N × M)", self.state_size()),
                h0.shape(),
            ));
        }
        if let Some(clip) = self.config.clip
            && (clip.is_nan() || clip <= 0.0)
        {
            return Err(RnnError::InvalidOption(format!(
                "clip must be positive, got {clip}"
            )));
        }
        match padding {
            Padding::None => {}
            Padding::Mask(mask) => {
                if mask.dim() != (n, t) {
                    return Err(RnnError::shape(
                        "mask",
                        format!("[{n}, {t}] (N × T)"),
                        mask.shape(),
                    ));
                }
            }
            Padding::Lengths(lengths) => {
                if lengths.len() != n {
                    return Err(RnnError::shape(
                        "lengths",
                        format!("[{n}] (N)"),
                        &[lengths.len()],
                    ));
                }
                if let Some((i, &len)) = lengths
                    .iter()
                    .enumerate()
                    .find(|(_, l)| **l == 0 || **l > t)
                {
                    return Err(RnnError::BadLength {
                        index: i,
                        length: len,
                        steps: t,
                    });
                }
            }
        }
        Ok(())
    }

    /// The order of the steps for this layer and padding.
    pub(crate) fn schedule<'a>(&self, t: usize, padding: Padding<'a>) -> Schedule<'a> {
        Schedule {
            t,
            reverse: self.config.go_backwards,
            order: self.config.output_order,
            zero_output: self.config.zero_output_for_mask,
            padding,
        }
    }
}

/// Refuses the options a cell does not run.
fn check_cell_options(cell: Cell, config: &SimpleRnnConfig) -> Result<()> {
    let lstm_only = [
        ("output_activation", config.output_activation.is_some()),
        ("input_forget", config.input_forget),
    ];
    if let Some((name, _)) = lstm_only.iter().find(|(_, set)| *set)
        && cell != Cell::Lstm
    {
        return Err(RnnError::InvalidOption(format!(
            "{name} on a {cell}: only an LSTM has it"
        )));
    }
    let row_wise = [
        config.activation,
        config.recurrent_activation,
        config.cell_output_activation(),
    ]
    .iter()
    .any(|a| a.is_row_wise());
    if cell != Cell::Simple && row_wise {
        return Err(RnnError::InvalidOption(format!(
            "a {cell} with a softmax activation is not supported"
        )));
    }
    Ok(())
}

/// Refuses unit slopes with an activation other than leaky_relu (they are its slopes).
fn check_slopes(slopes: &Option<Array1<f32>>, config: &SimpleRnnConfig) -> Result<()> {
    match (slopes, config.activation) {
        (Some(_), a) if !matches!(a, Activation::LeakyRelu { .. }) => Err(RnnError::InvalidOption(
            format!("a slope per unit with the activation {a}: they are leaky_relu's slopes"),
        )),
        _ => Ok(()),
    }
}

/// Rows `rows` of an initial state (*N* × *M*), flattened, or zeros without one: what a
/// backend's slice of the batch (a core, a chunk) starts from.
pub(crate) fn state_rows(
    state: Option<&ArrayView2<'_, f32>>,
    rows: std::ops::Range<usize>,
    m: usize,
) -> Vec<f32> {
    match state {
        Some(s0) => s0.slice(ndarray::s![rows, ..]).iter().copied().collect(),
        None => vec![0.0; rows.len() * m],
    }
}

/// Which input step each (sequence, processing step) reads and where its output goes. Both
/// backends follow it, so padding and direction mean the same on both.
pub(crate) struct Schedule<'a> {
    t: usize,
    reverse: bool,
    order: OutputOrder,
    zero_output: bool,
    padding: Padding<'a>,
}

impl Schedule<'_> {
    /// The input step that sequence `b` reads at processing step `s`, or `None` at a padded step
    /// (the state is kept).
    pub(crate) fn input_time(&self, b: usize, s: usize) -> Option<usize> {
        let t = self.t;
        match self.padding {
            Padding::None => Some(if self.reverse { t - 1 - s } else { s }),
            Padding::Mask(mask) => {
                let time = if self.reverse { t - 1 - s } else { s };
                mask[[b, time]].then_some(time)
            }
            Padding::Lengths(lengths) => {
                let len = lengths[b];
                (s < len).then(|| if self.reverse { len - 1 - s } else { s })
            }
        }
    }

    /// Where the output of sequence `b` at processing step `s` goes in the sequence output.
    pub(crate) fn output_position(&self, b: usize, s: usize) -> usize {
        match self.order {
            OutputOrder::Processing => s,
            OutputOrder::Input => match self.padding {
                Padding::Lengths(lengths) if s >= lengths[b] => s,
                Padding::Lengths(lengths) if self.reverse => lengths[b] - 1 - s,
                _ if self.reverse => self.t - 1 - s,
                _ => s,
            },
        }
    }

    /// True when some step may be padding.
    pub(crate) fn has_padding(&self) -> bool {
        !matches!(self.padding, Padding::None)
    }

    /// True when a padded step outputs the carried state (a Keras mask), false when it outputs
    /// zeros (lengths, or `zero_output_for_mask`).
    pub(crate) fn padded_output_is_state(&self) -> bool {
        matches!(self.padding, Padding::Mask(_)) && !self.zero_output
    }

    /// Completes a backend's result with the last output: Keras's `outputs[-1]`, which under
    /// `zero_output_for_mask` is zeros for a sequence whose last processed step is masked, and
    /// the final state otherwise.
    pub(crate) fn finish(
        &self,
        sequences: Option<Array3<f32>>,
        final_state: Array2<f32>,
    ) -> RnnOutput {
        let mut last_output = final_state.clone();
        if matches!(self.padding, Padding::Mask(_)) && self.zero_output {
            for b in 0..final_state.nrows() {
                if self.input_time(b, self.t - 1).is_none() {
                    last_output.row_mut(b).fill(0.0);
                }
            }
        }
        RnnOutput {
            sequences,
            last_output,
            final_state,
            final_cell: None,
        }
    }
}

/// What a forward pass returns.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RnnOutput {
    /// The output after every step, *N* × *T* × *M*; `Some` only with `return_sequences`.
    pub sequences: Option<Array3<f32>>,
    /// The output of the last step, *N* × *M*: what Keras returns without `return_sequences`.
    /// It differs from `final_state` only under `zero_output_for_mask` when a sequence's last
    /// processed step is masked.
    pub last_output: Array2<f32>,
    /// The state after the last step, *N* × *M* (Keras's `return_state`, PyTorch's `h_n`).
    pub final_state: Array2<f32>,
    /// An LSTM's cell state after the last step, *N* × *M* (PyTorch's `c_n`); `None` for cells
    /// without one.
    pub final_cell: Option<Array2<f32>>,
}

impl RnnOutput {
    /// The layer's output as Keras gives it: the sequences with `return_sequences`, else the
    /// final state.
    pub fn output(&self) -> ArrayViewD<'_, f32> {
        match &self.sequences {
            Some(seq) => seq.view().into_dyn(),
            None => self.last_output.view().into_dyn(),
        }
    }
}

/// A recurrent layer ready to run on one backend. [`crate::CpuRnn`] and [`crate::GpuRnn`]
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
    ) -> Result<RnnOutput> {
        self.forward_padded(input, initial_state, Padding::None)
    }

    /// [`RnnForward::forward`] over padded sequences (a Keras mask or per-sequence lengths).
    ///
    /// # Errors
    /// As [`SimpleRnn::check_padded_input`]; backends add their own.
    fn forward_padded(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput> {
        self.forward_states(input, initial_state, None, padding)
    }

    /// [`RnnForward::forward_padded`] from an initial state *h* and, for an LSTM, an initial
    /// cell state *c* (*N* × *M*, zeros when `None`); [`RnnOutput::final_cell`] holds the last.
    ///
    /// # Errors
    /// As [`RnnForward::forward_padded`] and [`SimpleRnn::check_initial_cell`].
    fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        initial_state: Option<ArrayView2<'_, f32>>,
        initial_cell: Option<ArrayView2<'_, f32>>,
        padding: Padding<'_>,
    ) -> Result<RnnOutput>;

    /// A short name of the backend, for messages (`"cpu"`, `"gpu"`).
    fn backend_name(&self) -> &'static str;
}
