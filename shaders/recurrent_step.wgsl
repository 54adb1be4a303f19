// One recurrent step for a whole batch: h_out = activate(clip(P[step] + h_in · U)), also stored as
// step `step` of the sequence output when asked. Dispatched once per time step; the state stays in
// GPU buffers between steps. P and Y are time-major: step s of row n at (s · n_rows + n) · m.
// `activate` comes from activations.wgsl and `Step` from step_params.wgsl, prepended when the
// module is built.
//
// Register-tiled like projection.wgsl: 16 × 16 threads, each computing ROWS_PER_THREAD rows × 4
// columns in vec4 accumulators, so a workgroup covers (16 · ROWS_PER_THREAD) rows × 64 columns.
// Small batches use one row per thread, so that a 64-row tile is not mostly padding.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Step;
@group(0) @binding(6) var<storage, read> mask: array<u32>;

// ONNX's clip on the pre-activation; 0 means none.
override CLIP: f32 = 0.0;
// Batch rows each thread computes: 1 or 4.
override ROWS_PER_THREAD: u32 = 4u;

const SLAB: u32 = 16u;

// h slab, row-major: up to 64 rows × 4 quads of k.
var<workgroup> h_tile: array<vec4<f32>, 256>;
// U slab, row-major: 16 k × 16 quads of columns.
var<workgroup> u_tile: array<vec4<f32>, 256>;

fn load_h(row: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < params.n) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (kk + j < params.m) {
                v[j] = h_in[row * params.m + kk + j];
            }
        }
    }
    return v;
}

fn load_u(kk: u32, col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kk < params.m) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col + j < params.m) {
                v[j] = u[kk * params.m + col + j];
            }
        }
    }
    return v;
}

// Adds the projection, clips, activates and stores one element whose h · U is `acc`.
fn finish(row: u32, col: u32, acc: f32) {
    let n = params.n;
    let m = params.m;
    let time = select(params.step, params.t_len - 1u - params.step, (params.flags & 32u) != 0u);
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let at = (out * n + row) * m + col;
    if ((params.flags & 8u) != 0u && mask[time * n + row] == 0u) {
        let kept = h_in[row * m + col];
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
    let col0 = wid.x * 64u;
    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i = i + 1u) {
        acc[i] = vec4<f32>(0.0);
    }
    for (var k0 = 0u; k0 < m; k0 = k0 + SLAB) {
        if (t < tile_rows * 4u) {
            h_tile[t] = load_h(row0 + t / 4u, k0 + (t % 4u) * 4u);
        }
        u_tile[t] = load_u(k0 + t / 16u, col0 + (t % 16u) * 4u);
        workgroupBarrier();
        for (var q = 0u; q < 4u; q = q + 1u) {
            let b0 = u_tile[(q * 4u) * 16u + tx];
            let b1 = u_tile[(q * 4u + 1u) * 16u + tx];
            let b2 = u_tile[(q * 4u + 2u) * 16u + tx];
            let b3 = u_tile[(q * 4u + 3u) * 16u + tx];
            for (var i = 0u; i < ROWS_PER_THREAD; i = i + 1u) {
                let a = h_tile[(ty * ROWS_PER_THREAD + i) * 4u + q];
                acc[i] = acc[i] + a.x * b0 + a.y * b1 + a.z * b2 + a.w * b3;
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < ROWS_PER_THREAD; i = i + 1u) {
        let row = row0 + ty * ROWS_PER_THREAD + i;
        if (row < params.n) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let col = col0 + tx * 4u + j;
                if (col < m) {
                    finish(row, col, acc[i][j]);
                }
            }
        }
    }
}
