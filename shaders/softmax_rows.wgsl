// Softmax or log-softmax across the m units of each of the n rows of the state, in place, after a
// recurrent step that ran with the linear activation. One workgroup per row; also stores the row as
// step `step` of the time-major sequence output when asked. The maximum is subtracted first, as
// Keras does, and NaN anywhere in a row makes the whole row NaN, as in Keras. `max_nan` comes from
// activations.wgsl, `Step` from step_params.wgsl, `workgroup_max`, `workgroup_sum` and WG from
// row_reduce.wgsl, all prepended when the module is built.

@group(0) @binding(0) var<storage, read_write> h: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Step;
@group(0) @binding(3) var<storage, read> mask: array<u32>;

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= params.n) {
        return;
    }
    let m = params.m;
    let base = row * m;

    var local_max = bitcast<f32>(0xff800000u);
    for (var i = lid.x; i < m; i = i + WG) {
        local_max = max_nan(local_max, h[base + i]);
    }
    let row_max = workgroup_max(lid.x, local_max);

    var local_sum = 0.0;
    for (var i = lid.x; i < m; i = i + WG) {
        local_sum = local_sum + exp(h[base + i] - row_max);
    }
    let sum = workgroup_sum(lid.x, local_sum);
    let log_sum = log(sum);
    let take_log = (params.flags & 4u) != 0u;
    let write_seq = (params.flags & 2u) != 0u;
    let time = select(params.step, params.t_len - 1u - params.step, (params.flags & 32u) != 0u);
    let out = select(params.step, params.t_len - 1u - params.step, (params.flags & 64u) != 0u);
    let seq_base = (out * params.n + row) * m;
    // Decided after the barriers: a storage read is not uniform, and every invocation must reach
    // every barrier.
    let padded = (params.flags & 8u) != 0u && mask[time * params.n + row] == 0u;
    for (var i = lid.x; i < m; i = i + WG) {
        let shifted = h[base + i] - row_max;
        var v = exp(shifted) / sum;
        if (take_log) {
            v = shifted - log_sum;
        }
        if (padded) {
            v = select(0.0, h[base + i], (params.flags & 16u) != 0u);
        } else {
            h[base + i] = v;
        }
        if (write_seq) {
            y[seq_base + i] = v;
        }
    }
}
