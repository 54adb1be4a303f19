// One step of a gated cell (LSTM, GRU) for a whole batch, fused: the step's recurrent product
// h_in · U onto every gate of a unit, the gates' nonlinearities and the state update, as
// src/cell.rs describes them (Keras's gate order, equations and masked steps), storing h as step
// `step` of the sequence output when asked. P (the input projection, biases included) and Y are
// time-major: step s of row n at (s · n_rows + n) · G · M and (s · n_rows + n) · M.
// `activate_with` comes from activations.wgsl, `Step` from step_params.wgsl, the bindings,
// constants and act/pre/rec from gated_common.wgsl, prepended when the module is built.
//
// Register-tiled like recurrent_step.wgsl: 16 × 16 threads, each computing ROWS_PER_THREAD rows ×
// 4 units × GATES gates, so a workgroup covers (16 · ROWS_PER_THREAD) rows × 64 units.
//
// One dispatch walks the product's depth from params.k_begin to params.k_end only: the host cuts
// a wide layer's step into such dispatches (`plan::gated_step_spans`) so that no invocation
// loops past the loop budget. Every span but the last leaves its sums in `partial` (N × G·M);
// the last adds them and finishes the step.
//
// A GRU with reset_after=False runs two dispatch sequences per step. Phase 1 (CELL 3) takes the
// product onto the z and q gates and leaves, in the row's `partial` block, q·h in place of z and
// z in place of q; phase 2 (CELL 4) takes the product of that q·h onto the candidate's columns
// and finishes. An LSTM's cell state `c` is updated in place: each thread reads and writes only
// its own elements, and the product reads h only.
//
// An LSTM with a projection (WIDTH = P > 0: PyTorch's proj_size) also runs two: the cell (CELL
// 1, its product over h's P columns) leaves o·act(c) in the row's `partial` block of i, and the
// projection (CELL 5) multiplies that by W_hr (M × P, after U and the vector) into h and Y,
// keeping its own span sums in the block of f.

const SLAB: u32 = 8u;

// Gates of the product each invocation accumulates, and the first of them.
fn gates() -> u32 {
    switch CELL {
        case 1u: { return 4u; }
        case 2u: { return 3u; }
        case 3u: { return 2u; }
        default: { return 1u; }
    }
}

// The first gate of this phase's product (for CELL 5: the `partial` block its span sums use).
fn first_gate() -> u32 {
    switch CELL {
        case 4u: { return 2u; }
        case 5u: { return 1u; }
        default: { return 0u; }
    }
}

// Gate blocks in a row of P, U and `partial`.
fn all_gates() -> u32 {
    return select(3u, 4u, CELL == 1u || CELL == 5u);
}

// The width of h: P under a projection, else M.
fn width() -> u32 {
    return select(params.m, WIDTH, WIDTH > 0u);
}

// The depth of this phase's product, and the units (columns) it produces.
fn depth() -> u32 {
    return select(width(), params.m, CELL == 5u);
}

fn out_units() -> u32 {
    return select(params.m, WIDTH, CELL == 5u);
}

// h slab, row-major: up to 64 rows × 2 quads of k.
var<workgroup> h_tile: array<vec4<f32>, 128>;
// U slab: per gate, 8 k × 16 quads of units.
var<workgroup> u_tile: array<vec4<f32>, 512>;

// Element k of the product's left side for a row: h, or what the first phase left.
fn operand(row: u32, k: u32) -> f32 {
    if (CELL >= 4u) {
        return partial[row * all_gates() * params.m + k];
    }
    return h_in[row * width() + k];
}

fn load_h(row: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < params.n) {
        if (kk + 3u < params.k_end) {
            // A whole quad: four loads, no bounds to check.
            return vec4<f32>(
                operand(row, kk),
                operand(row, kk + 1u),
                operand(row, kk + 2u),
                operand(row, kk + 3u),
            );
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (kk + j < params.k_end) {
                v[j] = operand(row, kk + j);
            }
        }
    }
    return v;
}

// Where U's rows end: the cell's vector follows, then W_hr.
fn u_end() -> u32 {
    return width() * all_gates() * params.m;
}

// Units unit .. unit + 3 of gate g at depth kk (of W_hr for CELL 5).
fn load_u(kk: u32, g: u32, unit: u32) -> vec4<f32> {
    let m = params.m;
    var v = vec4<f32>(0.0);
    if (kk < params.k_end) {
        var base = kk * all_gates() * m + g * m;
        if (CELL == 5u) {
            base = u_end() + select(0u, 3u * m, HAS_VECTOR) + kk * WIDTH;
        }
        let b = base + unit;
        if (unit + 3u < out_units()) {
            return vec4<f32>(u[b], u[b + 1u], u[b + 2u], u[b + 3u]);
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (unit + j < out_units()) {
                v[j] = u[b + j];
            }
        }
    }
    return v;
}

