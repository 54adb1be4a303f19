//! The forward that `wgpu-rnn bench --backend gpu` times, written in Burn's wgpu backend (fusion
//! and autotune on), so that `scripts/bench_gpu_vs_burn.sh` can run both on one device:
//!
//! - one batched matmul for the projection: P = X·K + b, X is N·T × D, K is D × M;
//! - then per step t: h = tanh(P_t + h·U), h (N × M) stays on the device, U is M × M;
//! - the weights are uploaded once, outside the clock (as `GpuRnn::new` does); each timed forward
//!   uploads X, runs every step and reads the final h back to the host; two untimed forwards
//!   first (kernel compilation and autotune), where `wgpu-rnn bench` runs one.
//!
//! Prints one line in `wgpu-rnn bench`'s format:
//! `backend=burn n=.. t=.. d=.. m=.. repeats=.. median_ms=.. min_ms=.. gflops=.. us_per_step=..`
//!
//! Usage: `burn-rnn-peer --batch N --steps T --input-dim D --units M --repeats R`

use std::time::Instant;

use burn::tensor::{Device, DeviceKind, Tensor, TensorData};

/// A small deterministic generator (xorshift64*), so that no random crate is needed.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self, scale: f32) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40;
        (bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }

    fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform(scale)).collect()
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number, got {v}"))
        })
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--batch", 64);
    let t = arg(&args, "--steps", 100);
    let d = arg(&args, "--input-dim", 64);
    let m = arg(&args, "--units", 256);
    let repeats = arg(&args, "--repeats", 10).max(1);

    let device = Device::wgpu(DeviceKind::DefaultDevice);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kernel = Tensor::<2>::from_data(
        TensorData::new(rng.vec(d * m, 1.0 / (d as f32).sqrt()), [d, m]),
        &device,
    );
    let recurrent = Tensor::<2>::from_data(
        TensorData::new(rng.vec(m * m, 1.0 / (m as f32).sqrt()), [m, m]),
        &device,
    );
    let bias = Tensor::<2>::from_data(TensorData::new(rng.vec(m, 0.1), [1, m]), &device);
    let input = rng.vec(n * t * d, 1.0);

    let forward = || -> Vec<f32> {
        let x = Tensor::<2>::from_data(TensorData::new(input.clone(), [n * t, d]), &device);
        let p = (x.matmul(kernel.clone()) + bias.clone()).reshape([n, t, m]);
        let mut h = Tensor::<2>::zeros([n, m], &device);
        for step in 0..t {
            let pt = p.clone().narrow(1, step, 1).reshape([n, m]);
            h = (pt + h.matmul(recurrent.clone())).tanh();
        }
        h.into_data()
            .try_into_vec::<f32>()
            .expect("the state is float32")
    };

    // Two warm-up forwards: the first compiles the fused kernels and runs autotune on every
    // matmul shape (X·K and h·U), the second checks that nothing is left to tune.
    for _ in 0..2 {
        let warm = forward();
        assert!(warm.iter().all(|v| v.is_finite()), "non-finite state");
    }
    let mut ms: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            let h = forward();
            std::hint::black_box(h);
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let median = if ms.len() % 2 == 1 {
        ms[ms.len() / 2]
    } else {
        (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0
    };
    let flops = 2.0 * (n * t * m) as f64 * (d + m) as f64;
    println!(
        "backend=burn n={n} t={t} d={d} m={m} repeats={repeats} median_ms={median:.4} \
         min_ms={:.4} gflops={:.4} us_per_step={:.4}",
        ms[0],
        flops / (median * 1e6),
        median * 1e3 / t as f64
    );
}
