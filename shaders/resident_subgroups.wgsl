// recurrent_resident.wgsl's slice sums where the device has wgpu's SUBGROUP feature (naga takes
// the subgroup functions without an `enable`).

// Whether this thread's subgroup is an aligned run of consecutive threads whose length SLICES
// divides, so that the SLICES threads of a quad are lanes of one subgroup that differ in the low
// bits of their index. Called by every thread of the workgroup, none returned.
fn lanes_in_order(t: u32) -> bool {
    let first = subgroupBroadcastFirst(t);
    let size = subgroupAdd(1u);
    let rank = subgroupExclusiveAdd(1u);
    return t - first == rank && first % size == 0u && size % SLICES == 0u;
}

// The sum over the SLICES threads of a quad (SLICES a power of two, at most 8), in each of them.
fn sum_slices(v: vec4<f32>) -> vec4<f32> {
    var sum = v;
    if (SLICES > 1u) {
        sum = sum + subgroupShuffleXor(sum, 1u);
    }
    if (SLICES > 2u) {
        sum = sum + subgroupShuffleXor(sum, 2u);
    }
    if (SLICES > 4u) {
        sum = sum + subgroupShuffleXor(sum, 4u);
    }
    return sum;
}
