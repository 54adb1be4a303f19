// Bidirectional's merge of the forward output `a` and the backward output `b`, both `rows` rows
// of `width` (time-major sequences, or the last outputs): MODE 0 concatenates each row (the
// output is rows × 2 · width), 1 sums, 2 multiplies, 3 averages. MODE 4 copies `a` alone,
// zeroing row r where mask[mask_offset + r] is 0: a layer's last output under
// `zero_output_for_mask` when its last processed step was masked (`b` is not read). One thread
// per output element.

struct Params {
    rows: u32,
    width: u32,
    mode: u32,
    mask_offset: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;
@group(0) @binding(4) var<storage, read> mask: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let e = gid.x + gid.y * nwg.x * 256u;
    let width = params.width;
    if (e >= params.rows * width) {
        return;
    }
    let row = e / width;
    let c = e % width;
    switch params.mode {
        case 0u: {
            out[row * 2u * width + c] = a[e];
            out[row * 2u * width + width + c] = b[e];
        }
        case 1u: { out[e] = a[e] + b[e]; }
        case 2u: { out[e] = a[e] * b[e]; }
        case 3u: { out[e] = (a[e] + b[e]) * 0.5; }
        default: {
            // Selected, not multiplied: a masked row is 0 even where it held NaN, as Keras's
            // `where` gives.
            out[e] = select(0.0, a[e], mask[params.mask_offset + row] != 0u);
        }
    }
}
