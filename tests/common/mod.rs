//! Shared by the integration tests: one GPU context per test binary, a tolerance stated once,
//! and seeded random layers.
#![allow(dead_code)]

#[cfg(feature = "onnx")]
pub mod onnx;

use std::sync::OnceLock;

use ndarray::{Array1, Array2, Array3, ArrayViewD};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgpu_rnn::{GpuContext, GpuOptions, RnnOutput, SimpleRnn, SimpleRnnConfig, StepStrategy};

/// The tolerance the issue sets: |got - reference| ≤ TOLERANCE · max(1, |reference|).
pub const TOLERANCE: f32 = 1e-4;

/// The GPU context shared by a test binary. Panics, with the reason, when no adapter exists: a
/// GPU test must never pass without a GPU.
pub fn gpu() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| context(GpuOptions::default()))
}

/// A context per step strategy, shared by a test binary, with default options otherwise.
/// Panics like [`gpu`].
pub fn gpu_with(strategy: StepStrategy) -> &'static GpuContext {
    static PER_STEP: OnceLock<GpuContext> = OnceLock::new();
    static PERSISTENT: OnceLock<GpuContext> = OnceLock::new();
    static SLICED: OnceLock<GpuContext> = OnceLock::new();
    let cell = match strategy {
        StepStrategy::Auto => return gpu(),
        StepStrategy::PerStep => &PER_STEP,
        StepStrategy::Persistent => &PERSISTENT,
        StepStrategy::Sliced => &SLICED,
        other => panic!("no shared context for {other:?}"),
    };
    cell.get_or_init(|| {
        context(GpuOptions {
            strategy,
            ..Default::default()
        })
    })
}

/// A context under [`StepStrategy::Persistent`] with [`GpuOptions::subgroups`] forced to
/// `subgroups`, so that the resident kernel sums its slices by subgroup shuffles (where the
/// adapter has them) or through workgroup memory, whatever the adapter's default. Panics like
/// [`gpu`].
pub fn gpu_persistent_with_subgroups(subgroups: bool) -> &'static GpuContext {
    static CTX: [OnceLock<GpuContext>; 2] = [OnceLock::new(), OnceLock::new()];
    CTX[usize::from(subgroups)].get_or_init(|| {
        context(GpuOptions {
            strategy: StepStrategy::Persistent,
            subgroups: Some(subgroups),
            ..Default::default()
        })
    })
}

/// The contexts to run `strategies` on, each with a name: one per strategy and, for
/// [`StepStrategy::Persistent`], one with subgroups forced on and one with them forced off
/// ([`gpu_persistent_with_subgroups`]).
pub fn contexts_for(strategies: &[StepStrategy]) -> Vec<(String, &'static GpuContext)> {
    let mut contexts = Vec::new();
    for &strategy in strategies {
        contexts.push((format!("{strategy:?}"), gpu_with(strategy)));
        if strategy == StepStrategy::Persistent {
            for subgroups in [true, false] {
                contexts.push((
                    format!("Persistent, subgroups {subgroups}"),
                    gpu_persistent_with_subgroups(subgroups),
                ));
            }
        }
    }
    contexts
}

/// A new context with `options`. Panics like [`gpu`].
pub fn context(options: GpuOptions) -> GpuContext {
    match GpuContext::new_blocking(options) {
        Ok(ctx) => ctx,
        Err(e) => panic!(
            "GPU tests need a GPU adapter and found none: {e}\n\
             On a headless Linux machine: apt-get install mesa-vulkan-drivers (lavapipe)."
        ),
    }
}

/// Asserts two forwards agree, output and final state, as [`assert_close`] does.
pub fn assert_same_output(got: &RnnOutput, reference: &RnnOutput, what: &str) {
    assert_close(got.output(), reference.output(), what);
    assert_close(
        got.final_state.view().into_dyn(),
        reference.final_state.view().into_dyn(),
        what,
    );
}

/// Asserts two arrays have the same shape and agree within [`TOLERANCE`], NaN matching NaN.
pub fn assert_close(got: ArrayViewD<'_, f32>, reference: ArrayViewD<'_, f32>, what: &str) {
    assert_eq!(got.shape(), reference.shape(), "{what}: shapes differ");
    let mut worst = (0.0f32, 0usize);
    for (i, (g, r)) in got.iter().zip(reference.iter()).enumerate() {
        if r.is_nan() || g.is_nan() {
            assert!(
                r.is_nan() && g.is_nan(),
                "{what}: element {i}: got {g}, reference {r}"
            );
            continue;
        }
        if r.is_infinite() || g.is_infinite() {
            assert_eq!(g, r, "{what}: element {i}");
            continue;
        }
        let err = (g - r).abs() / r.abs().max(1.0);
        if err > worst.0 {
            worst = (err, i);
        }
    }
    let (err, i) = worst;
    assert!(
        err <= TOLERANCE,
        "{what}: element {i}: got {}, reference {} (relative error {err:e} > {TOLERANCE:e})",
        got.iter().nth(i).unwrap(),
        reference.iter().nth(i).unwrap()
    );
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn uniform2(rng: &mut StdRng, shape: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
}

pub fn uniform3(rng: &mut StdRng, shape: (usize, usize, usize), scale: f32) -> Array3<f32> {
    Array3::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
}

/// A random layer whose state neither explodes nor dies out: recurrent weights scaled by 1/√M.
pub fn random_layer(
    rng: &mut StdRng,
    d: usize,
    m: usize,
    bias: bool,
    config: SimpleRnnConfig,
) -> SimpleRnn {
    let kernel = uniform2(rng, (d, m), 1.0 / (d as f32).sqrt());
    let recurrent = uniform2(rng, (m, m), 1.0 / (m as f32).sqrt());
    let bias = bias.then(|| Array1::from_shape_simple_fn(m, || rng.random_range(-0.5..0.5)));
    SimpleRnn::new(kernel, recurrent, bias, config).expect("random shapes are consistent")
}
