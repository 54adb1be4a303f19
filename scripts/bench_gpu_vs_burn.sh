#!/usr/bin/env bash
# wgpu-rnn's GPU path beside Burn's wgpu backend (fusion and autotune on) doing the same SimpleRNN
# forward on the same adapter: one batched matmul for X·K + b, then per step tanh(P_t + h·U) with h
# on the device, the upload of X and the readback of the final state timed
# (benches/peers/burn_rnn). Each round runs every shape with Burn, then wgpu-rnn under each
# strategy, alternating, so that both see the same machine; each run prints the median of
# REPEATS forwards after a warm-up, and the table gives the median of the ROUNDS runs.
#
#   scripts/bench_gpu_vs_burn.sh [ROUNDS] [REPEATS]
#
# Environment: WGPU_RNN (a wgpu-rnn binary; default target/release/wgpu-rnn, built here),
# BURN_RNN (default benches/peers/burn_rnn/target/release/burn-rnn-peer, built here; its first
# build takes about 20 minutes on two cores), STRATEGIES (default "auto per-step persistent
# sliced"; an older binary without `sliced` takes "auto per-step persistent"), SHAPES (default
# the four of issue 15, as N,T,D,M), BEFORE (another wgpu-rnn binary, say main's before a change:
# its runs go in the same rounds, under BEFORE_STRATEGIES, default "auto per-step persistent",
# in columns marked "before").
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
repeats=${2:-5}
wgpu_rnn=${WGPU_RNN:-target/release/wgpu-rnn}
burn_rnn=${BURN_RNN:-benches/peers/burn_rnn/target/release/burn-rnn-peer}
strategies=${STRATEGIES:-auto per-step persistent sliced}
shapes=${SHAPES:-1,1000,32,128 8,500,64,64 64,100,64,256 256,50,128,512}
before=${BEFORE:-}
before_strategies=${BEFORE_STRATEGIES:-auto per-step persistent}
# Columns: "binary strategy label".
columns=()
if [[ -n $before ]]; then
    for s in $before_strategies; do columns+=("$before $s before-$s"); done
fi
for s in $strategies; do columns+=("$wgpu_rnn $s $s"); done

if [[ -z ${WGPU_RNN:-} ]]; then
    cargo build --release --quiet --bin wgpu-rnn
fi
if [[ -z ${BURN_RNN:-} ]]; then
    (cd benches/peers/burn_rnn && cargo build --release --quiet)
fi
# Mesa's device-select layer otherwise prints a harmless XDG_RUNTIME_DIR line per process.
export NODEVICE_SELECT=${NODEVICE_SELECT:-1}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }

"$wgpu_rnn" bench --backend gpu --batch 1 --steps 1 --input-dim 1 --units 1 --repeats 1 |
    grep '^# gpu' || true
echo "# $(uname -m), $(nproc) cores; $rounds rounds of $repeats forwards; $(date -u +%FT%TZ)"

declare -A runs
for round in $(seq "$rounds"); do
    for shape in $shapes; do
        IFS=, read -r n t d m <<<"$shape"
        args=(--batch "$n" --steps "$t" --input-dim "$d" --units "$m" --repeats "$repeats")
        ms=$("$burn_rnn" "${args[@]}" 2>/dev/null | field median_ms)
        runs[$shape,burn]+="${ms:-nan} "
        for column in "${columns[@]}"; do
            read -r binary s label <<<"$column"
            ms=$("$binary" bench --backend gpu --strategy "$s" "${args[@]}" 2>/dev/null |
                field median_ms)
            runs[$shape,$label]+="${ms:-nan} "
        done
    done
    echo "# round $round of $rounds done" >&2
done

labels=()
for column in "${columns[@]}"; do
    read -r _ _ label <<<"$column"
    labels+=("$label")
done
printf "| N, T, D, M | Burn |"
for label in "${labels[@]}"; do printf " %s |" "$label"; done
printf " Burn / auto |\n|---|---|"
for _ in "${labels[@]}"; do printf -- "---|"; done
printf -- "---|\n"
for shape in $shapes; do
    burn=$(printf "%s\n" ${runs[$shape,burn]} | median)
    printf "| %s | %s ms |" "${shape//,/, }" "$burn"
    for label in "${labels[@]}"; do
        printf " %s ms |" "$(printf "%s\n" ${runs[$shape,$label]} | median)"
    done
    auto=$(printf "%s\n" ${runs[$shape,auto]:-nan} | median)
    printf " %s |\n" "$(awk -v b="$burn" -v a="$auto" 'BEGIN {printf "%.2f", b / a}')"
done
echo
echo "Every run (ms, one median of $repeats forwards per round):"
for shape in $shapes; do
    for label in burn "${labels[@]}"; do
        echo "  $shape $label: ${runs[$shape,$label]}"
    done
done
