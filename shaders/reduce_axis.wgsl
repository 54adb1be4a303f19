// A reduction along one axis of a tensor of up to 8 axes: out[o] = fold over k < K of
// x[o's offset + k · stride], each output element's offset from its coordinates and the input's
// strides for the axes that remain. One thread per output element, looping K times (the host
// keeps K within the loop budget). Values are 32-bit words as in elementwise.wgsl.
//
// OP: 0 sum (float32); 1 max and 2 min (float32, NaN when any is); 3 any and 4 all (booleans,
// nonzero is true).

struct Params {
    count: u32,
    rank: u32,
    op: u32,
    // The input's dtype (0 float32, 1 int32, 2 boolean).
    kind: u32,
    // The reduced axis: its length, the input's stride along it, the input's offset.
    length: u32,
    step: u32,
    offset: u32,
    _pad: u32,
    // The output's shape, and for each of its axes the output's and the input's strides.
    shape: array<vec4<u32>, 2>,
    out_strides: array<vec4<u32>, 2>,
    in_strides: array<vec4<u32>, 2>,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

fn nan_bits(v: u32) -> bool {
    return (v & 0x7fffffffu) > 0x7f800000u;
}

fn value(raw: u32) -> f32 {
    switch params.kind {
        case 0u: { return bitcast<f32>(raw); }
        case 1u: { return f32(bitcast<i32>(raw)); }
        default: { return select(0.0, 1.0, raw != 0u); }
    }
}

fn truth(raw: u32) -> bool {
    if (params.kind == 0u) {
        return (raw & 0x7fffffffu) != 0u;
    }
    return raw != 0u;
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= params.count) {
        return;
    }
    var rest = e;
    var at_out = 0u;
    var at_in = params.offset;
    for (var i = params.rank; i > 0u; i = i - 1u) {
        let axis = i - 1u;
        let size = params.shape[axis / 4u][axis % 4u];
        let coord = rest % size;
        rest = rest / size;
        at_out = at_out + coord * params.out_strides[axis / 4u][axis % 4u];
        at_in = at_in + coord * params.in_strides[axis / 4u][axis % 4u];
    }
    let op = params.op;
    if (op >= 3u) {
        let any = op == 3u;
        var result = !any;
        for (var k = 0u; k < params.length; k = k + 1u) {
            let t = truth(x[at_in + k * params.step]);
            result = select(result && t, result || t, any);
        }
        out[at_out] = select(0u, 1u, result);
        return;
    }
    var acc = 0.0;
    if (op != 0u) {
        acc = value(x[at_in]);
    }
    for (var k = 0u; k < params.length; k = k + 1u) {
        let v = value(x[at_in + k * params.step]);
        if (op == 0u) {
            acc = acc + v;
        } else if (nan_bits(bitcast<u32>(acc)) || nan_bits(bitcast<u32>(v))) {
            acc = bitcast<f32>(0x7fc00000u);
        } else if (op == 1u) {
            acc = max(acc, v);
        } else {
            acc = min(acc, v);
        }
    }
    out[at_out] = bitcast<u32>(acc);
}
