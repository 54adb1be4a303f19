// Embedding lookup on the GPU: out[i] = table[ids[i]] for each of the `count` time-major token
// ids (i = t · n + row), and with MASK_ZERO (flags bit 0) mask[i] = (ids[i] != 0), Keras's
// `mask_zero`. The ids were checked against the vocabulary on the host before upload, so every
// lookup is in range. One thread per output element.

struct Params {
    count: u32,
    width: u32,
    flags: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    // Two-dimensional dispatch: past 65535 workgroups the rest go to y.
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= params.count * params.width) {
        return;
    }
    let i = e / params.width;
    let c = e % params.width;
    let id = ids[i];
    out[e] = table[id * params.width + c];
    if ((params.flags & 1u) != 0u && c == 0u) {
        mask[i] = select(0u, 1u, id != 0u);
    }
}
