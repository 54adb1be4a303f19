// A Dense layer's activation, or an Activation layer, in place on `rows` rows of `width` values:
// ACTIVATION elementwise (ROW_WISE 0), or softmax (1) or log-softmax (2) across each row, the
// maximum subtracted first and NaN anywhere making the row NaN, as in Keras. One workgroup per
// row. `activate` and the ACTIVATION constants come from activations.wgsl, `workgroup_max`,
// `workgroup_sum` and WG from row_reduce.wgsl, both prepended when the module is built.

struct Params {
    rows: u32,
    width: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> params: Params;

// 0: ACTIVATION elementwise; 1: softmax across each row; 2: log-softmax.
override ROW_WISE: u32 = 0u;

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    // Uniform across the workgroup, so returning here leaves no barrier half-reached.
    if (row >= params.rows) {
        return;
    }
    let width = params.width;
    let base = row * width;
    if (ROW_WISE == 0u) {
        for (var i = lid.x; i < width; i = i + WG) {
            x[base + i] = activate(x[base + i]);
        }
        return;
    }

    var local_max = bitcast<f32>(0xff800000u);
    for (var i = lid.x; i < width; i = i + WG) {
        local_max = max_nan(local_max, x[base + i]);
    }
    let row_max = workgroup_max(lid.x, local_max);

    var local_sum = 0.0;
    for (var i = lid.x; i < width; i = i + WG) {
        local_sum = local_sum + exp(x[base + i] - row_max);
    }
    let sum = workgroup_sum(lid.x, local_sum);
    let log_sum = log(sum);
    for (var i = lid.x; i < width; i = i + WG) {
        let shifted = x[base + i] - row_max;
        if (ROW_WISE == 2u) {
            x[base + i] = shifted - log_sum;
        } else {
            x[base + i] = exp(shifted) / sum;
        }
    }
}
