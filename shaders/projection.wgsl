// Input projection of every time step at once: P = X · W + b, one tiled GEMM over all rows.
// X is rows × k (rows = steps × batch, time-major), W is k × cols (Keras's kernel, D × M),
// b has cols entries (zeros for a layer without bias), P is rows × cols.

struct Dims {
    rows: u32,
    k: u32,
    cols: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<f32>;
@group(0) @binding(4) var<uniform> dims: Dims;

const TILE: u32 = 16u;

var<workgroup> x_tile: array<array<f32, 16>, 16>;
var<workgroup> w_tile: array<array<f32, 16>, 16>;

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let row = wid.y * TILE + lid.y;
    let col = wid.x * TILE + lid.x;
    var acc = 0.0;
    let tiles = (dims.k + TILE - 1u) / TILE;
    for (var i = 0u; i < tiles; i = i + 1u) {
        let kx = i * TILE + lid.x;
        var xv = 0.0;
        if (row < dims.rows && kx < dims.k) {
            xv = x[row * dims.k + kx];
        }
        x_tile[lid.y][lid.x] = xv;
        let kw = i * TILE + lid.y;
        var wv = 0.0;
        if (kw < dims.k && col < dims.cols) {
            wv = w[kw * dims.cols + col];
        }
        w_tile[lid.y][lid.x] = wv;
        workgroupBarrier();
        for (var j = 0u; j < TILE; j = j + 1u) {
            acc = acc + x_tile[lid.y][j] * w_tile[j][lid.x];
        }
        workgroupBarrier();
    }
    if (row < dims.rows && col < dims.cols) {
        p[row * dims.cols + col] = acc + bias[col];
    }
}
