// The persistent kernel for layers of at most 128 units, U held in registers for the whole
// dispatch: each workgroup owns ROWS batch rows and runs
// h_s = activate(clip(P[s] + h_{s-1} · U)) for the params.count steps from s = params.step on
// itself, as recurrent_persistent.wgsl does (same bindings, same flags, same time-major P, Y and
// mask), but a row takes QUADS × SLICES threads: thread (q, s) holds the RESIDENT_K rows of U
// from s · RESIDENT_K and the quad of columns from 4q (zeros past m) and adds its slice of
// h · U into a partial sum each step. A step reads h once per thread and U never: U out of
// workgroup memory cost most of a step on llvmpipe, which loads workgroup memory one lane at a
// time, and on a GPU registers are the fastest place U can be. Softmax rows run on
// recurrent_persistent.wgsl.
//
// With SHUFFLED the SLICES partial sums of a quad sit in consecutive threads, and where every
// subgroup is an aligned run of consecutive threads, a multiple of SLICES long (checked once per
// dispatch by `lanes_in_order`), `sum_slices` adds them with shuffles and the quad's threads
// finish its four columns between them: one barrier a step. Otherwise the sums meet in
// workgroup memory and one thread per quad finishes it (`finish_quads`): two barriers a step.
//
// `WG` and `RESIDENT_K` (gpu::plan), `activate`, `Step`, the bindings (persistent_common.wgsl)
// and `lanes_in_order` and `sum_slices` (resident_subgroups.wgsl or resident_plain.wgsl) are
// prepended when the module is built.

// The sixteen quads of U below are spelt out.
const_assert RESIDENT_K == 16u;

// Batch rows one workgroup owns; quads of columns (ceil(m / 4)); slices of RESIDENT_K rows of U
// (ceil(m / RESIDENT_K) up to a power of two, at most 8). ROWS × QUADS × SLICES ≤ WG.
override ROWS: u32 = 1u;
override QUADS: u32 = 1u;
override SLICES: u32 = 1u;
// Quads of state in workgroup memory: two buffers (read and written in alternate steps) of ROWS
// rows of SLICES × RESIDENT_K / 4 quads, zeros past m.
override STATE_QUADS: u32 = 8u;
// ROWS × QUADS × SLICES.
override PARTIALS: u32 = 1u;
// Whether a quad's slices go to consecutive threads, to be summed by subgroup shuffles where the
// subgroups allow (else a slice's quads are consecutive, as the workgroup-memory sums prefer on
// CPU adapters, whose subgroups are the SIMD lanes of one core).
override SHUFFLED: bool = false;

var<workgroup> h: array<vec4<f32>, STATE_QUADS>;
var<workgroup> partial: array<vec4<f32>, PARTIALS>;
// Set when some thread's subgroup is out of order; `shuffles` is read back uniformly.
var<workgroup> disorder: atomic<u32>;
var<workgroup> shuffles: u32;

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

// Quads of state per row.
fn row_quads() -> u32 {
    return SLICES * RESIDENT_K / 4u;
}

// The thread that owns quad q and slice s of row r.
fn thread_of(r: u32, q: u32, s: u32) -> u32 {
    if (SHUFFLED) {
        return (r * QUADS + q) * SLICES + s;
    }
    return (r * SLICES + s) * QUADS + q;
}

