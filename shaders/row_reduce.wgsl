// Reductions across the WG invocations of one workgroup, for kernels that give each row a
// workgroup (softmax_rows.wgsl, rows_activation.wgsl). They hold barriers: every invocation of the
// workgroup calls them, in uniform control flow. `max_nan` comes from activations.wgsl.

const WG: u32 = 64u;

var<workgroup> scratch: array<f32, WG>;

// The maximum of every invocation's `value`, NaN when any is NaN (as Keras's softmax gives it).
fn workgroup_max(lid: u32, value: f32) -> f32 {
    scratch[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] = max_nan(scratch[lid], scratch[lid + stride]);
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    // Everyone has read the result before the next reduction overwrites `scratch`.
    workgroupBarrier();
    return result;
}

// The sum of every invocation's `value`.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    scratch[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            scratch[lid] = scratch[lid] + scratch[lid + stride];
        }
        workgroupBarrier();
    }
    let result = scratch[0];
    workgroupBarrier();
    return result;
}
