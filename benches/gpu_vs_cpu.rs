//! GPU against CPU on the same inputs over large N × T × M shapes.
//!
//! `cargo bench --bench gpu_vs_cpu` runs the large set, meant for a real GPU;
//! `WGPU_RNN_BENCH=small cargo bench --bench gpu_vs_cpu` runs a small set for slow devices
//! (lavapipe, CI). Throughput is in floating-point operations, 2·N·T·M·(D+M) per forward.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgpu_rnn::{CpuRnn, GpuContext, GpuOptions, GpuRnn, SimpleRnn, SimpleRnnConfig, StepStrategy};

/// (N, T, D, M)
const LARGE: &[(usize, usize, usize, usize)] = &[
    (64, 100, 64, 256),
    (256, 200, 128, 512),
    (1, 1000, 32, 128),
    (8, 500, 64, 64),
    (1024, 50, 64, 1024),
];
const SMALL: &[(usize, usize, usize, usize)] =
    &[(8, 50, 16, 64), (32, 20, 32, 128), (1, 200, 8, 32)];

fn shapes() -> &'static [(usize, usize, usize, usize)] {
    match std::env::var("WGPU_RNN_BENCH").as_deref() {
        Ok("small") => SMALL,
        _ => LARGE,
    }
}

fn random(rng: &mut StdRng, shape: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
}

fn bench(c: &mut Criterion) {
    let strategies = [
        ("gpu-per-step", StepStrategy::PerStep),
        ("gpu-persistent", StepStrategy::Persistent),
        ("gpu-sliced", StepStrategy::Sliced),
        ("gpu-auto", StepStrategy::Auto),
    ];
    let contexts = strategies.map(|(name, strategy)| {
        let options = GpuOptions {
            strategy,
            ..Default::default()
        };
        let ctx = GpuContext::new_blocking(options).expect("the GPU benchmark needs a GPU adapter");
        (name, ctx)
    });
    let info = contexts[0].1.adapter_info();
    eprintln!(
        "GPU: {} ({:?}, {:?})",
        info.name, info.backend, info.device_type
    );
    let mut rng = StdRng::seed_from_u64(1);
    for &(n, t, d, m) in shapes() {
        let layer = SimpleRnn::new(
            random(&mut rng, (d, m), 1.0 / (d as f32).sqrt()),
            random(&mut rng, (m, m), 1.0 / (m as f32).sqrt()),
            Some(Array1::zeros(m)),
            SimpleRnnConfig::default(),
        )
        .expect("consistent shapes");
        let x = Array3::from_shape_simple_fn((n, t, d), || rng.random_range(-1.0f32..1.0));
        let cpu = CpuRnn::new(layer.clone());

        let shape = format!("N{n}_T{t}_D{d}_M{m}");
        let mut group = c.benchmark_group(format!("simple_rnn/{shape}"));
        group.throughput(Throughput::Elements((2 * n * t * m * (d + m)) as u64));
        group.sample_size(10);
        group.warm_up_time(Duration::from_millis(500));
        // forward returns only after the readback, so the GPU has finished when the clock stops.
        for (name, ctx) in &contexts {
            let gpu = GpuRnn::new(ctx, layer.clone()).expect("GPU model");
            group.bench_with_input(BenchmarkId::new(*name, &shape), &x, |b, x| {
                b.iter(|| black_box(gpu.forward(x.view(), None).expect("GPU forward")))
            });
        }
        group.bench_with_input(BenchmarkId::new("cpu", &shape), &x, |b, x| {
            b.iter(|| black_box(cpu.forward(x.view(), None).expect("CPU forward")))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
