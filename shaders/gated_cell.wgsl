// One step of a gated cell (LSTM, GRU) for a whole batch, after the step's recurrent product
// r = h_in · recurrent_kernel (+ GRU's recurrent bias) was written by the projection GEMM: one
// thread per (row, unit) combines the gates of P (the input projection, time-major, G·M per row)
// and r into h_out and c_out, as src/cell.rs describes (Keras's gate order, equations and masked
// steps), and stores h as step `step` of the sequence output when asked. No loops: the work per
// invocation is fixed. `activate_with` comes from activations.wgsl and `Step` from
// step_params.wgsl, prepended when the module is built.

@group(0) @binding(0) var<storage, read> p: array<f32>;
@group(0) @binding(1) var<storage, read> r: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read> c_in: array<f32>;
@group(0) @binding(5) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;
@group(0) @binding(7) var<uniform> params: Step;
@group(0) @binding(8) var<storage, read> mask: array<u32>;

// 1: LSTM (gates i, f, c, o); 2: GRU with the reset gate after the recurrent product (z, r, h).
override CELL: u32 = 1u;
// The gates' activation (Keras's recurrent_activation), numbered as ACTIVATION is.
override REC_ACTIVATION: u32 = 3u;
override REC_ALPHA: f32 = 0.0;
override REC_BETA: f32 = 0.0;

fn act(x: f32) -> f32 {
    return activate_with(ACTIVATION, ACT_ALPHA, ACT_BETA, x);
}

fn rec(x: f32) -> f32 {
    return activate_with(REC_ACTIVATION, REC_ALPHA, REC_BETA, x);
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= n * m) {
        return;
    }
    let row = e / m;
    let j = e % m;
    let gates = select(3u, 4u, CELL == 1u);
    let time = select(params.step, params.t_len - 1u - params.step, (params.flags & 32u) != 0u);
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let at = (out * n + row) * m + j;
    if ((params.flags & 8u) != 0u && mask[time * n + row] == 0u) {
        // A padded step keeps h and c; its output is the kept state or zeros (bit 4).
        let kept = h_in[e];
        h_out[e] = kept;
        c_out[e] = c_in[e];
        if ((params.flags & 1u) != 0u) {
            y[at] = select(0.0, kept, (params.flags & 16u) != 0u);
        }
        return;
    }
    let xb = (time * n + row) * gates * m + j;
    let rb = row * gates * m + j;
    var h = 0.0;
    if (CELL == 1u) {
        let i = rec(p[xb] + r[rb]);
        let f = rec(p[xb + m] + r[rb + m]);
        let g = act(p[xb + 2u * m] + r[rb + 2u * m]);
        let o = rec(p[xb + 3u * m] + r[rb + 3u * m]);
        let c = f * c_in[e] + i * g;
        c_out[e] = c;
        h = o * act(c);
    } else {
        let z = rec(p[xb] + r[rb]);
        let q = rec(p[xb + m] + r[rb + m]);
        let cand = act(p[xb + 2u * m] + q * r[rb + 2u * m]);
        h = z * h_in[e] + (1.0 - z) * cand;
        c_out[e] = 0.0;
    }
    h_out[e] = h;
    if ((params.flags & 1u) != 0u) {
        y[at] = h;
    }
}
