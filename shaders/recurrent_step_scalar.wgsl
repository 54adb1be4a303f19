// U and h_in of the per-step kernel for any M: a quad is four scalar loads, indices past the last
// row or column clamped to it, h zero past M (so that the clamped rows of U add nothing).
// Prepended to recurrent_step.wgsl.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;

// U[k, 4 · quad .. 4 · quad + 4], rows past M - 1 and columns past M - 1 clamped to it.
fn load_u(k: u32, quad: u32) -> vec4<f32> {
    let last = params.m - 1u;
    let row = min(k, last) * params.m;
    let col = quad * 4u;
    return vec4<f32>(
        u[row + min(col, last)],
        u[row + min(col + 1u, last)],
        u[row + min(col + 2u, last)],
        u[row + min(col + 3u, last)],
    );
}

// h_in[row, k .. k + 4], zero past M.
fn load_h(row: u32, k: u32) -> vec4<f32> {
    let m = params.m;
    let base = row * m;
    let last = base + m - 1u;
    return select(vec4<f32>(0.0), vec4<f32>(
        h_in[min(base + k, last)],
        h_in[min(base + k + 1u, last)],
        h_in[min(base + k + 2u, last)],
        h_in[min(base + k + 3u, last)],
    ), vec4<u32>(k, k + 1u, k + 2u, k + 3u) < vec4<u32>(m));
}

// The activation's slope of column `col`, after the M × M of U (UNIT_SLOPES).
fn load_slope(col: u32) -> f32 {
    return u[params.m * params.m + col];
}

// h_in's element i (row · M + column).
fn h_at(i: u32) -> f32 {
    return h_in[i];
}
