// What the two persistent simple-cell kernels (recurrent_persistent.wgsl,
// recurrent_resident.wgsl) share: the bindings of recurrent_step.wgsl's layout, the options and
// the walk through time. Prepended to each, after activations.wgsl and step_params.wgsl. P, Y
// and the mask are time-major: step s of row n at (s · n_rows + n) · m.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Step;
@group(0) @binding(6) var<storage, read> mask: array<u32>;

// ONNX's clip on the pre-activation; 0 means none.
override CLIP: f32 = 0.0;
// Keras's PReLU as the activation: ACTIVATION is leaky_relu and each unit takes its own slope,
// stored after U in U's buffer.
override UNIT_SLOPES: bool = false;

fn is_padded(time: u32, row: u32) -> bool {
    return (params.flags & 8u) != 0u && mask[time * params.n + row] == 0u;
}

// The input time step s reads.
fn time_of(s: u32) -> u32 {
    return select(s, params.t_len - 1u - s, (params.flags & 32u) != 0u);
}

// Where step s stores its output.
fn out_of(s: u32) -> u32 {
    return select(s, params.t_len - 1u - s, (params.flags & 64u) != 0u);
}

// Clips and activates the pre-activation `z` of column `col`.
fn finish_unit(z: f32, col: u32) -> f32 {
    var v = z;
    if (CLIP > 0.0) {
        v = clamp(v, -CLIP, CLIP);
    }
    if (UNIT_SLOPES) {
        return activate_with(ACTIVATION, u[params.m * params.m + col], ACT_BETA, v);
    }
    return activate(v);
}
