// recurrent_resident.wgsl's slice sums without subgroups: always through workgroup memory.

fn lanes_in_order(t: u32) -> bool {
    return false;
}

// Never called: `lanes_in_order` sends every step to `finish_quads`.
fn sum_slices(v: vec4<f32>) -> vec4<f32> {
    return v;
}
