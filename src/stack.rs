//! Stacks of one- or two-direction layers, as PyTorch's `nn.RNN` and ONNX's `RNN` run them: each
//! layer reads the outputs of the one below, both directions side by side.

#[cfg(any(feature = "torch", feature = "onnx"))]
use ndarray::Array2;
use ndarray::{Array3, ArrayView3, Axis, s};

use crate::backend::Backend;
use crate::error::{Result, RnnError};
use crate::layer::{OutputOrder, Padding, RnnForward, SimpleRnn};

/// `layers[k][dir]`: layer `k`, direction 0 (forward) and optionally 1 (reverse). Outputs are in
/// input time order in both directions; padded steps (past a sequence's length) are zeros.
pub struct RnnStack {
    layers: Vec<Vec<Box<dyn RnnForward>>>,
    /// The state's width ([`SimpleRnn::state_size`]).
    units: usize,
    /// The cell state's width ([`SimpleRnn::units`]; differs from `units` under a projection).
    cell_units: usize,
}

/// What a stack returns.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct StackOutput {
    /// The last layer's outputs, *N* × *T* × (dirs·*M*): the forward direction's *M* features,
    /// then the reverse direction's.
    pub output: Array3<f32>,
    /// The final state of every layer and direction, (layers·dirs) × *N* × *M*, layer-major.
    pub h_n: Array3<f32>,
    /// An LSTM's final cell state, shaped as `h_n`; `None` for other cells.
    pub c_n: Option<Array3<f32>>,
}

