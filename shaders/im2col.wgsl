// Conv1D's windows as rows for the projection GEMM (im2col): row r = t · N + n (time-major, so
// that the GEMM's output is a time-major sequence) holds, for each kernel tap k and input
// channel c, x[n, t · stride + k · dilation - pad_left, c], or 0 where that step is outside the
// input (the zero padding of "same" and "causal"). x is read through its strides. One thread
// per element of the rows, no loop.

struct Params {
    count: u32,
    batch: u32,
    steps: u32,
    channels: u32,
    taps: u32,
    stride: u32,
    dilation: u32,
    pad_left: u32,
    // x's strides along batch, steps and channels, and its offset.
    stride_n: u32,
    stride_t: u32,
    stride_c: u32,
    offset: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> rows: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let e = gid.x + gid.y * nwg.x * 256u;
    if (e >= params.count) {
        return;
    }
    let width = params.taps * params.channels;
    let row = e / width;
    let j = e % width;
    let k = j / params.channels;
    let c = j % params.channels;
    let t_out = row / params.batch;
    let n = row % params.batch;
    // Signed: a step before the input's start is padding.
    let t = i32(t_out * params.stride + k * params.dilation) - i32(params.pad_left);
    var v = 0.0;
    if (t >= 0 && u32(t) < params.steps) {
        v = x[params.offset + n * params.stride_n + u32(t) * params.stride_t + c * params.stride_c];
    }
    rows[e] = v;
}