// The cell's vector, entry i (after U).
fn vector(i: u32) -> f32 {
    if (!HAS_VECTOR) {
        return 0.0;
    }
    return u[u_end() + i];
}

// An LSTM's update of one (row, unit) from its gates' products r: writes c, returns o·act(c).
fn lstm(e: u32, xb: u32, j: u32, r: array<f32, 4>) -> f32 {
    let m = params.m;
    let c_prev = c[e];
    let i = rec(p[xb] + r[0] + vector(j) * c_prev);
    var f = 1.0 - i;
    if (!INPUT_FORGET) {
        f = rec(p[xb + m] + r[1] + vector(m + j) * c_prev);
    }
    let g = act(pre(p[xb + 2u * m] + r[2]));
    let c_new = f * c_prev + i * g;
    c[e] = c_new;
    let o = rec(p[xb + 3u * m] + r[3] + vector(2u * m + j) * c_new);
    return o * activate_with(OUT_ACTIVATION, OUT_ALPHA, OUT_BETA, c_new);
}

// Finishes one (row, unit) whose products are r[g] for the gates this phase takes.
fn finish(row: u32, j: u32, r: array<f32, 4>) {
    let n = params.n;
    let m = params.m;
    let e = row * m + j;
    let gm = all_gates() * m;
    let time = select(params.step, params.t_len - 1u - params.step, (params.flags & 32u) != 0u);
    let xb = (time * n + row) * gm + j;
    if (CELL == 3u) {
        // Leave q·h where z's block was and z where q's was, for phase 2.
        let z = rec(p[xb] + r[0]);
        let q = rec(p[xb + m] + r[1]);
        partial[row * gm + j] = q * h_in[e];
        partial[row * gm + m + j] = z;
        return;
    }
    let padded = (params.flags & 8u) != 0u && mask[time * n + row] == 0u;
    if (CELL == 1u && WIDTH > 0u) {
        // The projection stores h (or keeps it, at a padded step) after the cell.
        if (!padded) {
            partial[row * gm + j] = lstm(e, xb, j, r);
        }
        return;
    }
    // The state's width and where this unit's h goes.
    let w = select(m, WIDTH, CELL == 5u);
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let at = (out * n + row) * w + j;
    let here = row * w + j;
    if (padded) {
        // A padded step keeps h and c; its output is the kept state or zeros (bit 4).
        let kept = h_in[here];
        h_out[here] = kept;
        if ((params.flags & 1u) != 0u) {
            y[at] = select(0.0, kept, (params.flags & 16u) != 0u);
        }
        return;
    }
    var h = 0.0;
    switch CELL {
        case 1u: {
            h = lstm(e, xb, j, r);
        }
        case 2u: {
            let z = rec(p[xb] + r[0] + vector(j));
            let q = rec(p[xb + m] + r[1] + vector(m + j));
            let cand = act(pre(p[xb + 2u * m] + q * (r[2] + vector(2u * m + j))));
            h = z * h_in[e] + (1.0 - z) * cand;
        }
        case 4u: {
            let z = partial[row * gm + m + j];
            let cand = act(pre(p[xb + 2u * m] + r[0]));
            h = z * h_in[e] + (1.0 - z) * cand;
        }
        default: {
            // CELL 5: the projection of o·act(c).
            h = r[0];
        }
    }
    h_out[here] = h;
    if ((params.flags & 1u) != 0u) {
        y[at] = h;
    }
}

// Gate g's four rows of U in the slab's quad q for the thread's quad of units tx.
fn slab_quads(g: u32, q: u32, tx: u32) -> array<vec4<f32>, 4> {
    let b = g * 128u + q * 64u + tx;
    return array<vec4<f32>, 4>(u_tile[b], u_tile[b + 16u], u_tile[b + 32u], u_tile[b + 48u]);
}

