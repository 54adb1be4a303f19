//! The CPU step of the gated cells (LSTM, both GRUs), as `src/cell.rs` describes them.

use ndarray::{ArrayViewMut2, ArrayViewMut3};

use super::kernels::{
    lstm_row_standard, matmul_acc_strided, matmul_strided, padded_stride, tanh_in_place,
};
use super::{CpuRnn, PARALLEL_STEP_FLOPS, Slice, fill_rows, store_step};
use crate::activation::Activation;
use crate::cell::Cell;
use crate::layer::{SimpleRnn, state_rows};

impl CpuRnn {
    /// [`CpuRnn::run_slice`] for a gated cell (LSTM, GRU): the projection covers the *G*·*M*
    /// gate columns. An LSTM's step product adds onto the step's block of the projection in
    /// place; a GRU's fills a block of its own (from the recurrent bias or zeros), which goes
    /// inside the reset gate. [`gated_step_row`] then turns each row into *h* and *c*.
    pub(super) fn run_gated_slice(
        &self,
        cell: Cell,
        slice: Slice<'_, '_>,
        mut final_state: ArrayViewMut2<'_, f32>,
        mut sequences: Option<ArrayViewMut3<'_, f32>>,
        final_cell: Option<ArrayViewMut2<'_, f32>>,
    ) {
        let layer = &self.layer;
        let (d, m) = (layer.input_dim(), layer.units());
        let gm = cell.gates() * m;
        // Rows of the projection and of the recurrent products lie `ps` floats apart.
        let ps = padded_stride(gm);
        let (_, t, _) = slice.input.dim();
        let (b0, nb) = (slice.b0, final_state.nrows());
        let schedule = slice.schedule;
        let recurrent_kernel = self.weights.recurrent.strided();
        // h is P wide for a projected LSTM; the cell's own output o·act(c), M wide, goes to
        // `full` and through the projection.
        let width = layer.state_size();
        let projection = self.weights.projection.as_ref().map(|p| p.strided());
        let mut full = vec![0.0f32; if projection.is_some() { nb * m } else { 0 }];
        let mut projected = vec![0.0f32; if projection.is_some() { nb * width } else { 0 }];
        let mut h = state_rows(slice.initial_state.as_ref(), b0..b0 + nb, width);
        let mut c = state_rows(slice.initial_cell.as_ref(), b0..b0 + nb, m);

        let chunk = (slice.chunk_floats / (nb * (d + ps)).max(1)).clamp(1, t);
        let mut x = vec![0.0f32; chunk * nb * d];
        let mut p = vec![0.0f32; chunk * nb * ps];
        let mut r = vec![0.0f32; if cell == Cell::Lstm { 0 } else { nb * ps }];
        let mut scratch = vec![0.0f32; m];
        // GRU (reset_after=False): q·h, the left side of the candidate's product.
        let mut reset = vec![
            0.0f32;
            if cell == Cell::GruResetBefore {
                nb * m
            } else {
                0
            }
        ];
        let mut real = vec![true; chunk * nb];
        let fns = GateFunctions::of(layer);
        // An LSTM adds its bias as it takes the gates (one pass over the projection fewer).
        let (kernel, lstm_bias) = match cell {
            Cell::Lstm => ((&self.weights.kernel, None), lstm_bias(self.bias(), gm)),
            _ => ((&self.weights.kernel, self.bias()), Vec::new()),
        };
        let bias = layer.recurrent_bias().map(|b| b.as_slice().expect("owned"));
        for s0 in (0..t).step_by(chunk) {
            let ns = chunk.min(t - s0);
            let p = &mut p[..ns * nb * ps];
            slice.project(kernel, (s0, ns, nb), (&mut x, &mut real), (p, ps));
            for s in 0..ns {
                let parallel = slice.parallel_gemm && nb * m * gm >= PARALLEL_STEP_FLOPS;
                let real = &real[s * nb..(s + 1) * nb];
                let p = &mut p[s * nb * ps..(s + 1) * nb * ps];
                match cell {
                    Cell::Lstm => {
                        matmul_acc_strided(
                            (nb, width, gm),
                            (p, ps),
                            &h,
                            recurrent_kernel,
                            parallel,
                        );
                        // A padded step keeps h and c.
                        for b in (0..nb).filter(|&b| real[b]) {
                            let out = match projection {
                                Some(_) => &mut full[b * m..][..m],
                                None => &mut h[b * m..][..m],
                            };
                            let c = &mut c[b * m..][..m];
                            let pre = (&mut p[b * ps..][..gm], &lstm_bias[..]);
                            lstm_step_row(pre, (out, c), &fns, &mut scratch);
                        }
                    }
                    Cell::GruResetBefore => {
                        // z and q from h · U[:, ..2M]; then the candidate's product (q·h) ·
                        // U[:, 2M..].
                        let zq = 2 * m;
                        let (u, us) = recurrent_kernel;
                        fill_rows((&mut r, ps), bias, gm);
                        matmul_acc_strided((nb, m, zq), (&mut r, ps), &h, (u, us), parallel);
                        for b in 0..nb {
                            let gates = &mut r[b * ps..][..zq];
                            gru_reset_gates(&p[b * ps..][..zq], gates, &fns);
                            let q = &gates[m..];
                            let rows = b * m..(b + 1) * m;
                            reset[rows.clone()]
                                .iter_mut()
                                .zip(q.iter().zip(&h[rows]))
                                .for_each(|(o, (q, h))| *o = q * h);
                        }
                        matmul_acc_strided(
                            (nb, m, m),
                            (&mut r[zq..], ps),
                            &reset,
                            (&u[zq..], us),
                            parallel,
                        );
                        for b in (0..nb).filter(|&b| real[b]) {
                            let (x, r) = (&p[b * ps..][..gm], &mut r[b * ps..][..gm]);
                            gru_step_row(cell, x, r, &mut h[b * m..][..m], &fns, &mut scratch);
                        }
                    }
                    _ => {
                        fill_rows((&mut r, ps), bias, gm);
                        let (u, us) = recurrent_kernel;
                        matmul_acc_strided((nb, m, gm), (&mut r, ps), &h, (u, us), parallel);
                        for b in (0..nb).filter(|&b| real[b]) {
                            let (x, r) = (&p[b * ps..][..gm], &mut r[b * ps..][..gm]);
                            gru_step_row(cell, x, r, &mut h[b * m..][..m], &fns, &mut scratch);
                        }
                    }
                }
                if let Some(projection) = projection {
                    let shape = (nb, m, width);
                    matmul_strided(shape, (&mut projected, width), &full, projection, parallel);
                    for b in (0..nb).filter(|&b| real[b]) {
                        h[b * width..][..width].copy_from_slice(&projected[b * width..][..width]);
                    }
                }
                if let Some(seq) = sequences.as_mut() {
                    store_step(seq, schedule, (b0, s0 + s), &h, real);
                }
            }
        }
        final_state.iter_mut().zip(&h).for_each(|(o, v)| *o = *v);
        if let Some(mut final_cell) = final_cell {
            final_cell.iter_mut().zip(&c).for_each(|(o, v)| *o = *v);
        }
    }
}

