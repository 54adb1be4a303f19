// One recurrent step for a whole batch: h_out = activate(clip(P[step] + h_in · U)), also stored as
// step `step` of the sequence output when asked. Dispatched once per time step; the state stays in
// GPU buffers between steps. P and Y are time-major: step s of row n at (s · n_rows + n) · m.
// `activate` comes from activations.wgsl, `Step` from step_params.wgsl, and U and h_in with
// their loads (`load_u`, `load_h`, `h_at`) from recurrent_step_vec4.wgsl or
// recurrent_step_scalar.wgsl, prepended when the module is built.
//
// Register tiles whose shape the host picks for M, N and the device (`plan::StepTile`): a
// workgroup of 64 threads owns ROWS batch rows and a slice of U's columns; each thread keeps
// ROWS × QUADS quads of sums in registers. For every quad of k it loads each row's quad of h
// (the same address for every thread of the workgroup) and the four rows of its QUADS quads of
// U (consecutive threads read consecutive quads), then does 16 · ROWS · QUADS multiply-adds: a
// load of U feeds ROWS of them, a load of h 4 · QUADS. Every load is a whole vec4 where M allows
// it, and none is bounds-checked: indices past the edges are clamped, and the rows and columns
// they feed are not stored, so full and partial tiles run the same loop.
//
// Split-K: with SPLIT > 1 the threads form SPLIT groups, each walking a contiguous share of k
// for the same outputs; the partial sums meet in workgroup memory, where every thread adds up
// and finishes ROWS · QUADS / SPLIT quads of outputs. Small batches on wide GPUs take it: a step
// of one row then still spreads over M / (4 · QUADS · 64 / SPLIT) workgroups.
//
// The workgroups are a 3-D grid: x over column slices, y and z over row tiles (z folds the row
// tiles past the per-dimension limit).

@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Step;
@group(0) @binding(6) var<storage, read> mask: array<u32>;

// ONNX's clip on the pre-activation; 0 means none.
override CLIP: f32 = 0.0;
// Batch rows of a workgroup's tile, all held by every thread.
override ROWS: u32 = 4u;
// Quads (4 columns) of outputs each thread holds per row.
override QUADS: u32 = 1u;
// Thread groups splitting k (a power of two dividing WG).
override SPLIT: u32 = 1u;
// vec4s of workgroup memory for the split-K partial sums: WG · ROWS · QUADS when SPLIT > 1, else 1.
override PARTIAL: u32 = 1u;

const WG: u32 = 64u;
// The most ROWS · QUADS accumulators a thread holds (plan::STEP_MAX_TILE).
const MAX_TILE: u32 = 16u;

var<workgroup> partial: array<vec4<f32>, PARTIAL>;

// Adds the projection, clips, activates and stores one element whose h · U is `acc`.
fn finish(row: u32, col: u32, acc: f32) {
    let n = params.n;
    let m = params.m;
    let time = select(params.step, params.t_len - 1u - params.step, (params.flags & 32u) != 0u);
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let at = (out * n + row) * m + col;
    if ((params.flags & 8u) != 0u && mask[time * n + row] == 0u) {
        let kept = h_at(row * m + col);
        h_out[row * m + col] = kept;
        if ((params.flags & 1u) != 0u) {
            y[at] = select(0.0, kept, (params.flags & 16u) != 0u);
        }
        return;
    }
    var z = p[(time * n + row) * m + col] + acc;
    if (CLIP > 0.0) {
        z = clamp(z, -CLIP, CLIP);
    }
    let v = activate(z);
    h_out[row * m + col] = v;
    if ((params.flags & 1u) != 0u) {
        y[at] = v;
    }
}