// s + a · b: a quad of h times four rows of a quad of U.
fn madd(s: vec4<f32>, a: vec4<f32>, b: array<vec4<f32>, 4>) -> vec4<f32> {
    return s + a.x * b[0] + a.y * b[1] + a.z * b[2] + a.w * b[3];
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let m = params.m;
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let tile_rows = 16u * ROWS_PER_THREAD;
    let row0 = wid.y * tile_rows;
    let unit0 = wid.x * 64u;
    let g_count = gates();
    let g0 = first_gate();
    // s{g}{i}: gate g, the thread's row i, its 4 units. Spelt out, the branches on the gates
    // and ROWS_PER_THREAD constant once the pipeline is built, so that every sum stays in a
    // register: a compiler that does not unroll a loop over an array of sums (llvmpipe) keeps
    // the array in memory, which made this kernel slower than a GEMM and a gate kernel.
    var s00 = vec4<f32>(0.0);
    var s01 = vec4<f32>(0.0);
    var s02 = vec4<f32>(0.0);
    var s03 = vec4<f32>(0.0);
    var s10 = vec4<f32>(0.0);
    var s11 = vec4<f32>(0.0);
    var s12 = vec4<f32>(0.0);
    var s13 = vec4<f32>(0.0);
    var s20 = vec4<f32>(0.0);
    var s21 = vec4<f32>(0.0);
    var s22 = vec4<f32>(0.0);
    var s23 = vec4<f32>(0.0);
    var s30 = vec4<f32>(0.0);
    var s31 = vec4<f32>(0.0);
    var s32 = vec4<f32>(0.0);
    var s33 = vec4<f32>(0.0);
    let h0 = ty * ROWS_PER_THREAD * 2u;
    // k_begin is a whole number of slabs: a slab never straddles two dispatches.
    for (var k0 = params.k_begin; k0 < params.k_end; k0 = k0 + SLAB) {
        if (t < tile_rows * 2u) {
            h_tile[t] = load_h(row0 + t / 2u, k0 + (t % 2u) * 4u);
        }
        // 128 quads per gate: the workgroup's 256 threads take two per pass.
        for (var e = t; e < 128u * g_count; e = e + 256u) {
            let g = e / 128u;
            let w = e % 128u;
            u_tile[e] = load_u(k0 + w / 16u, g0 + g, unit0 + (w % 16u) * 4u);
        }
        workgroupBarrier();
        for (var q = 0u; q < 2u; q = q + 1u) {
            let a0 = h_tile[h0 + q];
            let a1 = h_tile[min(h0 + 2u + q, 127u)];
            let a2 = h_tile[min(h0 + 4u + q, 127u)];
            let a3 = h_tile[min(h0 + 6u + q, 127u)];
            {
                let b = slab_quads(0u, q, tx);
                s00 = madd(s00, a0, b);
                if (ROWS_PER_THREAD > 1u) { s01 = madd(s01, a1, b); }
                if (ROWS_PER_THREAD > 2u) { s02 = madd(s02, a2, b); }
                if (ROWS_PER_THREAD > 3u) { s03 = madd(s03, a3, b); }
            }
            if (g_count > 1u) {
                let b = slab_quads(1u, q, tx);
                s10 = madd(s10, a0, b);
                if (ROWS_PER_THREAD > 1u) { s11 = madd(s11, a1, b); }
                if (ROWS_PER_THREAD > 2u) { s12 = madd(s12, a2, b); }
                if (ROWS_PER_THREAD > 3u) { s13 = madd(s13, a3, b); }
            }
            if (g_count > 2u) {
                let b = slab_quads(2u, q, tx);
                s20 = madd(s20, a0, b);
                if (ROWS_PER_THREAD > 1u) { s21 = madd(s21, a1, b); }
                if (ROWS_PER_THREAD > 2u) { s22 = madd(s22, a2, b); }
                if (ROWS_PER_THREAD > 3u) { s23 = madd(s23, a3, b); }
            }
            if (g_count > 3u) {
                let b = slab_quads(3u, q, tx);
                s30 = madd(s30, a0, b);
                if (ROWS_PER_THREAD > 1u) { s31 = madd(s31, a1, b); }
                if (ROWS_PER_THREAD > 2u) { s32 = madd(s32, a2, b); }
                if (ROWS_PER_THREAD > 3u) { s33 = madd(s33, a3, b); }
            }
        }
        workgroupBarrier();
    }
    // The sums as one array, [g * 4 + i], for the stores.
    let acc = array<vec4<f32>, 16>(
        s00, s01, s02, s03, s10, s11, s12, s13, s20, s21, s22, s23, s30, s31, s32, s33,
    );
    let gm = all_gates() * m;
    let last = params.k_end >= depth();
    for (var i = 0u; i < ROWS_PER_THREAD; i = i + 1u) {
        let row = row0 + ty * ROWS_PER_THREAD + i;
        if (row >= params.n) {
            continue;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let unit = unit0 + tx * 4u + j;
            if (unit >= out_units()) {
                continue;
            }
            var r: array<f32, 4>;
            for (var g = 0u; g < g_count; g = g + 1u) {
                let at = row * gm + (g0 + g) * m + unit;
                var sum = acc[g * 4u + i][j];
                if (params.k_begin > 0u) {
                    sum = sum + partial[at];
                }
                if (!last) {
                    partial[at] = sum;
                }
                r[g] = sum;
            }
            if (last) {
                finish(row, unit, r);
            }
        }
    }
}
