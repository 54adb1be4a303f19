//! Every Keras activation at the edges of float32 (NaN, ±inf, ±1e30, ±1e-40, ±3.4e38, and the
//! values where formulas overflow or cancel) against what Keras 3 itself returns, on the CPU and
//! inside the GPU's recurrent kernels under every step strategy. The fixture was written by
//! tests/fixtures/activation_edges/generate.py (Keras 3.15.1 on JAX, pinned in
//! tests/fixtures/keras/requirements.txt); its table.md summarises it.

mod common;

use std::fs::File;
use std::path::Path;

use common::gpu_with;
use ndarray::{Array1, Array2, Array3, ArrayD};
use ndarray_npy::NpzReader;
use wgpu_rnn::{Activation, CpuRnn, GpuRnn, SimpleRnn, SimpleRnnConfig, StepStrategy};

const STRATEGIES: [StepStrategy; 3] = [
    StepStrategy::PerStep,
    StepStrategy::Persistent,
    StepStrategy::Sliced,
];

struct Fixture(NpzReader<File>);

impl Fixture {
    fn open() -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/activation_edges/values.npz");
        Fixture(NpzReader::new(File::open(path).unwrap()).unwrap())
    }

    fn f32(&mut self, name: &str) -> ArrayD<f32> {
        self.0
            .by_name(&format!("{name}.npy"))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn f64(&mut self, name: &str) -> ArrayD<f64> {
        self.0
            .by_name(&format!("{name}.npy"))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }
}

/// Keras's value `want` and ours `got` agree: NaN where Keras gives NaN, the same infinity,
/// else within 1e-4 of max(1, |want|) (Keras flushes subnormal inputs and results to zero, which
/// this absolute tolerance absorbs).
fn agrees(got: f32, want: f32) -> bool {
    if want.is_nan() || got.is_nan() {
        return want.is_nan() && got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= 1e-4 * want.abs().max(1.0)
}

/// A layer that outputs `activation(x)` for one step: kernel I, recurrent kernel 0, no bias.
fn identity_layer(width: usize, activation: Activation) -> SimpleRnn {
    let config = SimpleRnnConfig {
        activation,
        ..Default::default()
    };
    SimpleRnn::new(
        Array2::eye(width),
        Array2::zeros((width, width)),
        None,
        config,
    )
    .unwrap()
}

/// One step of `layer` on `input` on every backend: the CPU first, then the GPU per strategy.
fn every_backend_once(layer: &SimpleRnn, input: &Array3<f32>) -> Vec<(String, Array2<f32>)> {
    let mut out = vec![(
        "cpu".to_string(),
        CpuRnn::new(layer.clone())
            .forward(input.view(), None)
            .unwrap()
            .final_state,
    )];
    for strategy in STRATEGIES {
        let gpu = GpuRnn::new(gpu_with(strategy), layer.clone()).unwrap();
        out.push((
            format!("gpu {strategy:?}"),
            gpu.forward(input.view(), None).unwrap().final_state,
        ));
    }
    out
}

/// `activation` of each value of `x` on every backend, as the pre-activation of one step of a
/// one-unit layer (kernel 1, recurrent kernel 0): x · 1 multiplies nothing else.
fn every_backend(activation: Activation, x: &Array1<f32>) -> Vec<(String, Array2<f32>)> {
    let input = x.clone().into_shape_with_order((x.len(), 1, 1)).unwrap();
    every_backend_once(&identity_layer(1, activation), &input)
}

/// `activation` across each row of `rows` on every backend, each row the bias of a layer whose
/// input and weights are zeros: an infinity in a row meets no multiplication by 0 there.
fn every_backend_rows(activation: Activation, rows: &Array2<f32>) -> Vec<(String, Array2<f32>)> {
    let (k, width) = rows.dim();
    let mut out: Vec<(String, Array2<f32>)> = Vec::new();
    for (i, row) in rows.outer_iter().enumerate() {
        let config = SimpleRnnConfig {
            activation,
            ..Default::default()
        };
        let layer = SimpleRnn::new(
            Array2::zeros((1, width)),
            Array2::zeros((width, width)),
            Some(row.to_owned()),
            config,
        )
        .unwrap();
        let results = every_backend_once(&layer, &Array3::zeros((1, 1, 1)));
        if out.is_empty() {
            out = results
                .iter()
                .map(|(name, _)| (name.clone(), Array2::zeros((k, width))))
                .collect();
        }
        for ((_, all), (_, one)) in out.iter_mut().zip(results) {
            all.row_mut(i).assign(&one.row(0));
        }
    }
    out
}

#[test]
fn every_elementwise_activation_matches_keras_at_the_edges_on_every_backend() {
    let mut fixture = Fixture::open();
    let x: Array1<f32> = fixture.f32("x").into_dimensionality().unwrap();
    let mut failures = Vec::new();
    let mut checked = 0;
    for &name in Activation::KERAS_NAMES {
        let activation = Activation::from_keras_name(name).unwrap();
        if activation.is_row_wise() {
            continue;
        }
        let want = fixture.f32(name);
        for (backend, got) in every_backend(activation, &x) {
            for (i, (&g, &w)) in got.iter().zip(want.iter()).enumerate() {
                if !agrees(g, w) {
                    failures.push(format!("{name}({}) on {backend}: {g}, Keras {w}", x[i]));
                }
            }
        }
        checked += 1;
    }
    assert!(
        checked >= 25,
        "every elementwise activation is in the fixture"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn softmax_and_log_softmax_match_keras_with_edge_values_in_the_row() {
    let mut fixture = Fixture::open();
    let rows: Array2<f32> = fixture.f32("rows").into_dimensionality().unwrap();
    let mut failures = Vec::new();
    for (name, activation) in [
        ("softmax", Activation::Softmax),
        ("log_softmax", Activation::LogSoftmax),
    ] {
        let want = fixture.f32(name);
        for (backend, got) in every_backend_rows(activation, &rows) {
            for ((i, &g), &w) in got.indexed_iter().zip(want.iter()) {
                if !agrees(g, w) {
                    failures.push(format!("{name}{:?} on {backend}: {g}, Keras {w}", i));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// WGSL lets `exp` be off by 3 + 2·|x| ULP, which over many recurrent steps drifts past the
/// tolerance: the GPU computes the exponential to within a few ULP, as the CPU does.
#[test]
fn the_exponential_is_accurate_on_every_backend() {
    let mut fixture = Fixture::open();
    let exact: Array1<f64> = fixture
        .f64("exponential_f64")
        .into_dimensionality()
        .unwrap();
    // Finite inputs whose exponential is a normal float32, and a sweep across that range.
    let x: Vec<f32> = fixture
        .f32("x")
        .iter()
        .copied()
        .zip(exact.iter())
        .filter(|(_, e)| e.is_finite() && (1e-37..3e38).contains(*e))
        .map(|(x, _)| x)
        .chain((0..400).map(|i| -87.0 + 175.0 * i as f32 / 400.0))
        .collect();
    for (backend, got) in every_backend(Activation::Exponential, &Array1::from(x.clone())) {
        for (&g, &xi) in got.iter().zip(&x) {
            let e = f64::from(xi).exp();
            let err = (f64::from(g) - e).abs() / e;
            assert!(
                err <= 1e-6,
                "exp({xi}) on {backend}: {g}, exactly {e} ({err:e})"
            );
        }
    }
}
