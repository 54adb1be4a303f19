// Keras 3 elementwise activations, selected by the pipeline constant ACTIVATION. The numbers are
// the positions in `Activation::ALL` (src/activation.rs); a GPU test checks every one against the
// CPU definitions, and golden tests check both against Keras.
//
// Comparisons are written so that NaN takes the branch Keras's formula takes for it: NaN for all
// but the shrinks (src/activation.rs has the table of what each gives at NaN and infinities).

override ACTIVATION: u32 = 1u;
// Parameters of the parameterised activations (hard_sigmoid, elu, leaky_relu, and ONNX's Affine,
// ScaledTanh, ThresholdedRelu).
override ACT_ALPHA: f32 = 0.0;
override ACT_BETA: f32 = 0.0;
// The third parameter of Keras's relu (its max_value, -1 for none), read by code 28
// wherever it is applied: a kernel's second activation (a gated cell's recurrent one) never
// is a capped relu (the loaders refuse one).
override ACT_GAMMA: f32 = 0.0;

const SELU_ALPHA: f32 = 1.6732632423543772;
const SELU_SCALE: f32 = 1.0507009873554805;
const SHRINK_THRESHOLD: f32 = 0.5;
const SQUAREPLUS_B: f32 = 4.0;

// WGSL lets compilers assume floats are never NaN, so `x != x` may fold to false; the bit
// pattern cannot be folded away.
fn is_nan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}

// max(a, b), NaN when either is NaN (WGSL's max may return either operand for NaN).
fn max_nan(a: f32, b: f32) -> f32 {
    return select(a, b, b > a || is_nan(b));
}

