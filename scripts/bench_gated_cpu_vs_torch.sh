#!/usr/bin/env bash
# wgpu-rnn's CPU path for LSTM and GRU side by side with torch.nn.LSTM / torch.nn.GRU on this
# machine, in one run, alternating, at the shapes of issue 13 (N,T,D,M).
# Usage: scripts/bench_gated_cpu_vs_torch.sh [PYTHON] [REPEATS]
# (PYTHON: an interpreter with torch==2.15.0 and numpy==2.4.6; default python3.)
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
repeats=${2:-10}
cargo build --release --quiet
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
for cell in lstm gru; do
    for shape in 64,100,64,256 256,200,128,512 1,1000,32,128 8,500,64,64; do
        IFS=, read -r n t d m <<<"$shape"
        "$python" scripts/bench_reference.py --backend torch-cpu --cell "$cell" --shapes "$shape" \
            --repeats "$repeats" | grep -v '^#'
        target/release/wgpu-rnn bench --backend cpu --cell "$cell" --batch "$n" --steps "$t" \
            --input-dim "$d" --units "$m" --repeats "$repeats" | grep -v '^#'
    done
done
