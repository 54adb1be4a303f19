// What the gated-cell kernels (gated_step.wgsl, gated_persistent.wgsl) share: one bind group
// layout, the constants that describe the layer (src/cell.rs's cell and options) and the gates'
// activations. Prepended to each of them, after activations.wgsl and step_params.wgsl.

@group(0) @binding(0) var<storage, read> u: array<f32>;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> h_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;
@group(0) @binding(6) var<uniform> params: Step;
@group(0) @binding(7) var<storage, read> mask: array<u32>;
@group(0) @binding(8) var<storage, read_write> partial: array<f32>;

// 1: LSTM (gates i, f, c, o); 2: GRU, reset gate after the product (z, r, h); 3: GRU with the
// reset gate before the product (in gated_step.wgsl its first phase, 4 its second); 5 (gated_step
// only): a projected LSTM's projection.
override CELL: u32 = 1u;
// The gates' activation (Keras's recurrent_activation), numbered as ACTIVATION is.
override REC_ACTIVATION: u32 = 3u;
override REC_ALPHA: f32 = 0.0;
override REC_BETA: f32 = 0.0;
// An LSTM's cell state activation (ONNX's h).
override OUT_ACTIVATION: u32 = 1u;
override OUT_ALPHA: f32 = 0.0;
override OUT_BETA: f32 = 0.0;
// Each gate's pre-activation is clamped to [-CLIP, CLIP]; 0 means none.
override CLIP: f32 = 0.0;
// An LSTM's forget gate is 1 - i.
override INPUT_FORGET: bool = false;
// U is followed by the cell's vector: an LSTM's peepholes (3·M: i, f, o) or a GRU's recurrent
// bias (3·M: z, r, h).
override HAS_VECTOR: bool = false;
// gated_step.wgsl's batch rows per thread: 1 or 4.
override ROWS_PER_THREAD: u32 = 1u;
// The width P of a projected LSTM's state (gated_step.wgsl); 0: no projection, M wide.
override WIDTH: u32 = 0u;

fn act(x: f32) -> f32 {
    return activate_with(ACTIVATION, ACT_ALPHA, ACT_BETA, x);
}

fn pre(x: f32) -> f32 {
    if (CLIP > 0.0) {
        return clamp(x, -CLIP, CLIP);
    }
    return x;
}

fn rec(x: f32) -> f32 {
    return activate_with(REC_ACTIVATION, REC_ALPHA, REC_BETA, pre(x));
}
