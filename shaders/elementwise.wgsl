// One elementwise operation over tensors of up to 8 axes, each operand read through its own
// strides (0 along an axis it is broadcast over, so NumPy broadcasting, transposes, slices of a
// concatenation and repeats are all strides), or a constant. Every value is a 32-bit word: a
// float32, an int32 or a boolean (0 or 1); each operand's kind says which, and the output's kind
// what to store. One thread per output element, no loop longer than the rank.
//
// OP: 0 copy/cast a; 1 a + b; 2 a - b; 3 a · b; 4 a / b; 5 max(a, b); 6 min(a, b) (both NaN when
// either is, as jnp.maximum); 7 a compared with b (the relation in bits 16-23: 0 ==, 1 !=, 2 >,
// 3 >=, 4 <, 5 <=; in the type bits 8-15 say: 0 float32, 1 int32, 2 boolean); 9 a and b;
// 10 a or b; 11 not a; 12 where(c, a, b); 13 PReLU: relu(a) - b · relu(-a); 14 a · b + c;
// 15 1 / sqrt(a + b).

struct Params {
    count: u32,
    rank: u32,
    // The operation in bits 0-7, the comparison kind in bits 8-15.
    op: u32,
    // Kinds of out, a, b, c, four bits each from bit 0: bits 0-1 the dtype (0 float32, 1 int32,
    // 2 boolean), bit 2 set for a constant (the value in `consts`, strides unused).
    kinds: u32,
    // Element offsets of out, a, b, c.
    offsets: vec4<u32>,
    // The constants' bits (a, b, c in x, y, z).
    consts: vec4<u32>,
    shape: array<vec4<u32>, 2>,
    // Strides of out, a, b, c, in elements.
    strides: array<array<vec4<u32>, 2>, 4>,
}

@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> c: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

const F32: u32 = 0u;
const I32: u32 = 1u;

// WGSL lets compilers assume floats are never NaN; the bit pattern cannot be folded away.
fn nan_bits(x: u32) -> bool {
    return (x & 0x7fffffffu) > 0x7f800000u;
}

fn kind(operand: u32) -> u32 {
    return (params.kinds >> (4u * operand)) & 15u;
}

fn as_f32(raw: u32, k: u32) -> f32 {
    switch k & 3u {
        case 0u: { return bitcast<f32>(raw); }
        case 1u: { return f32(bitcast<i32>(raw)); }
        default: { return select(0.0, 1.0, raw != 0u); }
    }
}

fn as_i32(raw: u32, k: u32) -> i32 {
    switch k & 3u {
        // Truncation toward zero, as JAX's astype (the host checked the range).
        case 0u: { return i32(bitcast<f32>(raw)); }
        case 1u: { return bitcast<i32>(raw); }
        default: { return select(0, 1, raw != 0u); }
    }
}

// Nonzero is true, NaN too.
fn as_bool(raw: u32, k: u32) -> bool {
    if ((k & 3u) == F32) {
        return (raw & 0x7fffffffu) != 0u;
    }
    return raw != 0u;
}

fn stride(operand: u32, axis: u32) -> u32 {
    return params.strides[operand][axis / 4u][axis % 4u];
}

// The word of `operand` (1 a, 2 b, 3 c) at the output element with coordinates `coords`.
fn load(operand: u32, coords: array<u32, 8>) -> u32 {
    let k = kind(operand);
    if ((k & 4u) != 0u) {
        return params.consts[operand - 1u];
    }
    // Indexed at run time, so held in a variable.
    var index = coords;
    var at = params.offsets[operand];
    for (var i = 0u; i < params.rank; i = i + 1u) {
        at = at + index[i] * stride(operand, i);
    }
    switch operand {
        case 1u: { return a[at]; }
        case 2u: { return b[at]; }
        default: { return c[at]; }
    }
}

fn store_f32(at: u32, v: f32) {
    let k = kind(0u) & 3u;
    if (k == F32) {
        out[at] = bitcast<u32>(v);
    } else if (k == I32) {
        out[at] = bitcast<u32>(i32(v));
    } else {
        out[at] = select(0u, 1u, (bitcast<u32>(v) & 0x7fffffffu) != 0u);
    }
}

fn store_bool(at: u32, v: bool) {
    let k = kind(0u) & 3u;
    if (k == F32) {
        out[at] = bitcast<u32>(select(0.0, 1.0, v));
    } else {
        out[at] = select(0u, 1u, v);
    }
}

