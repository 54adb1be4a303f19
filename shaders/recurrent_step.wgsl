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
// Keras's PReLU as the activation: ACTIVATION is leaky_relu and each unit takes its own slope,
// stored after U in U's buffer (`load_slope`).
override UNIT_SLOPES: bool = false;
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

// The activation of column `col`'s pre-activation `z`.
fn activate_unit(z: f32, col: u32) -> f32 {
    if (UNIT_SLOPES) {
        return activate_with(ACTIVATION, load_slope(col), ACT_BETA, z);
    }
    return activate(z);
}

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
    let v = activate_unit(z, col);
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

    // Clamped rows and quads: loads stay in bounds, the stores skip what they feed. The tile is
    // spelt out row by row (up to 8 rows × 2 quads, the branches on ROWS and QUADS constant once
    // the pipeline is built), so that every sum stays in a register: a compiler that does not
    // unroll a loop over an array of sums keeps the array in memory.
    let r0 = min(row0 + 0u, n - 1u);
    let r1 = min(row0 + 1u, n - 1u);
    let r2 = min(row0 + 2u, n - 1u);
    let r3 = min(row0 + 3u, n - 1u);
    let r4 = min(row0 + 4u, n - 1u);
    let r5 = min(row0 + 5u, n - 1u);
    let r6 = min(row0 + 6u, n - 1u);
    let r7 = min(row0 + 7u, n - 1u);
    let q0 = min(quad0, quads_m - 1u);
    let q1 = min(quad0 + group_threads, quads_m - 1u);
    var s00 = vec4<f32>(0.0);
    var s01 = vec4<f32>(0.0);
    var s10 = vec4<f32>(0.0);
    var s11 = vec4<f32>(0.0);
    var s20 = vec4<f32>(0.0);
    var s21 = vec4<f32>(0.0);
    var s30 = vec4<f32>(0.0);
    var s31 = vec4<f32>(0.0);
    var s40 = vec4<f32>(0.0);
    var s41 = vec4<f32>(0.0);
    var s50 = vec4<f32>(0.0);
    var s51 = vec4<f32>(0.0);
    var s60 = vec4<f32>(0.0);
    var s61 = vec4<f32>(0.0);
    var s70 = vec4<f32>(0.0);
    var s71 = vec4<f32>(0.0);
    for (var kq = kq_begin; kq < kq_end; kq = kq + 1u) {
        let k = kq * 4u;
        let u00 = load_u(k + 0u, q0);
        let u01 = load_u(k + 1u, q0);
        let u02 = load_u(k + 2u, q0);
        let u03 = load_u(k + 3u, q0);
        var u10 = vec4<f32>(0.0);
        var u11 = vec4<f32>(0.0);
        var u12 = vec4<f32>(0.0);
        var u13 = vec4<f32>(0.0);
        if (QUADS > 1u) {
            u10 = load_u(k + 0u, q1);
            u11 = load_u(k + 1u, q1);
            u12 = load_u(k + 2u, q1);
            u13 = load_u(k + 3u, q1);
        }
        {
            let a = load_h(r0, k);
            s00 = s00 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s01 = s01 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 1u) {
            let a = load_h(r1, k);
            s10 = s10 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s11 = s11 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 2u) {
            let a = load_h(r2, k);
            s20 = s20 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s21 = s21 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 3u) {
            let a = load_h(r3, k);
            s30 = s30 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s31 = s31 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 4u) {
            let a = load_h(r4, k);
            s40 = s40 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s41 = s41 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 5u) {
            let a = load_h(r5, k);
            s50 = s50 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s51 = s51 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 6u) {
            let a = load_h(r6, k);
            s60 = s60 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s61 = s61 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
        if (ROWS > 7u) {
            let a = load_h(r7, k);
            s70 = s70 + a.x * u00 + a.y * u01 + a.z * u02 + a.w * u03;
            if (QUADS > 1u) {
                s71 = s71 + a.x * u10 + a.y * u11 + a.z * u12 + a.w * u13;
            }
        }
    }
    // The sums as one array, [row · QUADS + quad], for the stores and the split-K exchange.
    var acc: array<vec4<f32>, MAX_TILE>;
    if (QUADS == 1u) {
        acc[0] = s00;
        acc[1] = s10;
        acc[2] = s20;
        acc[3] = s30;
        acc[4] = s40;
        acc[5] = s50;
        acc[6] = s60;
        acc[7] = s70;
    } else {
        acc[0] = s00;
        acc[1] = s01;
        acc[2] = s10;
        acc[3] = s11;
        acc[4] = s20;
        acc[5] = s21;
        acc[6] = s30;
        acc[7] = s31;
        acc[8] = s40;
        acc[9] = s41;
        acc[10] = s50;
        acc[11] = s51;
        acc[12] = s60;
        acc[13] = s61;
        acc[14] = s70;
        acc[15] = s71;
    }

    if (SPLIT == 1u) {
        for (var r = 0u; r < ROWS; r = r + 1u) {
            for (var q = 0u; q < QUADS; q = q + 1u) {
                finish_quad(row0 + r, quad0 + q * group_threads, acc[r * QUADS + q]);
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
