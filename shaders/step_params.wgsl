// The per-step parameters in the uniform buffer the recurrent kernels share (recurrent_step.wgsl,
// recurrent_persistent.wgsl, gated_step.wgsl, softmax_rows.wgsl): 32 bytes, `StepParams` on the
// Rust side.

struct Step {
    n: u32,
    m: u32,
    // The time step to run (recurrent_step.wgsl, softmax_rows.wgsl), or the first of the `count`
    // steps recurrent_persistent.wgsl runs.
    step: u32,
    // bit 0: store into the sequence output (the step kernels); bit 1: store into the sequence
    // output, bit 2: log-softmax (softmax_rows.wgsl); bit 3: read `mask` (0 marks a padded step:
    // the state is kept and the output is zero, or with bit 4 the kept state, as Keras outputs
    // it); bit 5: read P and the mask at input time t_len - 1 - step (the input is in input order,
    // the layer reads it backwards); bit 6: store the output at t_len - 1 - step (Bidirectional's
    // backward output, flipped to input order).
    flags: u32,
    // Steps of the whole sequence, for bits 5 and 6.
    t_len: u32,
    // Steps the persistent kernel runs from `step` on: a bounded share of the chunk, so that no
    // invocation loops past the loop budget (`plan::persistent_steps_per_dispatch`).
    count: u32,
    // The span of the recurrent product's depth one dispatch of gated_step.wgsl walks.
    k_begin: u32,
    k_end: u32,
}