/// What a gated cell applies to its gates' pre-activations, from the layer's options.
pub(super) struct GateFunctions<'a> {
    /// The candidate's activation (Keras's `activation`).
    act: Activation,
    /// The gates' activation (`recurrent_activation`).
    rec: Activation,
    /// An LSTM's cell state activation.
    out: Activation,
    clip: Option<f32>,
    input_forget: bool,
    /// An LSTM's peepholes, 3·*M*: i, f, o.
    peepholes: Option<&'a [f32]>,
}

impl<'a> GateFunctions<'a> {
    pub(super) fn of(layer: &'a SimpleRnn) -> Self {
        let config = layer.config();
        GateFunctions {
            act: config.activation,
            rec: config.recurrent_activation,
            out: config.cell_output_activation(),
            clip: config.clip,
            input_forget: config.input_forget,
            peepholes: layer.peepholes().map(|p| p.as_slice().expect("owned")),
        }
    }

    /// Whether these are an LSTM's defaults in every framework (sigmoid gates, tanh candidate
    /// and cell output; no clip, coupling or peepholes), which [`lstm_row_standard`] computes
    /// in one pass.
    fn standard_lstm(&self) -> bool {
        self.rec == Activation::Sigmoid
            && self.act == Activation::Tanh
            && self.out == Activation::Tanh
            && self.clip.is_none()
            && !self.input_forget
            && self.peepholes.is_none()
    }

    /// Clips (when asked) and activates one gate block in place.
    fn apply(&self, activation: Activation, values: &mut [f32]) {
        if let Some(clip) = self.clip {
            values.iter_mut().for_each(|v| *v = v.clamp(-clip, clip));
        }
        activate_in_place(activation, values);
    }
}