// Finishes the quad of outputs at (row, quad) whose sums are `acc`, skipping what lies past the
// edges.
fn finish_quad(row: u32, quad: u32, acc: vec4<f32>) {
    if (row >= params.n) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let col = quad * 4u + j;
        if (col < params.m) {
            finish(row, col, acc[j]);
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(local_invocation_index) lid: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let quads_m = (m + 3u) / 4u;
    let row0 = (wid.y + wid.z * nwg.y) * ROWS;
    // Uniform across the workgroup, so returning here leaves no barrier half-reached.
    if (row0 >= n) {
        return;
    }
    // Threads per k group, and this thread's group and place in it.
    let group_threads = WG / SPLIT;
    let g = lid / group_threads;
    let c = lid % group_threads;
    let quad0 = wid.x * group_threads * QUADS + c;
    // This group's share of k, in quads.
    let k_quads = quads_m;
    let share = (k_quads + SPLIT - 1u) / SPLIT;
    let kq_begin = min(g * share, k_quads);
    let kq_end = min(kq_begin + share, k_quads);

    // Clamped rows and quads: loads stay in bounds, the stores skip what they feed.
    var rows: array<u32, MAX_TILE>;
    for (var r = 0u; r < ROWS; r = r + 1u) {
        rows[r] = min(row0 + r, n - 1u);
    }
    var quads: array<u32, MAX_TILE>;
    for (var q = 0u; q < QUADS; q = q + 1u) {
        quads[q] = min(quad0 + q * group_threads, quads_m - 1u);
    }
    var acc: array<vec4<f32>, MAX_TILE>;
    for (var i = 0u; i < ROWS * QUADS; i = i + 1u) {
        acc[i] = vec4<f32>(0.0);
    }
    var b: array<vec4<f32>, 16>;
    for (var kq = kq_begin; kq < kq_end; kq = kq + 1u) {
        let k = kq * 4u;
        for (var q = 0u; q < QUADS; q = q + 1u) {
            b[q * 4u] = load_u(k, quads[q]);
            b[q * 4u + 1u] = load_u(k + 1u, quads[q]);
            b[q * 4u + 2u] = load_u(k + 2u, quads[q]);
            b[q * 4u + 3u] = load_u(k + 3u, quads[q]);
        }
        for (var r = 0u; r < ROWS; r = r + 1u) {
            let a = load_h(rows[r], k);
            for (var q = 0u; q < QUADS; q = q + 1u) {
                let i = r * QUADS + q;
                acc[i] = acc[i] + a.x * b[q * 4u] + a.y * b[q * 4u + 1u] + a.z * b[q * 4u + 2u]
                    + a.w * b[q * 4u + 3u];
            }
        }
    }

    if (SPLIT == 1u) {
        var sums: array<vec4<f32>, MAX_TILE>;
        for (var i = 0u; i < ROWS * QUADS; i = i + 1u) {
            sums[i] = acc[i];
        }
        for (var r = 0u; r < ROWS; r = r + 1u) {
            for (var q = 0u; q < QUADS; q = q + 1u) {
                finish_quad(row0 + r, quad0 + q * group_threads, sums[r * QUADS + q]);
            }
        }
        return;
    }
    // Split-K: every group's sums in workgroup memory, [group][output][thread in group]; then
    // thread t adds the SPLIT partial sums of outputs t, t + WG, ... and finishes them, so each
    // thread finishes ROWS · QUADS / SPLIT · ... the same count as every other.
    let tile = ROWS * QUADS;
    for (var i = 0u; i < tile; i = i + 1u) {
        partial[(g * tile + i) * group_threads + c] = acc[i];
    }
    workgroupBarrier();
    for (var o = lid; o < tile * group_threads; o = o + WG) {
        var sum = vec4<f32>(0.0);
        for (var s = 0u; s < SPLIT; s = s + 1u) {
            sum = sum + partial[s * tile * group_threads + o];
        }
        let i = o / group_threads;
        let r = i / QUADS;
        let q = i % QUADS;
        finish_quad(row0 + r, wid.x * group_threads * QUADS + o % group_threads + q * group_threads, sum);
    }
}
