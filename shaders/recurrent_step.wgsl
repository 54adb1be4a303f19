// One recurrent step for a whole batch: h_out = activate(clip(P[step] + h_in · U)), also stored as
// step `step` of the sequence output when asked. Dispatched once per time step; the state stays in
// GPU buffers between steps. P and Y are time-major: step s of row n at (s · n_rows + n) · m.
// `activate` comes from activations.wgsl, prepended when the module is built.

struct Step {
    n: u32,
    m: u32,
    step: u32,
    // bit 0: store into the sequence output (bits 1 and 2 belong to softmax_rows.wgsl);
    // bit 3: read `mask` (0 marks a padded step: the state is kept and the output is zero, or
    // with bit 4 the kept state, as Keras outputs it).
    flags: u32,
}

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Step;
@group(0) @binding(6) var<storage, read> mask: array<u32>;

// ONNX's clip on the pre-activation; 0 means none.
override CLIP: f32 = 0.0;

const TILE: u32 = 16u;

var<workgroup> h_tile: array<array<f32, 16>, 16>;
var<workgroup> u_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let n = params.n;
    let m = params.m;
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    var acc = 0.0;
    let tiles = (m + TILE - 1u) / TILE;
    for (var i = 0u; i < tiles; i = i + 1u) {
        let kh = i * TILE + lid.x;
        var hv = 0.0;
        if (row < n && kh < m) {
            hv = h_in[row * m + kh];
        }
        h_tile[lid.y][lid.x] = hv;
        let ku = i * TILE + lid.y;
        var uv = 0.0;
        if (ku < m && col < m) {
            uv = u[ku * m + col];
        }
        u_tile[lid.y][lid.x] = uv;
        workgroupBarrier();
        for (var j = 0u; j < TILE; j = j + 1u) {
            acc = acc + h_tile[lid.y][j] * u_tile[j][lid.x];
        }
        workgroupBarrier();
    }
    if (row < n && col < m) {
        let at = (params.step * n + row) * m + col;
        if ((params.flags & 8u) != 0u && mask[params.step * n + row] == 0u) {
            let kept = h_in[row * m + col];
            h_out[row * m + col] = kept;
            if ((params.flags & 1u) != 0u) {
                y[at] = select(0.0, kept, (params.flags & 16u) != 0u);
            }
            return;
        }
        var z = p[at] + acc;
        if (CLIP > 0.0) {
            z = clamp(z, -CLIP, CLIP);
        }
        let v = activate(z);
        h_out[row * m + col] = v;
        if ((params.flags & 1u) != 0u) {
            y[at] = v;
        }
    }
}
