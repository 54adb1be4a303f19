// One step of a gated cell (LSTM, GRU) for a whole batch, fused: the step's recurrent product
// h_in · U onto every gate of a unit, the gates' nonlinearities and the state update, as
// src/cell.rs describes them (Keras's gate order, equations and masked steps), storing h as step
// `step` of the sequence output when asked. P (the input projection, biases included) and Y are
// time-major: step s of row n at (s · n_rows + n) · G · M and (s · n_rows + n) · M.
// `activate_with` comes from activations.wgsl and `Step` from step_params.wgsl, prepended when
// the module is built.
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

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> params: Step;
@group(0) @binding(7) var<storage, read> mask: array<u32>;
@group(0) @binding(8) var<storage, read_write> partial: array<f32>;

// 1: LSTM (gates i, f, c, o); 2: GRU, reset gate after the product (z, r, h); 3 and 4: the two
// phases of a GRU with the reset gate before the product.
override CELL: u32 = 1u;
// The gates' activation (Keras's recurrent_activation), numbered as ACTIVATION is.
override REC_ACTIVATION: u32 = 3u;
override REC_ALPHA: f32 = 0.0;
override REC_BETA: f32 = 0.0;
// An LSTM's cell state activation (ONNX's h).
override OUT_ACTIVATION: u32 = 1u;
override OUT_ALPHA: f32 = 0.0;
override OUT_BETA: f32 = 0.0;
// Each gate's pre-activation is clamped to [-CLIP, CLIP]; 0 means none.
override CLIP: f32 = 0.0;
// An LSTM's forget gate is 1 - i.
override INPUT_FORGET: bool = false;
// U is followed by the cell's vector: an LSTM's peepholes (3·M: i, f, o) or a GRU's recurrent
// bias (3·M: z, r, h).
override HAS_VECTOR: bool = false;
// Batch rows each thread computes: 1 or 4.
override ROWS_PER_THREAD: u32 = 4u;

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

fn first_gate() -> u32 {
    return select(0u, 2u, CELL == 4u);
}

// Gate blocks in a row of P, U and `partial`.
fn all_gates() -> u32 {
    return select(3u, 4u, CELL == 1u);
}

// h slab, row-major: up to 64 rows × 2 quads of k.
var<workgroup> h_tile: array<vec4<f32>, 128>;
// U slab: per gate, 8 k × 16 quads of units.
var<workgroup> u_tile: array<vec4<f32>, 512>;

fn act(x: f32) -> f32 {
    return activate_with(ACTIVATION, ACT_ALPHA, ACT_BETA, x);
}

fn pre(x: f32) -> f32 {
    if (CLIP > 0.0) {
        return clamp(x, -CLIP, CLIP);
    }
    return x;
}

fn rec(x: f32) -> f32 {
    return activate_with(REC_ACTIVATION, REC_ALPHA, REC_BETA, pre(x));
}

// Element k of the product's left side for a row: h, or in phase 2 the q·h phase 1 left.
fn operand(row: u32, k: u32) -> f32 {
    if (CELL == 4u) {
        return partial[row * 3u * params.m + k];
    }
    return h_in[row * params.m + k];
}

fn load_h(row: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < params.n) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (kk + j < params.k_end) {
                v[j] = operand(row, kk + j);
            }
        }
    }
    return v;
}

// Units unit .. unit + 3 of gate g at depth kk.
fn load_u(kk: u32, g: u32, unit: u32) -> vec4<f32> {
    let m = params.m;
    var v = vec4<f32>(0.0);
    if (kk < params.k_end) {
        let base = kk * all_gates() * m + g * m;
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (unit + j < m) {
                v[j] = u[base + unit + j];
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
    return u[params.m * all_gates() * params.m + i];
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
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let at = (out * n + row) * m + j;
    if ((params.flags & 8u) != 0u && mask[time * n + row] == 0u) {
        // A padded step keeps h and c; its output is the kept state or zeros (bit 4).
        let kept = h_in[e];
        h_out[e] = kept;
        if ((params.flags & 1u) != 0u) {
            y[at] = select(0.0, kept, (params.flags & 16u) != 0u);
        }
        return;
    }
    var h = 0.0;
    if (CELL == 1u) {
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
        h = o * activate_with(OUT_ACTIVATION, OUT_ALPHA, OUT_BETA, c_new);
    } else if (CELL == 2u) {
        let z = rec(p[xb] + r[0] + vector(j));
        let q = rec(p[xb + m] + r[1] + vector(m + j));
        let cand = act(pre(p[xb + 2u * m] + q * (r[2] + vector(2u * m + j))));
        h = z * h_in[e] + (1.0 - z) * cand;
    } else {
        let z = partial[row * gm + m + j];
        let cand = act(pre(p[xb + 2u * m] + r[0]));
        h = z * h_in[e] + (1.0 - z) * cand;
    }
    h_out[e] = h;
    if ((params.flags & 1u) != 0u) {
        y[at] = h;
    }
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
    // acc[g * 4 + i]: gate g, the thread's row i, its 4 units.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i = i + 1u) {
        acc[i] = vec4<f32>(0.0);
    }
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
            for (var g = 0u; g < g_count; g = g + 1u) {
                let b = g * 128u + q * 64u + tx;
                let b0 = u_tile[b];
                let b1 = u_tile[b + 16u];
                let b2 = u_tile[b + 32u];
                let b3 = u_tile[b + 48u];
                for (var i = 0u; i < ROWS_PER_THREAD; i = i + 1u) {
                    let a = h_tile[(ty * ROWS_PER_THREAD + i) * 2u + q];
                    acc[g * 4u + i] = acc[g * 4u + i] + a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
                }
            }
        }
        workgroupBarrier();
    }
    let gm = all_gates() * m;
    let last = params.k_end >= m;
    for (var i = 0u; i < ROWS_PER_THREAD; i = i + 1u) {
        let row = row0 + ty * ROWS_PER_THREAD + i;
        if (row >= params.n) {
            continue;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let unit = unit0 + tx * 4u + j;
            if (unit >= m) {
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
