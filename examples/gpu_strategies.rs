//! Times the step strategies and the projection GEMM on the default adapter.
//!
//! `cargo run --release --example gpu_strategies` prints, for each (N, T, D, M), the microseconds
//! per time step and the throughput (2·N·T·M·(D+M) flops per forward) of a whole forward under
//! [`StepStrategy::PerStep`], [`StepStrategy::Persistent`], [`StepStrategy::Sliced`] and
//! [`StepStrategy::Auto`]; then the projection GEMM alone (`P = X · W + b`, 6400 × 64 by
//! 64 × 256) with element-wise and vec4 loads. Pass shapes as `N,T,D,M` arguments to time others.

use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, Array3};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wgpu::util::DeviceExt;
use wgpu_rnn::gpu::shaders;
use wgpu_rnn::{GpuContext, GpuOptions, GpuRnn, SimpleRnn, SimpleRnnConfig, StepStrategy};

const SHAPES: &[(usize, usize, usize, usize)] = &[
    (1, 200, 8, 32),
    (8, 50, 16, 64),
    (32, 20, 32, 128),
    (1, 100, 32, 128),
];

/// Repeats `f` for at least `budget` (and at least 3 times) after one warm-up call; the mean.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut reps = 0u32;
    while reps < 3 || start.elapsed() < budget {
        f();
        reps += 1;
    }
    start.elapsed() / reps
}

fn random(rng: &mut StdRng, shape: (usize, usize), scale: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
}

fn parse_shape(arg: &str) -> Option<(usize, usize, usize, usize)> {
    let v: Vec<usize> = arg.split(',').filter_map(|s| s.parse().ok()).collect();
    match v[..] {
        [n, t, d, m] => Some((n, t, d, m)),
        _ => None,
    }
}

fn strategies(shapes: &[(usize, usize, usize, usize)]) -> wgpu_rnn::Result<()> {
    let kinds = [
        StepStrategy::PerStep,
        StepStrategy::Persistent,
        StepStrategy::Sliced,
        StepStrategy::Auto,
    ];
    let contexts = kinds
        .iter()
        .map(|&strategy| {
            GpuContext::new_blocking(GpuOptions {
                strategy,
                ..Default::default()
            })
        })
        .collect::<wgpu_rnn::Result<Vec<_>>>()?;
    println!(
        "adapter: {} ({:?})",
        contexts[0].adapter_info().name,
        contexts[0].adapter_info().backend
    );
    println!(
        "{:>18} {:>11} {:>10} {:>9}",
        "N,T,D,M", "strategy", "µs/step", "GFLOP/s"
    );
    let mut rng = StdRng::seed_from_u64(1);
    for &(n, t, d, m) in shapes {
        let layer = SimpleRnn::new(
            random(&mut rng, (d, m), 1.0 / (d as f32).sqrt()),
            random(&mut rng, (m, m), 1.0 / (m as f32).sqrt()),
            Some(Array1::zeros(m)),
            SimpleRnnConfig::default(),
        )?;
        let x = Array3::from_shape_simple_fn((n, t, d), || rng.random_range(-1.0..1.0));
        let flops = 2.0 * (n * t * m * (d + m)) as f64;
        for (ctx, kind) in contexts.iter().zip(kinds) {
            let model = GpuRnn::new(ctx, layer.clone())?;
            let mean = time(Duration::from_secs(1), || {
                model.forward(x.view(), None).expect("forward");
            });
            println!(
                "{:>18} {:>11} {:>10.1} {:>9.3}",
                format!("{n},{t},{d},{m}"),
                format!("{kind:?}"),
                mean.as_secs_f64() * 1e6 / t as f64,
                flops / mean.as_secs_f64() / 1e9
            );
        }
    }
    Ok(())
}

/// The projection GEMM alone, through wgpu, `reps` dispatches per submission.
fn gemm(rows: u32, k: u32, cols: u32) -> wgpu_rnn::Result<()> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    let instance = wgpu::Instance::new(desc.with_env());
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
        .map_err(|e| wgpu_rnn::RnnError::NoAdapter(e.to_string()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&Default::default()))
        .map_err(|e| wgpu_rnn::RnnError::NoAdapter(e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(2);
    let mut data =
        |len: u32| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let storage = |label: &str, contents: &[f32]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents: bytemuck::cast_slice(contents),
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let x = storage("x", &data(rows * k));
    let w = storage("w", &data(k * cols));
    let b = storage("b", &data(cols));
    let p = storage("p", &vec![0.0; (rows * cols) as usize]);
    let dims = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("dims"),
        contents: bytemuck::cast_slice(&[rows, k, cols, 0]),
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let flops = 2.0 * f64::from(rows) * f64::from(k) * f64::from(cols);
    for vectorized in [false, true] {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("projection"),
            source: wgpu::ShaderSource::Wgsl(shaders::projection_module(vectorized).into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("projection"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("projection"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[&x, &w, &b, &p, &dims]
                .iter()
                .enumerate()
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: buffer.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let reps = 5;
        let mean = time(Duration::from_secs(2), || {
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind, &[]);
                for _ in 0..reps {
                    pass.dispatch_workgroups(cols.div_ceil(64), rows.div_ceil(64), 1);
                }
            }
            queue.submit([encoder.finish()]);
            device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("poll");
        }) / reps;
        println!(
            "projection {rows}×{k} · {k}×{cols} {}: {:.0} µs, {:.2} GFLOP/s",
            if vectorized { "vec4" } else { "scalar" },
            mean.as_secs_f64() * 1e6,
            flops / mean.as_secs_f64() / 1e9
        );
    }
    Ok(())
}

fn main() -> wgpu_rnn::Result<()> {
    let args: Vec<_> = std::env::args()
        .skip(1)
        .filter_map(|a| parse_shape(&a))
        .collect();
    strategies(if args.is_empty() { SHAPES } else { &args })?;
    // (64, 100, 64, 256) as the layer sees it: N·T rows of D features onto M units.
    gemm(64 * 100, 64, 256)
}
