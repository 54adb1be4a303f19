#!/usr/bin/env python3
"""The references wgpu-rnn is measured against, timed the way `wgpu-rnn bench` times itself:
random weights and input, one warm-up, then R timed forwards, one `key=value` line per shape.

  torch-cpu            torch.nn.RNN (nn.LSTM, nn.GRU with --cell) on the CPU (inference_mode,
                       all cores)
  numpy                a numpy loop: one GEMM for the projection, one per step
  torch-cuda           torch.nn.RNN on CUDA (cuDNN), counting the upload of the input and the
                       readback of the output, as wgpu-rnn's GPU time does
  torch-cuda-resident  the same with the input already on the GPU: the kernels only

Usage: python scripts/bench_reference.py --backend torch-cpu|numpy|torch-cuda
       --shapes N,T,D,M [N,T,D,M ...] [--repeats R] [--return-sequences]
       [--cell simple|lstm|gru]   (torch only; flops 2·N·T·G·M·(D+M), G = 1, 4, 3)
Pinned for the CPU runs: torch==2.15.0, numpy==2.4.6; a GPU machine's torch is printed.
"""
import argparse
import statistics
import time

import numpy as np
import torch


def timed(fn, repeats, sync):
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


MODULES = {"simple": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
GATES = {"simple": 1, "lstm": 4, "gru": 3}


def torch_runs(backend, n, t, d, m, return_sequences, cell="simple"):
    device = torch.device("cuda" if backend == "torch-cuda" else "cpu")
    rnn = MODULES[cell](d, m, batch_first=True).to(device)
    host = torch.rand(n, t, d) * 2 - 1
    resident = host.to(device)

    def with_transfers():
        with torch.inference_mode():
            out, state = rnn(host.to(device))
            h = state[0] if isinstance(state, tuple) else state
            (out if return_sequences else h).cpu()

    def on_device():
        with torch.inference_mode():
            rnn(resident)

    if backend == "torch-cuda":
        return [("torch-cuda", with_transfers), ("torch-cuda-resident", on_device)]
    return [("torch-cpu", with_transfers)]


def numpy_runs(n, t, d, m, return_sequences):
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.1, 0.1, (d, m)).astype(np.float32)
    u = rng.uniform(-0.1, 0.1, (m, m)).astype(np.float32)
    b = np.zeros(m, np.float32)
    x = rng.uniform(-1, 1, (n, t, d)).astype(np.float32)

    def run():
        p = (x.reshape(n * t, d) @ w + b).reshape(n, t, m)
        h = np.zeros((n, m), np.float32)
        seq = np.empty((n, t, m), np.float32) if return_sequences else None
        for s in range(t):
            h = np.tanh(p[:, s] + h @ u)
            if seq is not None:
                seq[:, s] = h
        return h

    return [("numpy", run)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", required=True, choices=["torch-cpu", "numpy", "torch-cuda"])
    parser.add_argument("--shapes", nargs="+", required=True)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--return-sequences", action="store_true")
    parser.add_argument("--cell", choices=list(MODULES), default="simple")
    args = parser.parse_args()
    cuda = args.backend == "torch-cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    print(f"# torch {torch.__version__} threads={torch.get_num_threads()}, numpy {np.__version__}")
    if cuda:
        print(f"# cuda: {torch.cuda.get_device_name()}, cudnn {torch.backends.cudnn.version()}")
    torch.manual_seed(0)
    for spec in args.shapes:
        n, t, d, m = (int(v) for v in spec.split(","))
        if args.backend == "numpy":
            if args.cell != "simple":
                parser.error("the numpy reference is the simple cell only")
            runs = numpy_runs(n, t, d, m, args.return_sequences)
        else:
            runs = torch_runs(args.backend, n, t, d, m, args.return_sequences, args.cell)
        for name, fn in runs:
            median, best = timed(fn, args.repeats, sync)
            flops = 2 * n * t * GATES[args.cell] * m * (d + m)
            print(
                f"backend={name} cell={args.cell} n={n} t={t} d={d} m={m} repeats={args.repeats} "
                f"median_ms={median * 1e3:.3f} min_ms={best * 1e3:.3f} "
                f"gflops={flops / median / 1e9:.2f} us_per_step={median * 1e6 / t:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
