// Many steps of a gated cell (LSTM, GRU) in one dispatch: each workgroup owns ROWS batch rows
// and runs params.count steps from s = params.step on itself, h (two buffers, read and written in
// alternate steps) and c in workgroup memory and a barrier between steps; sequences are
// independent, so workgroups never wait on each other. The host cuts a chunk into such
// dispatches so that no invocation loops past the loop budget; h passes from one to the next
// through h_in and h_out, c through `c` (read at the start, written at the end). The gates and
// the update are src/cell.rs's, as in gated_step.wgsl (`partial`, ROWS_PER_THREAD and WIDTH are
// unused here: CELL 3 runs both phases of a reset-before GRU, with a barrier between).
// `activate_with` comes from activations.wgsl, `Step` from step_params.wgsl, the bindings,
// constants and act/pre/rec from gated_common.wgsl, prepended when the module is built.

// Batch rows one workgroup owns.
override ROWS: u32 = 1u;
// Floats of workgroup memory: h twice, then c (LSTM) or z (reset-before GRU), then q·h
// (reset-before GRU), each ROWS × m.
override STATE_FLOATS: u32 = 2u;

const WG: u32 = 256u;

var<workgroup> state: array<f32, STATE_FLOATS>;

fn gate_blocks() -> u32 {
    return select(3u, 4u, CELL == 1u);
}

// The cell's vector, entry i (after U): peepholes or a GRU's recurrent bias.
fn vector(i: u32) -> f32 {
    if (!HAS_VECTOR) {
        return 0.0;
    }
    return u[params.m * gate_blocks() * params.m + i];
}

fn is_padded(time: u32, row: u32) -> bool {
    return (params.flags & 8u) != 0u && mask[time * params.n + row] == 0u;
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let gm = gate_blocks() * m;
    let row0 = (wid.x + wid.y * nwg.x) * ROWS;
    // Uniform across the workgroup, so returning here leaves no barrier half-reached.
    if (row0 >= n) {
        return;
    }
    let rows = min(ROWS, n - row0);
    let items = rows * m;
    let half = ROWS * m;
    // c (LSTM) or z (reset-before GRU), and q·h (reset-before GRU).
    let aux = 2u * half;
    let reset = 3u * half;
    let write_seq = (params.flags & 1u) != 0u;
    let padded_is_state = (params.flags & 16u) != 0u;

    for (var i = lid.x; i < items; i = i + WG) {
        state[i] = h_in[row0 * m + i];
        if (CELL == 1u) {
            state[aux + i] = c[row0 * m + i];
        }
    }
    workgroupBarrier();

    var src = 0u;
    let end = params.step + params.count;
    for (var s = params.step; s < end; s = s + 1u) {
        let dst = half - src;
        let time = select(s, params.t_len - 1u - s, (params.flags & 32u) != 0u);
        let out = select(s, params.t_len - 1u - s, (params.flags & 64u) != 0u);
        if (CELL == 3u) {
            // Phase 1: z and q, and q·h for the candidate's product.
            for (var i = lid.x; i < items; i = i + WG) {
                let r = i / m;
                let j = i % m;
                let xb = (time * n + row0 + r) * gm + j;
                var acc_z = 0.0;
                var acc_q = 0.0;
                let h_row = src + r * m;
                for (var k = 0u; k < m; k = k + 1u) {
                    let hk = state[h_row + k];
                    acc_z = acc_z + hk * u[k * gm + j];
                    acc_q = acc_q + hk * u[k * gm + m + j];
                }
                state[aux + i] = rec(p[xb] + acc_z);
                state[reset + i] = rec(p[xb + m] + acc_q) * state[src + i];
            }
            workgroupBarrier();
        }
        for (var i = lid.x; i < items; i = i + WG) {
            let r = i / m;
            let j = i % m;
            let row = row0 + r;
            let at = (out * n + row) * m + j;
            if (is_padded(time, row)) {
                // A padded step keeps h and c; its output is the kept state or zeros (bit 4).
                let kept = state[src + i];
                state[dst + i] = kept;
                if (write_seq) {
                    y[at] = select(0.0, kept, padded_is_state);
                }
                continue;
            }
            let xb = (time * n + row) * gm + j;
            var h = 0.0;
            if (CELL == 1u) {
                var a = vec4<f32>(0.0);
                let h_row = src + r * m;
                for (var k = 0u; k < m; k = k + 1u) {
                    let hk = state[h_row + k];
                    let base = k * gm + j;
                    a = a + hk * vec4<f32>(u[base], u[base + m], u[base + 2u * m], u[base + 3u * m]);
                }
                let c_prev = state[aux + i];
                let ig = rec(p[xb] + a.x + vector(j) * c_prev);
                var f = 1.0 - ig;
                if (!INPUT_FORGET) {
                    f = rec(p[xb + m] + a.y + vector(m + j) * c_prev);
                }
                let g = act(pre(p[xb + 2u * m] + a.z));
                let c_new = f * c_prev + ig * g;
                state[aux + i] = c_new;
                let o = rec(p[xb + 3u * m] + a.w + vector(2u * m + j) * c_new);
                h = o * activate_with(OUT_ACTIVATION, OUT_ALPHA, OUT_BETA, c_new);
            } else if (CELL == 2u) {
                var a = vec3<f32>(0.0);
                let h_row = src + r * m;
                for (var k = 0u; k < m; k = k + 1u) {
                    let hk = state[h_row + k];
                    let base = k * gm + j;
                    a = a + hk * vec3<f32>(u[base], u[base + m], u[base + 2u * m]);
                }
                let z = rec(p[xb] + a.x + vector(j));
                let q = rec(p[xb + m] + a.y + vector(m + j));
                let cand = act(pre(p[xb + 2u * m] + q * (a.z + vector(2u * m + j))));
                h = z * state[src + i] + (1.0 - z) * cand;
            } else {
                var a = 0.0;
                let reset_row = reset + r * m;
                for (var k = 0u; k < m; k = k + 1u) {
                    a = a + state[reset_row + k] * u[k * gm + 2u * m + j];
                }
                let z = state[aux + i];
                let cand = act(pre(p[xb + 2u * m] + a));
                h = z * state[src + i] + (1.0 - z) * cand;
            }
            state[dst + i] = h;
            if (write_seq) {
                y[at] = h;
            }
        }
        workgroupBarrier();
        src = dst;
    }
    for (var i = lid.x; i < items; i = i + WG) {
        h_out[row0 * m + i] = state[src + i];
        if (CELL == 1u) {
            c[row0 * m + i] = state[aux + i];
        }
    }
}
