#!/usr/bin/env bash
# Times two builds of wgpu-rnn side by side on the same GPU adapter: each shape and strategy runs
# OLD then NEW, ROUNDS times alternating, and the median of each build's medians is printed.
# Used to check that a kernel change does not slow a device down (BENCHMARKS.md records runs).
#
#   scripts/bench_compare_builds.sh OLD_BINARY NEW_BINARY [ROUNDS] [REPEATS] [CELL]
#
# CELL is simple (the default), lstm, gru or gru-reset-before; the gated cells run at the shapes
# of their issue (13).
set -euo pipefail
old=$1
new=$2
rounds=${3:-3}
repeats=${4:-5}
cell=${5:-simple}

# N T D M strategies
if [[ $cell == simple ]]; then
    shapes=(
        "1 200 8 32 per-step,persistent,auto"
        "8 500 64 64 per-step,persistent,auto"
        "1 1000 32 128 per-step,persistent,auto"
        "64 100 64 256 per-step,auto"
        "256 50 128 512 per-step,auto"
    )
else
    shapes=(
        "1 1000 32 128 per-step,persistent,auto"
        "8 500 64 64 per-step,persistent,auto"
        "64 100 64 256 per-step,persistent,auto"
        "256 200 128 512 per-step,auto"
    )
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

time_one() { # binary n t d m strategy -> median_ms
    "$1" bench --backend gpu --cell "$cell" --batch "$2" --steps "$3" --input-dim "$4" \
        --units "$5" --strategy "$6" --repeats "$repeats" 2>/dev/null |
        sed -n 's/.*median_ms=\([^ ]*\).*/\1/p'
}

printf "%-18s %-11s %12s %12s %8s\n" "N,T,D,M" strategy "old ms" "new ms" "new/old"
for shape in "${shapes[@]}"; do
    read -r n t d m strategies <<<"$shape"
    for s in ${strategies//,/ }; do
        o=()
        w=()
        for _ in $(seq "$rounds"); do
            o+=("$(time_one "$old" "$n" "$t" "$d" "$m" "$s")")
            w+=("$(time_one "$new" "$n" "$t" "$d" "$m" "$s")")
        done
        mo=$(printf "%s\n" "${o[@]}" | median)
        mw=$(printf "%s\n" "${w[@]}" | median)
        printf "%-18s %-11s %12s %12s %8.2f\n" "$n,$t,$d,$m" "$s" "$mo" "$mw" \
            "$(awk -v a="$mw" -v b="$mo" 'BEGIN {print a / b}')"
    done
done