// Where `x` stands to `y`: -1 below, 0 equal, 1 above; 2 when they are unordered (a NaN).
fn order(x: u32, y: u32) -> i32 {
    switch (params.op >> 8u) & 255u {
        case 0u: {
            let fx = as_f32(x, kind(1u));
            let fy = as_f32(y, kind(2u));
            if (nan_bits(bitcast<u32>(fx)) || nan_bits(bitcast<u32>(fy))) {
                return 2;
            }
            return select(select(0, 1, fx > fy), -1, fx < fy);
        }
        case 1u: {
            let ix = as_i32(x, kind(1u));
            let iy = as_i32(y, kind(2u));
            return select(select(0, 1, ix > iy), -1, ix < iy);
        }
        default: {
            let bx = select(0, 1, as_bool(x, kind(1u)));
            let by = select(0, 1, as_bool(y, kind(2u)));
            return bx - by;
        }
    }
}

// The relation in bits 16-23 of OP between `x` and `y` (unordered: only != holds).
fn holds(x: u32, y: u32) -> bool {
    let o = order(x, y);
    switch (params.op >> 16u) & 255u {
        case 0u: { return o == 0; }
        case 1u: { return o != 0; }
        case 2u: { return o == 1; }
        case 3u: { return o == 0 || o == 1; }
        case 4u: { return o == -1; }
        default: { return o == 0 || o == -1; }
    }
}

fn max_nan(x: f32, y: f32) -> f32 {
    if (nan_bits(bitcast<u32>(x))) {
        return x;
    }
    if (nan_bits(bitcast<u32>(y))) {
        return y;
    }
    return select(x, y, y > x);
}

fn min_nan(x: f32, y: f32) -> f32 {
    if (nan_bits(bitcast<u32>(x))) {
        return x;
    }
    if (nan_bits(bitcast<u32>(y))) {
        return y;
    }
    return select(x, y, y < x);
}

// relu keeping NaN, as jax.nn.relu.
fn relu(x: f32) -> f32 {
    return select(x, 0.0, x < 0.0);
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
    // The output element's coordinates, last axis fastest.
    var index: array<u32, 8>;
    var rest = e;
    for (var i = params.rank; i > 0u; i = i - 1u) {
        let size = params.shape[(i - 1u) / 4u][(i - 1u) % 4u];
        index[i - 1u] = rest % size;
        rest = rest / size;
    }
    var at = params.offsets[0];
    for (var i = 0u; i < params.rank; i = i + 1u) {
        at = at + index[i] * stride(0u, i);
    }
    let op = params.op & 255u;
    let x = load(1u, index);
    switch op {
        case 0u: {
            let k = kind(1u) & 3u;
            let ko = kind(0u) & 3u;
            if (ko == 2u) {
                store_bool(at, as_bool(x, k));
            } else if (ko == I32) {
                out[at] = bitcast<u32>(as_i32(x, k));
            } else {
                out[at] = bitcast<u32>(as_f32(x, k));
            }
        }
        case 7u: {
            store_bool(at, holds(x, load(2u, index)));
        }
        case 9u, 10u: {
            let p = as_bool(x, kind(1u));
            let q = as_bool(load(2u, index), kind(2u));
            store_bool(at, select(p || q, p && q, op == 9u));
        }
        case 11u: {
            store_bool(at, !as_bool(x, kind(1u)));
        }
        case 12u: {
            // Selected, not blended: the branch not taken may hold NaN.
            let pick = as_bool(load(3u, index), kind(3u));
            out[at] = select(load(2u, index), x, pick);
        }
        default: {
            let p = as_f32(x, kind(1u));
            let q = as_f32(load(2u, index), kind(2u));
            var v = 0.0;
            switch op {
                case 1u: { v = p + q; }
                case 2u: { v = p - q; }
                case 3u: { v = p * q; }
                case 4u: { v = p / q; }
                case 5u: { v = max_nan(p, q); }
                case 6u: { v = min_nan(p, q); }
                case 13u: { v = relu(p) - q * relu(-p); }
                case 15u: { v = inverseSqrt(p + q); }
                default: { v = p * q + as_f32(load(3u, index), kind(3u)); }
            }
            store_f32(at, v);
        }
    }
}