impl RnnStack {
    /// Builds a stack on `backend`. Each layer's config is set to what a stack needs: sequences
    /// returned, outputs in input time order, and with two directions the second reversed (a
    /// single direction keeps its own `go_backwards`).
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] when the layers do not fit together (every direction must
    /// have the same units, layer `k > 0` must take dirs·*M* features, every layer the same number
    /// of directions); the errors of [`Backend::build`].
    pub fn new(layers: Vec<Vec<SimpleRnn>>, backend: &Backend) -> Result<Self> {
        let first =
            layers
                .first()
                .and_then(|l| l.first())
                .ok_or_else(|| RnnError::EmptyDimension {
                    what: "number of layers".into(),
                })?;
        let (units, cell_units) = (first.state_size(), first.units());
        let dirs = layers[0].len();
        if !(1..=2).contains(&dirs) {
            return Err(RnnError::InvalidOption(format!(
                "{dirs} directions; 1 or 2 are possible"
            )));
        }
        let mut built = Vec::with_capacity(layers.len());
        for (k, layer) in layers.into_iter().enumerate() {
            if layer.len() != dirs {
                return Err(RnnError::InvalidOption(format!(
                    "layer {k} has {} directions, layer 0 has {dirs}",
                    layer.len()
                )));
            }
            let mut directions = Vec::with_capacity(dirs);
            for (dir, rnn) in layer.into_iter().enumerate() {
                if rnn.state_size() != units || rnn.units() != cell_units {
                    return Err(RnnError::shape(
                        format!("layer {k} direction {dir} weights"),
                        format!("{units} units"),
                        &[rnn.input_dim(), rnn.state_size()],
                    ));
                }
                if k > 0 && rnn.input_dim() != dirs * units {
                    return Err(RnnError::shape(
                        format!("layer {k} direction {dir} input weights"),
                        format!("{} input features (dirs × M)", dirs * units),
                        &[rnn.input_dim(), rnn.units()],
                    ));
                }
                let mut config = *rnn.config();
                config.return_sequences = true;
                // Two directions: forward then reverse. One: the layer's own direction.
                if dirs == 2 {
                    config.go_backwards = dir == 1;
                }
                config.output_order = OutputOrder::Input;
                directions.push(backend.build(rnn.with_config(config)?)?);
            }
            built.push(directions);
        }
        Ok(RnnStack {
            layers: built,
            units,
            cell_units,
        })
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// 1, or 2 for a bidirectional stack.
    pub fn directions(&self) -> usize {
        self.layers[0].len()
    }

    /// *M*, the units of every layer: the width of its state and output (*P* for LSTMs with a
    /// projection, whose cell states are [`RnnStack::cell_units`] wide).
    pub fn units(&self) -> usize {
        self.units
    }

    /// The width of an LSTM's cell state: [`RnnStack::units`], or more under a projection.
    pub fn cell_units(&self) -> usize {
        self.cell_units
    }

    /// The cell every layer runs.
    pub fn cell(&self) -> crate::Cell {
        self.layers[0][0].layer().cell()
    }

    /// *D*, the features the first layer takes.
    pub fn input_dim(&self) -> usize {
        self.layers[0][0].layer().input_dim()
    }

    /// Runs the stack on `input` (*N* × *T* × *D*, batch-major) from `h0`
    /// ((layers·dirs) × *N* × *M*, zeros when `None`), over sequences of the given lengths.
    ///
    /// # Errors
    /// [`RnnError::ShapeMismatch`] for an `h0` of the wrong shape; the errors of
    /// [`RnnForward::forward_padded`] (input shape, lengths).
    pub fn forward(
        &self,
        input: ArrayView3<'_, f32>,
        h0: Option<ArrayView3<'_, f32>>,
        lengths: Option<&[usize]>,
    ) -> Result<StackOutput> {
        self.forward_states(input, h0, None, lengths)
    }

    /// [`RnnStack::forward`] with, for a stack of LSTMs, the initial cell states `c0` (shaped
    /// as `h0`, zeros when `None`); [`StackOutput::c_n`] holds the final ones.
    ///
    /// # Errors
    /// As [`RnnStack::forward`]; [`RnnError::ShapeMismatch`] for a `c0` of the wrong shape,
    /// [`RnnError::InvalidOption`] for a `c0` given to cells without a cell state.
    pub fn forward_states(
        &self,
        input: ArrayView3<'_, f32>,
        h0: Option<ArrayView3<'_, f32>>,
        c0: Option<ArrayView3<'_, f32>>,
        lengths: Option<&[usize]>,
    ) -> Result<StackOutput> {
        let (n, t, _) = input.dim();
        let (layers, dirs, m) = (self.num_layers(), self.directions(), self.units);
        let cm = self.cell_units;
        for (name, state, width) in [
            ("initial state h_0", &h0, m),
            ("initial cell state c_0", &c0, cm),
        ] {
            if let Some(state) = state
                && state.dim() != (layers * dirs, n, width)
            {
                return Err(RnnError::shape(
                    name,
                    format!("[{}, {n}, {width}] (layers·dirs × N × M)", layers * dirs),
                    state.shape(),
                ));
            }
        }
        let has_cell = self.layers[0][0].layer().cell().has_cell_state();
        if c0.is_some() && !has_cell {
            return Err(RnnError::InvalidOption(format!(
                "an initial cell state c_0 was given, but a {} has none",
                self.layers[0][0].layer().cell()
            )));
        }
        let padding = lengths.map_or(Padding::None, Padding::Lengths);
        let mut h_n = Array3::<f32>::zeros((layers * dirs, n, m));
        let mut c_n = has_cell.then(|| Array3::<f32>::zeros((layers * dirs, n, cm)));
        let mut current: Option<Array3<f32>> = None;
        for (k, layer) in self.layers.iter().enumerate() {
            let layer_input = current.as_ref().map_or(input, |c| c.view());
            let mut output = Array3::<f32>::zeros((n, t, dirs * m));
            for (dir, rnn) in layer.iter().enumerate() {
                let index = k * dirs + dir;
                let state = h0.as_ref().map(|h| h.index_axis(Axis(0), index));
                let cell = c0.as_ref().map(|c| c.index_axis(Axis(0), index));
                let out = rnn.forward_states(layer_input, state, cell, padding)?;
                let seq = out.sequences.expect("stack layers return sequences");
                output
                    .slice_mut(s![.., .., dir * m..(dir + 1) * m])
                    .assign(&seq);
                h_n.index_axis_mut(Axis(0), index).assign(&out.final_state);
                if let (Some(c_n), Some(c)) = (c_n.as_mut(), &out.final_cell) {
                    c_n.index_axis_mut(Axis(0), index).assign(c);
                }
            }
            current = Some(output);
        }
        Ok(StackOutput {
            output: current.expect("a stack has at least one layer"),
            h_n,
            c_n,
        })
    }
}

/// A layer of one direction from PyTorch's layout, `w_ih` *G*·*M* × *D* and `w_hh` *G*·*M* × *M*
/// (transposed here into Keras's layout): gates stacked as row blocks
/// of *M* (`nn.LSTM`: i, f, g, o, Keras's order; `nn.GRU`: r, z, n, reordered here to Keras's
/// z, r, h). An LSTM's two biases are added; a GRU keeps `b_hh` apart as its recurrent bias,
/// since `b_hn` sits inside the reset gate's product.
#[cfg(feature = "torch")]
pub(crate) fn layer_from_torch(
    cell: crate::Cell,
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    biases: Option<(ndarray::Array1<f32>, ndarray::Array1<f32>)>,
    config: crate::SimpleRnnConfig,
) -> Result<SimpleRnn> {
    let order: Vec<usize> = match cell {
        crate::Cell::Gru => vec![1, 0, 2],
        _ => (0..cell.gates()).collect(),
    };
    layer_from_gate_rows(cell, &order, w_ih, w_hh, biases, config)
}

/// [`layer_from_torch`] with the gates' order given: Keras's gate *k* is the source's row block
/// `order[k]`. The two biases are added, except a [`crate::Cell::Gru`]'s, which keeps the second
/// as its recurrent bias.
#[cfg(any(feature = "torch", feature = "onnx"))]
pub(crate) fn layer_from_gate_rows(
    cell: crate::Cell,
    order: &[usize],
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    biases: Option<(ndarray::Array1<f32>, ndarray::Array1<f32>)>,
    config: crate::SimpleRnnConfig,
) -> Result<SimpleRnn> {
    let m = w_hh.ncols();
    layer_from_gate_rows_projected(cell, order, (w_ih, w_hh, m), biases, None, config)
}

/// [`layer_from_gate_rows`] for a cell of `m` units, with an LSTM's `projection` (`w_hr`,
/// *P* × *M*, transposed here), whose `w_hh` is then 4·*M* × *P*.
#[cfg(any(feature = "torch", feature = "onnx"))]
pub(crate) fn layer_from_gate_rows_projected(
    cell: crate::Cell,
    order: &[usize],
    (w_ih, w_hh, m): (Array2<f32>, Array2<f32>, usize),
    biases: Option<(ndarray::Array1<f32>, ndarray::Array1<f32>)>,
    projection: Option<Array2<f32>>,
    config: crate::SimpleRnnConfig,
) -> Result<SimpleRnn> {
    let g = cell.gates();
    let blocks = |a: &ndarray::ArrayView2<'_, f32>| -> Array2<f32> {
        let views: Vec<_> = order
            .iter()
            .map(|&k| a.slice(s![k * m..(k + 1) * m, ..]))
            .collect();
        ndarray::concatenate(Axis(0), &views).expect("blocks of the same width")
    };
    let vector = |b: &ndarray::Array1<f32>| gate_blocks(b.view(), order, m);
    if w_ih.nrows() != g * m || w_hh.nrows() != g * m {
        return Err(RnnError::shape(
            "weight_ih / weight_hh",
            format!("[{}, …] ({g}·M rows, M = {m})", g * m),
            if w_ih.nrows() != g * m {
                w_ih.shape()
            } else {
                w_hh.shape()
            },
        ));
    }
    let (bias, recurrent_bias) = match biases {
        None => (None, None),
        Some((b_ih, b_hh)) => {
            if b_ih.len() != g * m || b_hh.len() != g * m {
                return Err(RnnError::shape(
                    "bias_ih / bias_hh",
                    format!("[{}]", g * m),
                    if b_ih.len() != g * m {
                        b_ih.shape()
                    } else {
                        b_hh.shape()
                    },
                ));
            }
            match cell {
                crate::Cell::Gru => (Some(vector(&b_ih)), Some(vector(&b_hh))),
                _ => (Some(vector(&(b_ih + b_hh))), None),
            }
        }
    };
    let (kernel, recurrent) = (
        blocks(&w_ih.view()).reversed_axes(),
        blocks(&w_hh.view()).reversed_axes(),
    );
    match projection {
        Some(w_hr) => {
            SimpleRnn::projected_lstm(kernel, recurrent, bias, w_hr.reversed_axes(), config)
        }
        None => SimpleRnn::gated(cell, kernel, recurrent, bias, recurrent_bias, config),
    }
}

/// The blocks of *m* entries of `v` in the order `order` gives (Keras's block *k* is `v`'s block
/// `order[k]`).
#[cfg(any(feature = "torch", feature = "onnx"))]
pub(crate) fn gate_blocks(
    v: ndarray::ArrayView1<'_, f32>,
    order: &[usize],
    m: usize,
) -> ndarray::Array1<f32> {
    order
        .iter()
        .flat_map(|&k| v.slice(s![k * m..(k + 1) * m]).to_vec())
        .collect()
}
