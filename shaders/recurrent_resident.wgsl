// The persistent kernel for layers of at most 128 units, U held in registers for the whole
// dispatch: each workgroup owns ROWS batch rows and runs
// h_s = activate(clip(P[s] + h_{s-1} · U)) for the params.count steps from s = params.step on
// itself, as recurrent_persistent.wgsl does (same bindings, same flags, same time-major P, Y and
// mask), but a row takes SLICES × QUADS threads: thread (s, q) holds the RESIDENT_K rows of U
// from s · RESIDENT_K and the quad of columns from 4q (zeros past m) and adds its slice of
// h · U into a partial sum; after a barrier one thread per quad of columns sums the slices, adds
// P, activates and stores. A step reads h once per thread and U never: U out of workgroup memory
// cost most of a step on llvmpipe, which loads workgroup memory one lane at a time, and on a GPU
// registers are the fastest place U can be. Softmax rows run on recurrent_persistent.wgsl.
//
// `WG` and `RESIDENT_K` (gpu::plan), `activate`, `Step` and the bindings (persistent_common.wgsl)
// are prepended when the module is built.

// The sixteen quads of U below are spelt out.
const_assert RESIDENT_K == 16u;

// Batch rows one workgroup owns; slices of RESIDENT_K rows of U (ceil(m / RESIDENT_K)); quads of
// columns (ceil(m / 4)). ROWS × SLICES × QUADS ≤ WG.
override ROWS: u32 = 1u;
override SLICES: u32 = 1u;
override QUADS: u32 = 1u;
// Quads of state in workgroup memory: two buffers (read and written in alternate steps) of ROWS
// rows of SLICES × RESIDENT_K / 4 quads, zeros past m.
override STATE_QUADS: u32 = 8u;
// ROWS × SLICES × QUADS.
override PARTIALS: u32 = 1u;

var<workgroup> h: array<vec4<f32>, STATE_QUADS>;
var<workgroup> partial: array<vec4<f32>, PARTIALS>;

// U[k, c .. c + 4], zeros past m.
fn u_quad(k: u32, c: u32) -> vec4<f32> {
    let m = params.m;
    var v = vec4<f32>(0.0);
    if (k < m) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (c + j < m) {
                v[j] = u[k * m + c + j];
            }
        }
    }
    return v;
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
    let write_seq = (params.flags & 1u) != 0u;
    let padded_is_state = (params.flags & 16u) != 0u;

    // This thread's row, slice of U's rows and quad of columns.
    let per_row = SLICES * QUADS;
    let r = lid.x / per_row;
    let s = (lid.x % per_row) / QUADS;
    let q = lid.x % QUADS;
    let k0 = s * RESIDENT_K;
    let c0 = q * 4u;
    let u0 = u_quad(k0, c0);
    let u1 = u_quad(k0 + 1u, c0);
    let u2 = u_quad(k0 + 2u, c0);
    let u3 = u_quad(k0 + 3u, c0);
    let u4 = u_quad(k0 + 4u, c0);
    let u5 = u_quad(k0 + 5u, c0);
    let u6 = u_quad(k0 + 6u, c0);
    let u7 = u_quad(k0 + 7u, c0);
    let u8 = u_quad(k0 + 8u, c0);
    let u9 = u_quad(k0 + 9u, c0);
    let u10 = u_quad(k0 + 10u, c0);
    let u11 = u_quad(k0 + 11u, c0);
    let u12 = u_quad(k0 + 12u, c0);
    let u13 = u_quad(k0 + 13u, c0);
    let u14 = u_quad(k0 + 14u, c0);
    let u15 = u_quad(k0 + 15u, c0);

    // A row's state as quads; the quads past m stay zero, so that the slices past m add nothing.
    let stride = SLICES * RESIDENT_K / 4u;
    let half = ROWS * stride;
    for (var i = lid.x; i < 2u * half; i = i + WG) {
        h[i] = vec4<f32>(0.0);
    }
    workgroupBarrier();
    for (var i = lid.x; i < rows * m; i = i + WG) {
        let k = i % m;
        h[(i / m) * stride + k / 4u][k % 4u] = h_in[row0 * m + i];
    }
    workgroupBarrier();

    var src = 0u;
    let end = params.step + params.count;
    for (var step = params.step; step < end; step = step + 1u) {
        let dst = half - src;
        let time = time_of(step);
        let out = out_of(step);
        if (r < rows) {
            let b = src + r * stride + s * (RESIDENT_K / 4u);
            let h0 = h[b];
            let h1 = h[b + 1u];
            let h2 = h[b + 2u];
            let h3 = h[b + 3u];
            var acc = h0.x * u0 + h0.y * u1 + h0.z * u2 + h0.w * u3;
            acc = acc + h1.x * u4 + h1.y * u5 + h1.z * u6 + h1.w * u7;
            acc = acc + h2.x * u8 + h2.y * u9 + h2.z * u10 + h2.w * u11;
            acc = acc + h3.x * u12 + h3.y * u13 + h3.z * u14 + h3.w * u15;
            partial[lid.x] = acc;
        }
        workgroupBarrier();
        // One quad of columns of one row per thread: the slices summed, P added, activated.
        for (var i = lid.x; i < rows * QUADS; i = i + WG) {
            let rr = i / QUADS;
            let qq = i % QUADS;
            let row = row0 + rr;
            let c = qq * 4u;
            let width = min(4u, m - c);
            let at = (out * n + row) * m + c;
            let e = rr * stride + qq;
            if (is_padded(time, row)) {
                let kept = h[src + e];
                h[dst + e] = kept;
                if (write_seq) {
                    for (var j = 0u; j < width; j = j + 1u) {
                        y[at + j] = select(0.0, kept[j], padded_is_state);
                    }
                }
                continue;
            }
            var sum = partial[rr * per_row + qq];
            for (var t = 1u; t < SLICES; t = t + 1u) {
                sum = sum + partial[(rr * SLICES + t) * QUADS + qq];
            }
            var v = vec4<f32>(0.0);
            // Summed before P is added, as the CPU reference's GEMM does.
            for (var j = 0u; j < width; j = j + 1u) {
                v[j] = finish_unit(p[(time * n + row) * m + c + j] + sum[j], c + j);
                if (write_seq) {
                    y[at + j] = v[j];
                }
            }
            h[dst + e] = v;
        }
        workgroupBarrier();
        src = dst;
    }
    for (var i = lid.x; i < rows * m; i = i + WG) {
        let k = i % m;
        h_out[row0 * m + i] = h[src + (i / m) * stride + k / 4u][k % 4u];
    }
}
