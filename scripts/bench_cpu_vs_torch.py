#!/usr/bin/env python3
"""CPU side by side: wgpu-rnn's CPU path against torch.nn.RNN and a numpy loop, in one run.

Usage: python scripts/bench_cpu_vs_torch.py [--binary target/release/wgpu-rnn] [--repeats 10]

Every line is `key=value` fields; GFLOP/s counts 2·N·T·M·(D+M) flops per forward. Pinned:
torch==2.15.0, numpy==2.4.6 (what BENCHMARKS.md was recorded with).
"""
import argparse
import statistics
import subprocess
import time

import numpy as np
import torch

SHAPES = [(64, 100, 64, 256), (256, 200, 128, 512), (1, 1000, 32, 128), (8, 500, 64, 64)]


def flops(n, t, d, m):
    return 2 * n * t * m * (d + m)


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def report(backend, shape, median, best):
    n, t, d, m = shape
    print(
        f"backend={backend} n={n} t={t} d={d} m={m} median_ms={median * 1e3:.3f} "
        f"min_ms={best * 1e3:.3f} gflops={flops(*shape) / median / 1e9:.2f}",
        flush=True,
    )


def torch_rnn(shape, repeats):
    n, t, d, m = shape
    rnn = torch.nn.RNN(d, m, batch_first=True)
    x = torch.rand(n, t, d) * 2 - 1

    def run():
        with torch.inference_mode():
            rnn(x)

    return timed(run, repeats)


def numpy_rnn(shape, repeats):
    n, t, d, m = shape
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.1, 0.1, (d, m)).astype(np.float32)
    u = rng.uniform(-0.1, 0.1, (m, m)).astype(np.float32)
    b = np.zeros(m, np.float32)
    x = rng.uniform(-1, 1, (t, n, d)).astype(np.float32)

    def run():
        p = (x.reshape(t * n, d) @ w + b).reshape(t, n, m)
        h = np.zeros((n, m), np.float32)
        for s in range(t):
            h = np.tanh(p[s] + h @ u)
        return h

    return timed(run, repeats)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/wgpu-rnn")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()}, numpy {np.__version__}")
    for shape in SHAPES:
        n, t, d, m = shape
        report("torch", shape, *torch_rnn(shape, args.repeats))
        report("numpy", shape, *numpy_rnn(shape, args.repeats))
        subprocess.run(
            [args.binary, "bench", "--backend", "cpu", "--batch", str(n), "--steps", str(t),
             "--input-dim", str(d), "--units", str(m), "--repeats", str(args.repeats)],
            check=True,
        )


if __name__ == "__main__":
    main()
