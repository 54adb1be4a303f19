//! Every WGSL source of the crate, in one place. Nothing else spells a shader path.

/// Keras activations, selected by the `ACTIVATION` pipeline constant; prepended to kernels that
/// apply an activation.
pub const ACTIVATIONS: &str = include_str!("../../shaders/activations.wgsl");

/// Input projection of all time steps at once: `P = X · kernel + bias`, a register-tiled GEMM
/// (needs [`PROJECTION_SCALAR`] or [`PROJECTION_VEC4`] for its buffers and loads).
pub const PROJECTION: &str = include_str!("../../shaders/projection.wgsl");

/// The projection GEMMs' dispatch parameters (`Dims` on the Rust side).
pub const PROJECTION_DIMS: &str = include_str!("../../shaders/projection_dims.wgsl");

/// The projection GEMM laid out for CPU implementations of the API: each value of X read by a
/// whole workgroup at once (needs the same as [`PROJECTION`]).
pub const PROJECTION_ROWS: &str = include_str!("../../shaders/projection_rows.wgsl");

/// The projection's buffers as `f32` arrays, every element bounds-checked: any shape.
pub const PROJECTION_SCALAR: &str = include_str!("../../shaders/projection_scalar.wgsl");

/// The projection's buffers as `vec4<f32>` arrays: only when *D* and *M* are multiples of 4.
pub const PROJECTION_VEC4: &str = include_str!("../../shaders/projection_vec4.wgsl");

/// The per-step parameters the recurrent kernels share (`StepParams` on the Rust side).
pub const STEP_PARAMS: &str = include_str!("../../shaders/step_params.wgsl");

/// One recurrent step: `h_t = activate(P_t + h_{t-1} · recurrent_kernel)`, register-tiled with
/// optional split-K (needs [`ACTIVATIONS`], [`STEP_PARAMS`], and [`RECURRENT_STEP_VEC4`] or
/// [`RECURRENT_STEP_SCALAR`] for the loads of U and h).
pub const RECURRENT_STEP: &str = include_str!("../../shaders/recurrent_step.wgsl");

/// The per-step kernel's U and h as `vec4<f32>`: only when *M* is a multiple of 4.
pub const RECURRENT_STEP_VEC4: &str = include_str!("../../shaders/recurrent_step_vec4.wgsl");

/// The per-step kernel's U and h as `f32`, a quad as four clamped loads: any *M*.
pub const RECURRENT_STEP_SCALAR: &str = include_str!("../../shaders/recurrent_step_scalar.wgsl");

/// What the persistent simple-cell kernels share: bindings, options, the walk through time.
pub const PERSISTENT_COMMON: &str = include_str!("../../shaders/persistent_common.wgsl");

/// Every step of a chunk in one dispatch, each workgroup looping over time for its own batch rows
/// with the state in workgroup memory (needs what [`recurrent_persistent_module`] prepends).
pub const RECURRENT_PERSISTENT: &str = include_str!("../../shaders/recurrent_persistent.wgsl");

/// Every step of a chunk in one dispatch for layers of up to 128 units, U held in registers and
/// each row's product split over a workgroup's threads (needs what [`recurrent_resident_module`]
/// prepends).
pub const RECURRENT_RESIDENT: &str = include_str!("../../shaders/recurrent_resident.wgsl");

/// The resident kernel's slice sums by subgroup shuffles, where the adapter has subgroups.
pub const RESIDENT_SUBGROUPS: &str = include_str!("../../shaders/resident_subgroups.wgsl");

/// The resident kernel's slice sums without subgroups: through workgroup memory.
pub const RESIDENT_PLAIN: &str = include_str!("../../shaders/resident_plain.wgsl");

/// The gated-cell kernels' bindings, layer constants and gate activations (needs
/// [`ACTIVATIONS`] and [`STEP_PARAMS`]).
pub const GATED_COMMON: &str = include_str!("../../shaders/gated_common.wgsl");

/// One step of a gated cell (LSTM, GRU), fused: the step's recurrent product onto every gate,
/// the gates' nonlinearities and the update of *h* and *c* (needs [`ACTIVATIONS`] and
/// [`STEP_PARAMS`]).
pub const GATED_STEP: &str = include_str!("../../shaders/gated_step.wgsl");

/// Every step of a chunk of a gated cell in one dispatch, each workgroup looping over time for
/// its own batch rows with *h* and *c* in workgroup memory (needs [`ACTIVATIONS`] and
/// [`STEP_PARAMS`]).
pub const GATED_PERSISTENT: &str = include_str!("../../shaders/gated_persistent.wgsl");

/// Workgroup-wide maximum and sum for kernels that give each row a workgroup (needs
/// [`ACTIVATIONS`] for its NaN-aware maximum).
pub const ROW_REDUCE: &str = include_str!("../../shaders/row_reduce.wgsl");

/// Softmax or log-softmax across the units of each row of the state (needs [`ACTIVATIONS`],
/// [`STEP_PARAMS`] and [`ROW_REDUCE`]).
pub const SOFTMAX_ROWS: &str = include_str!("../../shaders/softmax_rows.wgsl");

/// Embedding lookup of time-major token ids, with the `mask_zero` mask.
pub const EMBEDDING: &str = include_str!("../../shaders/embedding.wgsl");

/// One elementwise operation over strided tensors of up to 8 axes (broadcasts, casts,
/// comparisons, logical ops, arithmetic, `where`): a whole model's ops and its layers without
/// weights.
pub const ELEMENTWISE: &str = include_str!("../../shaders/elementwise.wgsl");