/// An LSTM's bias as [`lstm_step_row`] takes it: the layer's, or zeros (*G*·*M*).
pub(super) fn lstm_bias(bias: Option<&[f32]>, gm: usize) -> Vec<f32> {
    bias.map_or_else(|| vec![0.0; gm], <[f32]>::to_vec)
}

/// A GRU's gates z and q (reset) for one row, in place in `r` (2·*M*: the recurrent products,
/// to which the input products `x` are added).
fn gru_reset_gates(x: &[f32], r: &mut [f32], fns: &GateFunctions<'_>) {
    r.iter_mut().zip(x).for_each(|(r, x)| *r += x);
    fns.apply(fns.rec, r);
}

/// One LSTM step for one row: `pre` + `bias` are the gates' pre-activations i, f, c, o (4·*M*,
/// `pre` both products, overwritten), `out` receives o·act(c) (*h*, or what a projection
/// takes) and `c` is updated in place. Each activation runs over a whole gate block at once, so
/// the common ones vectorise ([`activate_in_place`]); Keras's defaults take one fused pass.
pub(super) fn lstm_step_row(
    (pre, bias): (&mut [f32], &[f32]),
    (out, c): (&mut [f32], &mut [f32]),
    fns: &GateFunctions<'_>,
    scratch: &mut [f32],
) {
    if fns.standard_lstm() {
        lstm_row_standard(pre, bias, out, c);
        return;
    }
    pre.iter_mut().zip(bias).for_each(|(p, b)| *p += b);
    let m = c.len();
    let (i_f, rest) = pre.split_at_mut(2 * m);
    let (g, o) = rest.split_at_mut(m);
    if let Some(p) = fns.peepholes {
        i_f.iter_mut()
            .zip(p[..2 * m].iter().zip(c.iter().chain(c.iter())))
            .for_each(|(v, (p, c))| *v += p * c);
    }
    let (i, f) = i_f.split_at_mut(m);
    fns.apply(fns.rec, i);
    if fns.input_forget {
        f.iter_mut().zip(i.iter()).for_each(|(f, i)| *f = 1.0 - i);
    } else {
        fns.apply(fns.rec, f);
    }
    fns.apply(fns.act, g);
    for j in 0..m {
        c[j] = f[j] * c[j] + i[j] * g[j];
    }
    if let Some(p) = fns.peepholes {
        o.iter_mut()
            .zip(p[2 * m..].iter().zip(c.iter()))
            .for_each(|(v, (p, c))| *v += p * c);
    }
    fns.apply(fns.rec, o);
    scratch.copy_from_slice(c);
    activate_in_place(fns.out, scratch);
    for j in 0..m {
        out[j] = o[j] * scratch[j];
    }
}

/// One GRU step for one row: `x` and `r` are the row's input and recurrent products (3·*M*
/// each, biases included; `r` is overwritten with the gates; for [`Cell::GruResetBefore`] its
/// z and q blocks hold the gates already and its candidate block the product of q·h), `h` the
/// state, updated in place.
pub(super) fn gru_step_row(
    cell: Cell,
    x: &[f32],
    r: &mut [f32],
    h: &mut [f32],
    fns: &GateFunctions<'_>,
    scratch: &mut [f32],
) {
    let m = h.len();
    let (zq, cand) = r.split_at_mut(2 * m);
    if cell == Cell::Gru {
        // The candidate's recurrent product goes inside the reset gate.
        gru_reset_gates(&x[..2 * m], zq, fns);
        for j in 0..m {
            scratch[j] = x[2 * m + j] + zq[m + j] * cand[j];
        }
    } else {
        // The gates were made before the candidate's product, which holds q·h already.
        for j in 0..m {
            scratch[j] = x[2 * m + j] + cand[j];
        }
    }
    fns.apply(fns.act, scratch);
    let z = &zq[..m];
    for j in 0..m {
        h[j] = z[j] * h[j] + (1.0 - z[j]) * scratch[j];
    }
}

/// `activation` of every element, in place: tanh and sigmoid (as ½ + ½·tanh(x/2)) through the
/// vectorised tanh, the others element by element.
fn activate_in_place(activation: Activation, values: &mut [f32]) {
    match activation {
        Activation::Tanh => tanh_in_place(values),
        Activation::Sigmoid => {
            values.iter_mut().for_each(|v| *v *= 0.5);
            tanh_in_place(values);
            values.iter_mut().for_each(|v| *v = 0.5 + 0.5 * *v);
        }
        other => values.iter_mut().for_each(|v| *v = other.apply(*v)),
    }
}
