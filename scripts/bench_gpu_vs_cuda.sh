#!/usr/bin/env bash
# wgpu-rnn's GPU path (every step strategy and auto) side by side with torch.nn.RNN on CUDA
# (cuDNN), on one machine, in one run; prints the device and driver first. Burn's wgpu backend on
# the same device: scripts/bench_gpu_vs_burn.sh.
# Usage: scripts/bench_gpu_vs_cuda.sh [WGPU_RNN_BINARY] [PYTHON] [REPEATS]
# (the binary defaults to target/release/wgpu-rnn, built here when absent; PYTHON needs torch
# with CUDA; without it only wgpu-rnn runs).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/release/wgpu-rnn}
python=${2:-python3}
repeats=${3:-20}
[[ -x $binary ]] || cargo build --release --quiet
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
# N ≤ 16 (latency-bound: the persistent and sliced kernels' ground) and N ≥ 64 (throughput),
# the four shapes of issue 15 among them.
shapes="1,1000,32,128 8,500,64,64 16,500,64,256 64,100,64,256 256,50,128,512 256,200,128,512 1024,50,64,1024"
for shape in $shapes; do
    IFS=, read -r n t d m <<<"$shape"
    for strategy in per-step persistent sliced auto; do
        "$binary" bench --backend gpu --strategy "$strategy" --batch "$n" --steps "$t" \
            --input-dim "$d" --units "$m" --repeats "$repeats" | grep -v '^# gpu' || true
    done
    # Up to 128 units the persistent kernel sums by subgroup shuffles on a GPU that has them;
    # the same kernel with its workgroup-memory sums beside it.
    if ((m <= 128)); then
        echo "# the persistent kernel without subgroups:"
        "$binary" bench --backend gpu --strategy persistent --subgroups false --batch "$n" \
            --steps "$t" --input-dim "$d" --units "$m" --repeats "$repeats" | grep -v '^# gpu' || true
    fi
    if "$python" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
        "$python" scripts/bench_reference.py --backend torch-cuda --shapes "$shape" \
            --repeats "$repeats" | grep -v '^# torch'
    fi
done
"$binary" bench --backend gpu --batch 1 --steps 1 --input-dim 1 --units 1 --repeats 1 | grep '^# gpu'
