// Buffers and loads of the projection GEMM when k and cols are multiples of 4: every quad is
// wholly inside or wholly outside the matrices, so the buffers are read and written as vec4.
// Prepended to projection.wgsl.

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> p: array<vec4<f32>>;

fn load_x(row: u32, kk: u32) -> vec4<f32> {
    if (row < dims.rows && kk < dims.k) {
        return x[(row * dims.k + kk) / 4u];
    }
    return vec4<f32>(0.0);
}

fn load_w(kk: u32, col: u32) -> vec4<f32> {
    if (kk < dims.k && col < dims.cols) {
        return w[(kk * dims.cols + col) / 4u];
    }
    return vec4<f32>(0.0);
}

fn load_bias(col: u32) -> vec4<f32> {
    return bias[col / 4u];
}

fn load_p(row: u32, col: u32) -> vec4<f32> {
    return p[(row * dims.cols + col) / 4u];
}

fn store_p(row: u32, col: u32, v: vec4<f32>) {
    p[(row * dims.cols + col) / 4u] = v;
}
