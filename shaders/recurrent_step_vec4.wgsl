// U and h_in of the per-step kernel when M is a multiple of 4: every quad of a row lies inside
// them, so both are read as vec4, one load per quad, without bounds checks (the kernel clamps
// the indices). Prepended to recurrent_step.wgsl.

@group(0) @binding(0) var<storage, read> u: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> h_in: array<vec4<f32>>;

// U[k, 4 · quad .. 4 · quad + 4]; k < M.
fn load_u(k: u32, quad: u32) -> vec4<f32> {
    return u[k * (params.m / 4u) + quad];
}

// h_in[row, k .. k + 4]; k a multiple of 4 below M.
fn load_h(row: u32, k: u32) -> vec4<f32> {
    return h_in[(row * params.m + k) / 4u];
}

// The activation's slope of column `col`, after the M × M of U (UNIT_SLOPES).
fn load_slope(col: u32) -> f32 {
    let i = params.m * params.m + col;
    return u[i / 4u][i % 4u];
}

// h_in's element i (row · M + column).
fn h_at(i: u32) -> f32 {
    return h_in[i / 4u][i % 4u];
}
