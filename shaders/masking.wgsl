// Keras's Masking layer, in place on `rows` rows of `width` features: a row is kept (mask 1)
// when any feature differs from the mask value, else masked (0) and multiplied by 0 as Keras
// does, so NaN and infinities become NaN rather than 0. One thread per row.

struct Params {
    rows: u32,
    width: u32,
    mask_value: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> mask: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

// WGSL lets compilers assume floats are never NaN, so NaN is found by its bit pattern (NaN
// differs from any mask value, as in Keras).
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = gid.x + gid.y * nwg.x * 64u;
    if (row >= params.rows) {
        return;
    }
    let base = row * params.width;
    var keep = false;
    for (var c = 0u; c < params.width; c = c + 1u) {
        let v = x[base + c];
        if (v != params.mask_value || is_nan(v)) {
            keep = true;
        }
    }
    mask[row] = select(0u, 1u, keep);
    if (!keep) {
        for (var c = 0u; c < params.width; c = c + 1u) {
            x[base + c] = x[base + c] * 0.0;
        }
    }
}
