// Many steps in one dispatch: each workgroup owns ROWS batch rows and runs
// h_s = activate(clip(P[s] + h_{s-1} · U)) for the params.count steps from s = params.step on
// itself, the state in workgroup memory and a barrier between steps. The host cuts a chunk into
// such dispatches so that no invocation loops past the loop budget; the state passes from one to
// the next through h_in and h_out. Sequences are independent, so workgroups never wait on
// each other. U is staged in workgroup memory too when it fits (U_SHARED). Each thread computes a
// quad of columns of a row at a time, so that every value of h it reads feeds four sums. Up to 128
// units (not row-wise) recurrent_resident.wgsl runs instead, U in registers.
// `WG` (gpu::plan), `activate`, `Step` and the bindings (persistent_common.wgsl) are prepended
// when the module is built.
//
// Softmax and log-softmax (ROW_WISE 1 and 2) run as linear, then each row is reduced in
// workgroup memory, all in the same step.

// 0: ACTIVATION elementwise; 1: softmax across each row; 2: log-softmax.
override ROW_WISE: u32 = 0u;
// Batch rows one workgroup owns.
override ROWS: u32 = 1u;
// Floats of state in workgroup memory: two buffers (read and written in alternate steps) of
// ROWS × m.
override STATE_FLOATS: u32 = 2u;
// Whether U is staged in workgroup memory, each row as ceil(m / 4) quads (zeros past m); U_QUADS
// is m × ceil(m / 4) then, else 1.
override U_SHARED: bool = false;
override U_QUADS: u32 = 1u;

var<workgroup> h: array<f32, STATE_FLOATS>;
var<workgroup> u_shared: array<vec4<f32>, U_QUADS>;
var<workgroup> row_max: array<f32, ROWS>;
var<workgroup> row_sum: array<f32, ROWS>;

// U[k, c .. c + 4] for the quad of columns starting at c (a multiple of 4); columns past m are
// zeros in workgroup memory and clamped to m - 1 from the buffer (nothing stores what they feed).
fn u_quad(k: u32, c: u32) -> vec4<f32> {
    let m = params.m;
    if (U_SHARED) {
        return u_shared[k * ((m + 3u) / 4u) + c / 4u];
    }
    let row = k * m;
    let last = m - 1u;
    return vec4<f32>(
        u[row + min(c, last)],
        u[row + min(c + 1u, last)],
        u[row + min(c + 2u, last)],
        u[row + min(c + 3u, last)],
    );
}

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let row0 = (wid.x + wid.y * nwg.x) * ROWS;
    // Uniform across the workgroup, so returning here leaves no barrier half-reached.
    if (row0 >= n) {
        return;
    }
    let rows = min(ROWS, n - row0);
    let items = rows * m;
    let half = ROWS * m;
    let write_seq = (params.flags & 1u) != 0u;
    let padded_is_state = (params.flags & 16u) != 0u;

    let quads = (m + 3u) / 4u;
    if (U_SHARED) {
        for (var i = lid.x; i < m * quads; i = i + WG) {
            let k = i / quads;
            let c = (i % quads) * 4u;
            var v = vec4<f32>(0.0);
            for (var j = 0u; j < 4u; j = j + 1u) {
                if (c + j < m) {
                    v[j] = u[k * m + c + j];
                }
            }
            u_shared[i] = v;
        }
    }
    for (var i = lid.x; i < items; i = i + WG) {
        h[i] = h_in[row0 * m + i];
    }
    workgroupBarrier();

    var src = 0u;
    let end = params.step + params.count;
    for (var s = params.step; s < end; s = s + 1u) {
        let dst = half - src;
        let time = time_of(s);
        let out = out_of(s);
        // One quad of columns of one row per item: each value of h read feeds four sums.
        for (var i = lid.x; i < rows * quads; i = i + WG) {
            let r = i / quads;
            let c0 = (i % quads) * 4u;
            let row = row0 + r;
            let e = r * m + c0;
            let width = min(4u, m - c0);
            let at = (out * n + row) * m + c0;
            if (is_padded(time, row)) {
                for (var j = 0u; j < width; j = j + 1u) {
                    let kept = h[src + e + j];
                    h[dst + e + j] = kept;
                    if (write_seq) {
                        y[at + j] = select(0.0, kept, padded_is_state);
                    }
                }
                continue;
            }
            var acc = vec4<f32>(0.0);
            let h_row = src + r * m;
            for (var k = 0u; k < m; k = k + 1u) {
                acc = acc + h[h_row + k] * u_quad(k, c0);
            }
            for (var j = 0u; j < width; j = j + 1u) {
                // Summed before P is added, as the CPU reference's GEMM does: the same rounding.
                var z = p[(time * n + row) * m + c0 + j] + acc[j];
                if (ROW_WISE == 0u) {
                    let v = finish_unit(z, c0 + j);
                    h[dst + e + j] = v;
                    if (write_seq) {
                        y[at + j] = v;
                    }
                } else {
                    if (CLIP > 0.0) {
                        z = clamp(z, -CLIP, CLIP);
                    }
                    h[dst + e + j] = z;
                }
            }
        }
        if (ROW_WISE != 0u) {
            workgroupBarrier();
            // One thread per row: rows are few and short where this kernel is chosen.
            for (var r = lid.x; r < rows; r = r + WG) {
                let base = dst + r * m;
                var mx = bitcast<f32>(0xff800000u);
                for (var c = 0u; c < m; c = c + 1u) {
                    mx = max_nan(mx, h[base + c]);
                }
                var sum = 0.0;
                for (var c = 0u; c < m; c = c + 1u) {
                    sum = sum + exp(h[base + c] - mx);
                }
                row_max[r] = mx;
                row_sum[r] = sum;
            }
            workgroupBarrier();
            for (var i = lid.x; i < items; i = i + WG) {
                let r = i / m;
                let row = row0 + r;
                if (is_padded(time, row)) {
                    continue;
                }
                let shifted = h[dst + i] - row_max[r];
                var v = exp(shifted) / row_sum[r];
                if (ROW_WISE == 2u) {
                    v = shifted - log(row_sum[r]);
                }
                h[dst + i] = v;
                if (write_seq) {
                    y[(out * n + row) * m + i % m] = v;
                }
            }
        }
        workgroupBarrier();
        src = dst;
    }
    for (var i = lid.x; i < items; i = i + WG) {
        h_out[row0 * m + i] = h[src + i];
    }
}
