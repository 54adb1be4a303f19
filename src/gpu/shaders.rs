//! Every WGSL source of the crate, in one place. Nothing else spells a shader path.

/// Keras activations, selected by the `ACTIVATION` pipeline constant; prepended to kernels that
/// apply an activation.
pub const ACTIVATIONS: &str = include_str!("../../shaders/activations.wgsl");

/// Input projection of all time steps at once: `P = X · kernel + bias`.
pub const PROJECTION: &str = include_str!("../../shaders/projection.wgsl");

/// One recurrent step: `h_t = activate(P_t + h_{t-1} · recurrent_kernel)` (needs [`ACTIVATIONS`]).
pub const RECURRENT_STEP: &str = include_str!("../../shaders/recurrent_step.wgsl");

/// Softmax or log-softmax across the units of each row of the state.
pub const SOFTMAX_ROWS: &str = include_str!("../../shaders/softmax_rows.wgsl");

/// The recurrent-step module as compiled: the activations followed by the step kernel.
pub fn recurrent_step_module() -> String {
    format!("{ACTIVATIONS}\n{RECURRENT_STEP}")
}

/// Every module the crate compiles, by label, as compiled (for validation tests).
pub fn all_modules() -> Vec<(&'static str, String)> {
    vec![
        ("rnn.projection", PROJECTION.to_string()),
        ("rnn.recurrent_step", recurrent_step_module()),
        ("rnn.softmax_rows", SOFTMAX_ROWS.to_string()),
    ]
}
