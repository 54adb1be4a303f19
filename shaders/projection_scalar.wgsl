// Buffers and loads of the projection GEMM for any shape: element by element, each bounds-checked
// (k or cols need not be multiples of 4). Prepended to projection.wgsl.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<f32>;

// X[row, kk .. kk + 4], zeros past the edges.
fn load_x(row: u32, kk: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (row < dims.rows) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (kk + j < dims.k) {
                v[j] = x[row * dims.k + kk + j];
            }
        }
    }
    return v;
}

// W[kk, col .. col + 4], zeros past the edges.
fn load_w(kk: u32, col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (kk < dims.k) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col + j < dims.cols) {
                v[j] = w[kk * dims.cols + col + j];
            }
        }
    }
    return v;
}

fn load_bias(col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col + j < dims.cols) {
            v[j] = bias[col + j];
        }
    }
    return v;
}

// P[row, col .. col + 4], zeros past the edge: what earlier spans of k summed.
fn load_p(row: u32, col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col + j < dims.cols) {
            v[j] = p[row * dims.cols + col + j];
        }
    }
    return v;
}

fn store_p(row: u32, col: u32, v: vec4<f32>) {
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col + j < dims.cols) {
            p[row * dims.cols + col + j] = v[j];
        }
    }
}