/// Conv1D's windows as the rows of the projection GEMM (im2col), zero outside the input.
pub const IM2COL: &str = include_str!("../../shaders/im2col.wgsl");

/// A sum, maximum, minimum, any or all along one axis of a strided tensor.
pub const REDUCE_AXIS: &str = include_str!("../../shaders/reduce_axis.wgsl");

/// An elementwise activation, softmax or log-softmax in place on rows (a `Dense` layer's or an
/// `Activation` layer's; needs [`ACTIVATIONS`] and [`ROW_REDUCE`]).
pub const ROWS_ACTIVATION: &str = include_str!("../../shaders/rows_activation.wgsl");

/// The rows-activation module as compiled: the activations, the row reductions, the kernel.
pub fn rows_activation_module() -> String {
    format!("{ACTIVATIONS}\n{ROW_REDUCE}\n{ROWS_ACTIVATION}")
}

/// The state-softmax module as compiled: the activations (for `max_nan`), the step parameters,
/// the row reductions, the kernel.
pub fn softmax_rows_module() -> String {
    format!("{ACTIVATIONS}\n{STEP_PARAMS}\n{ROW_REDUCE}\n{SOFTMAX_ROWS}")
}

/// The projection module as compiled: vec4 loads and stores when `vectorized` (both *D* and *M*
/// multiples of 4), element-wise ones otherwise.
pub fn projection_module(vectorized: bool) -> String {
    let loads = [PROJECTION_SCALAR, PROJECTION_VEC4][usize::from(vectorized)];
    format!("{loads}\n{PROJECTION_DIMS}\n{PROJECTION}")
}

/// The row-broadcast projection module as compiled, vec4 or element-wise as
/// [`projection_module`].
pub fn projection_rows_module(vectorized: bool) -> String {
    let loads = [PROJECTION_SCALAR, PROJECTION_VEC4][usize::from(vectorized)];
    format!("{loads}\n{PROJECTION_DIMS}\n{PROJECTION_ROWS}")
}

/// The recurrent-step module as compiled: the activations, the step parameters, the loads of U
/// and h (vec4 when `vectorized`, *M* a multiple of 4), the kernel.
pub fn recurrent_step_module(vectorized: bool) -> String {
    let loads = [RECURRENT_STEP_SCALAR, RECURRENT_STEP_VEC4][usize::from(vectorized)];
    format!("{ACTIVATIONS}\n{STEP_PARAMS}\n{loads}\n{RECURRENT_STEP}")
}

/// The persistent recurrent module as compiled: its workgroup size (from `gpu::plan`), the
/// activations, the step parameters, what the persistent kernels share, the kernel.
pub fn recurrent_persistent_module() -> String {
    use crate::gpu::plan::PERSISTENT_THREADS;
    format!(
        "const WG: u32 = {PERSISTENT_THREADS}u;\n\
         {ACTIVATIONS}\n{STEP_PARAMS}\n{PERSISTENT_COMMON}\n{RECURRENT_PERSISTENT}"
    )
}

/// The register-resident persistent module as compiled: its slice sums (with subgroup
/// operations when `subgroups`), its workgroup size and rows of U per
/// thread (from `gpu::plan`), the activations, the step parameters, what the persistent kernels
/// share, the kernel.
pub fn recurrent_resident_module(subgroups: bool) -> String {
    use crate::gpu::plan::{PERSISTENT_THREADS, RESIDENT_K};
    let sums = [RESIDENT_PLAIN, RESIDENT_SUBGROUPS][usize::from(subgroups)];
    format!(
        "{sums}\nconst WG: u32 = {PERSISTENT_THREADS}u;\nconst RESIDENT_K: u32 = {RESIDENT_K}u;\n\
         {ACTIVATIONS}\n{STEP_PARAMS}\n{PERSISTENT_COMMON}\n{RECURRENT_RESIDENT}"
    )
}

/// The gated-step module as compiled: the activations, the step parameters, what the gated
/// kernels share, the kernel.
pub fn gated_step_module() -> String {
    format!("{ACTIVATIONS}\n{STEP_PARAMS}\n{GATED_COMMON}\n{GATED_STEP}")
}

/// The persistent gated module as compiled: the activations, the step parameters, what the
/// gated kernels share, the kernel.
pub fn gated_persistent_module() -> String {
    format!("{ACTIVATIONS}\n{STEP_PARAMS}\n{GATED_COMMON}\n{GATED_PERSISTENT}")
}

/// Every module the crate compiles, by label, as compiled (for validation tests).
pub fn all_modules() -> Vec<(&'static str, String)> {
    vec![
        ("rnn.projection", projection_module(false)),
        ("rnn.projection.vec4", projection_module(true)),
        ("rnn.projection_rows", projection_rows_module(false)),
        ("rnn.projection_rows.vec4", projection_rows_module(true)),
        ("rnn.recurrent_step", recurrent_step_module(false)),
        ("rnn.recurrent_step.vec4", recurrent_step_module(true)),
        ("rnn.recurrent_persistent", recurrent_persistent_module()),
        ("rnn.recurrent_resident", recurrent_resident_module(false)),
        (
            "rnn.recurrent_resident.subgroups",
            recurrent_resident_module(true),
        ),
        ("rnn.softmax_rows", softmax_rows_module()),
        ("rnn.gated_step", gated_step_module()),
        ("rnn.gated_persistent", gated_persistent_module()),
        ("model.embedding", EMBEDDING.to_string()),
        ("model.elementwise", ELEMENTWISE.to_string()),
        ("model.reduce_axis", REDUCE_AXIS.to_string()),
        ("model.im2col", IM2COL.to_string()),
        ("model.rows_activation", rows_activation_module()),
    ]
}