// Some drivers compute tanh from exp and overflow to NaN for large |x|; tanh(±15) is ±1 in f32.
fn tanh_safe(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    return tanh(clamp(x, -15.0, 15.0));
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// exp(x) to about one ULP: x = k·ln2 + r with |r| ≤ ln2/2 (ln2 split in two, so k·ln2 is exact),
// exp(r) by its Taylor series to r⁷ (truncation below 1e-8), scaled by 2^k in two halves so that
// neither leaves ldexp's range. WGSL lets the built-in exp be off by 3 + 2·|x| ULP, about 180 ULP
// at x = 88, which recurrent steps compound.
fn exp_accurate(x: f32) -> f32 {
    if (is_nan(x)) {
        return x;
    }
    if (x > 88.72284) {
        return bitcast<f32>(0x7f800000u);
    }
    if (x < -103.97208) {
        return 0.0;
    }
    let k = round(x * 1.44269504);
    let r = (x - k * bitcast<f32>(0x3f317200u)) - k * bitcast<f32>(0x35bfbe8eu);
    var p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let e = i32(k);
    let half = e / 2;
    return ldexp(ldexp(p, half), e - half);
}

fn relu6(x: f32) -> f32 {
    if (x < 0.0) {
        return 0.0;
    }
    if (x > 6.0) {
        return 6.0;
    }
    return x;
}

fn expm1(x: f32) -> f32 {
    // exp(x) - 1 loses relative precision near 0; the Taylor terms keep it for |x| < 1e-3.
    if (abs(x) < 1e-3) {
        return x + 0.5 * x * x + x * x * x / 6.0;
    }
    return exp(x) - 1.0;
}

// log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
fn softplus(x: f32) -> f32 {
    let e = exp(-abs(x));
    var log1p_e = log(1.0 + e);
    if (e < 1e-4) {
        log1p_e = e - 0.5 * e * e;
    }
    return select(0.0, x, x > 0.0) + log1p_e;
}

// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7): WGSL has no erf, and Keras's
// "gelu" string is the exact erf form.
fn erf_approx(x: f32) -> f32 {
    let a = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let v = 1.0 - poly * exp(-a * a);
    return select(v, -v, x < 0.0);
}

// Keras 3's ReLU.static_call step by step (src/activation.rs has the same): x kept above the
// threshold (NaN takes the else branch, 0), clipped to the cap, minus the negative part.
fn keras_relu(x: f32, slope: f32, threshold: f32, cap: f32) -> f32 {
    let relu_x = select(x, 0.0, x < 0.0);
    var negative_part = select(-x, 0.0, -x < 0.0);
    var y = relu_x;
    if (threshold != 0.0) {
        let shifted = -x + threshold;
        negative_part = select(shifted, 0.0, shifted < 0.0);
        y = select(0.0, x, x > threshold);
    } else if (cap == 6.0) {
        y = relu6(x);
    }
    if (cap >= 0.0 && (threshold != 0.0 || cap != 6.0) && !is_nan(y)) {
        y = clamp(y, 0.0, cap);
    }
    if (slope != 0.0) {
        y = y - slope * negative_part;
    }
    return y;
}

fn activate(x: f32) -> f32 {
    return activate_with(ACTIVATION, ACT_ALPHA, ACT_BETA, x);
}

// The activation numbered `code` with parameters `alpha` and `beta` (pipeline constants at every
// call, so the switch folds away): for kernels that apply two activations (gated_step.wgsl).
fn activate_with(code: u32, alpha: f32, beta: f32, x: f32) -> f32 {
    switch code {
        case 0u: { return x; }
        case 1u: { return tanh_safe(x); }
        case 2u: { return select(x, 0.0, x < 0.0); }
        case 3u: { return sigmoid(x); }
        case 4u: {
            // clamp may return either bound for NaN; Keras gives NaN.
            if (is_nan(x)) { return x; }
            return clamp(alpha * x + beta, 0.0, 1.0);
        }
        case 5u: { return select(alpha * expm1(x), x, x > 0.0); }
        case 6u: { return select(SELU_SCALE * SELU_ALPHA * expm1(x), SELU_SCALE * x, x > 0.0); }
        case 7u: { return softplus(x); }
        case 8u: { return x / (1.0 + abs(x)); }
        case 9u: { return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476)); }
        case 10u: { return x * sigmoid(x); }
        case 11u: { return exp_accurate(x); }
        case 12u: { return relu6(x); }
        case 13u: { return select(x, alpha * x, x < 0.0); }
        case 14u: { return x * tanh_safe(softplus(x)); }
        // Keras's order: x · (relu6(x + 3) / 6), which is x itself for huge x.
        case 15u: { return x * (relu6(x + 3.0) / 6.0); }
        case 16u: { return -softplus(-x); }
        case 17u: { return x - tanh_safe(x); }
        case 18u: { return select(expm1(x), x, x > 0.0); }
        case 19u: {
            if (x < -1.0) { return -1.0; }
            if (x > 1.0) { return 1.0; }
            return x;
        }
        // The shrinks give 0 for NaN, as Keras's `where` does.
        case 20u: {
            if (is_nan(x)) { return 0.0; }
            if (x > SHRINK_THRESHOLD) { return x - SHRINK_THRESHOLD; }
            if (x < -SHRINK_THRESHOLD) { return x + SHRINK_THRESHOLD; }
            return 0.0;
        }
        case 21u: {
            if (is_nan(x)) { return 0.0; }
            return select(0.0, x, abs(x) > SHRINK_THRESHOLD);
        }
        case 22u: { return (x + sqrt(x * x + SQUAREPLUS_B)) * 0.5; }
        case 23u: {
            if (x <= -1.0) { return 0.0; }
            if (x >= 1.0) { return x; }
            return (x + 1.0) * (x + 1.0) * 0.25;
        }
        case 24u: {
            if (x <= -1.0) { return 0.0; }
            if (x >= 1.0) { return 1.0; }
            return 0.5 * (x + 1.0);
        }
        case 25u: { return alpha * x + beta; }
        case 26u: { return alpha * tanh_safe(beta * x); }
        case 27u: { return select(x, 0.0, x <= alpha); }
        case 28u: { return keras_relu(x, alpha, beta, ACT_GAMMA); }
        default: { return x; }
    }
}