// The workgroup-memory finish of a step: one quad of columns of one row per thread sums the
// quad's slices from `partial`, adds P, activates and stores.
fn finish_quads(lid: u32, row0: u32, rows: u32, src: u32, dst: u32, time: u32, out: u32) {
    let n = params.n;
    let m = params.m;
    for (var i = lid; i < rows * QUADS; i = i + WG) {
        let r = i / QUADS;
        let q = i % QUADS;
        let row = row0 + r;
        let c = q * 4u;
        let width = min(4u, m - c);
        let at = (out * n + row) * m + c;
        let e = r * row_quads() + q;
        if (is_padded(time, row)) {
            let kept = h[src + e];
            h[dst + e] = kept;
            if ((params.flags & 1u) != 0u) {
                for (var j = 0u; j < width; j = j + 1u) {
                    y[at + j] = select(0.0, kept[j], (params.flags & 16u) != 0u);
                }
            }
            continue;
        }
        var sum = vec4<f32>(0.0);
        for (var t = 0u; t < SLICES; t = t + 1u) {
            sum = sum + partial[thread_of(r, q, t)];
        }
        var v = vec4<f32>(0.0);
        // Summed before P is added, as the CPU reference's GEMM does.
        for (var j = 0u; j < width; j = j + 1u) {
            v[j] = finish_unit(p[(time * n + row) * m + c + j] + sum[j], c + j);
            if ((params.flags & 1u) != 0u) {
                y[at + j] = v[j];
            }
        }
        h[dst + e] = v;
    }
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

    // With SHUFFLED, every thread's subgroup checked while all of them run. Without it the
    // shuffled branch below folds away: llvmpipe would run both sides of a branch it cannot
    // prove uniform, masked.
    var shuffled = false;
    if (SHUFFLED) {
        let in_order = lanes_in_order(lid.x);
        if (lid.x == 0u) {
            atomicStore(&disorder, 0u);
        }
        workgroupBarrier();
        if (!in_order) {
            atomicStore(&disorder, 1u);
        }
        workgroupBarrier();
        if (lid.x == 0u) {
            shuffles = 1u - atomicLoad(&disorder);
        }
        shuffled = workgroupUniformLoad(&shuffles) == 1u;
    }

    // This thread's row, quad of columns and slice of U's rows; threads past the workgroup's
    // rows read the last row and store nothing.
    let per_row = QUADS * SLICES;
    let r = min(lid.x / per_row, ROWS - 1u);
    let live = lid.x < rows * per_row;
    var q = lid.x % QUADS;
    var s = (lid.x / QUADS) % SLICES;
    if (SHUFFLED) {
        q = (lid.x / SLICES) % QUADS;
        s = lid.x % SLICES;
    }
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
    let stride = row_quads();
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
        let b = src + r * stride + s * (RESIDENT_K / 4u);
        let h0 = h[b];
        let h1 = h[b + 1u];
        let h2 = h[b + 2u];
        let h3 = h[b + 3u];
        var acc = h0.x * u0 + h0.y * u1 + h0.z * u2 + h0.w * u3;
        acc = acc + h1.x * u4 + h1.y * u5 + h1.z * u6 + h1.w * u7;
        acc = acc + h2.x * u8 + h2.y * u9 + h2.z * u10 + h2.w * u11;
        acc = acc + h3.x * u12 + h3.y * u13 + h3.z * u14 + h3.w * u15;
        if (shuffled) {
            // Every thread of the quad gets the whole sum; thread s finishes the columns 4q + j
            // with j ≡ s (mod SLICES), one of them unless SLICES < 4.
            let sum = sum_slices(acc);
            let row = row0 + r;
            let e = r * stride + q;
            let padded = live && is_padded(time, row);
            for (var j = s; j < 4u; j = j + SLICES) {
                let c = c0 + j;
                if (!live || c >= m) {
                    break;
                }
                let at = (out * n + row) * m + c;
                var v: f32;
                if (padded) {
                    v = h[src + e][j];
                    if (write_seq) {
                        y[at] = select(0.0, v, padded_is_state);
                    }
                } else {
                    // Summed before P is added, as the CPU reference's GEMM does.
                    v = finish_unit(p[(time * n + row) * m + c] + sum[j], c);
                    if (write_seq) {
                        y[at] = v;
                    }
                }
                h[dst + e][j] = v;
            }
        } else {
            // Threads past the rows have no slot (a clamped index would land on another's).
            if (live) {
                partial[lid.x] = acc;
            }
            workgroupBarrier();
            finish_quads(lid.x, row0, rows, src, dst, time, out);
        }
        workgroupBarrier();
        src = dst;
    }
    for (var i = lid.x; i < rows * m; i = i + WG) {
        let k = i % m;
        h_out[row0 * m + i] = h[src + (i / m) * stride + k / 4u][k % 4u];
    }
}
