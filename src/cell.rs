//! What a recurrent cell computes, described once: the CPU path, the GPU kernels and the loaders
//! all read this description.
//!
//! Every cell first projects the input onto its packed gates, `x_t · kernel + bias` (*D* ×
//! *G*·*M*, one GEMM over all steps), then per step multiplies the state onto the same gates,
//! `h_{t-1} · recurrent_kernel` (*M* × *G*·*M*), and combines the two. Gates are packed in
//! Keras's order, each a block of *M* columns.

/// A recurrent cell, with Keras 3's equations (`act` is the layer's `activation`, `rec` its
/// `recurrent_activation`; `x`, `r` the input and recurrent products of one gate's block).
///
/// Options the frameworks add apply to every gated cell as [`crate::SimpleRnnConfig`] and
/// [`crate::SimpleRnn::with_peepholes`] describe them: `clip` clamps each gate's
/// pre-activation to [-clip, clip] before its activation (ONNX); an LSTM's cell state may go
/// through its own `output_activation` (ONNX's *h*); `input_forget` couples an LSTM's forget
/// gate to its input gate, `f = 1 - i`; peepholes add `p_i·c`, `p_f·c` to the i and f
/// pre-activations and `p_o·c'` to o's (ONNX's `P`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Cell {
    /// Keras's `SimpleRNN`: one gate, `h = act(x + r)`.
    #[default]
    Simple,
    /// Keras's `LSTM`: gates i, f, c, o; `i = rec(x_i + r_i)`, `f = rec(x_f + r_f)`,
    /// `g = act(x_c + r_c)`, `o = rec(x_o + r_o)`, `c' = f·c + i·g`, `h' = o·act(c')`. The state
    /// is *h* and the cell state *c*.
    Lstm,
    /// Keras's `GRU` with `reset_after=True` (its default; PyTorch's `nn.GRU` and ONNX's
    /// `linear_before_reset=1` compute the same): gates z, r, h; the recurrent product has its
    /// own bias `b_r` (the second row of Keras's 2 × 3*M* bias), `z = rec(x_z + r_z)`,
    /// `q = rec(x_r + r_r)`, `n = act(x_h + q·r_h)`, `h' = z·h + (1 - z)·n`.
    Gru,
    /// Keras's `GRU` with `reset_after=False` (ONNX's default `linear_before_reset=0`): the
    /// reset gate multiplies the state before its product, `n = act(x_h + (q·h)·U_h)`, so each
    /// step takes two recurrent products, the second after the gates z, q. All biases are
    /// outside the products and add to the input projection.
    GruResetBefore,
}

impl Cell {
    /// Gates per unit: the kernels have this many blocks of *M* columns.
    pub fn gates(self) -> usize {
        match self {
            Cell::Simple => 1,
            Cell::Lstm => 4,
            Cell::Gru | Cell::GruResetBefore => 3,
        }
    }

    /// Whether the cell carries a cell state *c* beside *h* (LSTM).
    pub fn has_cell_state(self) -> bool {
        self == Cell::Lstm
    }

    /// Whether the recurrent product has a bias of its own (GRU's `reset_after`).
    pub fn has_recurrent_bias(self) -> bool {
        self == Cell::Gru
    }

    /// The Keras layer class: `SimpleRNN`, `LSTM` or `GRU`.
    pub fn keras_class(self) -> &'static str {
        match self {
            Cell::Simple => "SimpleRNN",
            Cell::Lstm => "LSTM",
            Cell::Gru | Cell::GruResetBefore => "GRU",
        }
    }

    /// The number the GPU kernels select the cell by (`CELL` in `shaders/gated_step.wgsl`).
    pub(crate) fn shader_code(self) -> u32 {
        match self {
            Cell::Simple => 0,
            Cell::Lstm => 1,
            Cell::Gru => 2,
            Cell::GruResetBefore => 3,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::GruResetBefore => f.write_str("GRU (reset_after=False)"),
            cell => f.write_str(cell.keras_class()),
        }
    }
}
