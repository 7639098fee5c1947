#!/usr/bin/env bash
# One-image latency of the core against PyTorch, measured in alternating pairs: each round runs
# bench_core and then bench_torch.py (the median of 25 forwards each), for every network and
# thread count, so both sides of a pair see the same moment of a noisy machine. bench/run.sh
# instead times every C figure before every PyTorch one, minutes apart. Prints each pair's
# ratio and, per network and thread count, the median of the ratios.
#
#   bench/latency_pairs.sh [ROUNDS] [NETWORKS...]     default: 5 rounds, resnet50 alexnet_attn2
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
shift || true
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(resnet50 alexnet_attn2)
make -s bench/bin/bench_core
unset OPENBLAS_CORETYPE
export BENCH_SINGLE_ONLY=1 BENCH_NO_TRAIN=1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in 1 2; do
    for r in $(seq "$rounds"); do
        for net in "${nets[@]}"; do
            c=$(bench/bin/bench_core "$t" "$net" | awk '$3 == "single_ms" {print $4}')
            p=$(/usr/bin/python3 bench/bench_torch.py "$t" "$net" | awk '$3 == "single_ms" {print $4}')
            echo "$t $net $r $c $p" >> "$out"
        done
    done
done
/usr/bin/python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu}\n")
print("| threads | network | pairs: cxr ms / torch ms (speed-up) | median speed-up | lowest |")
print("|---|---|---|---|---|")
for t in sorted({r[0] for r in rows}):
    for net in dict.fromkeys(r[1] for r in rows):
        pr = [(float(r[3]), float(r[4])) for r in rows if r[0] == t and r[1] == net]
        if not pr:
            continue
        ratios = [p / c for c, p in pr]
        cells = ", ".join(f"{c:.1f} / {p:.1f} ({p / c:.2f}x)" for c, p in pr)
        print(f"| {t} | {net} | {cells} | {statistics.median(ratios):.2f}x | {min(ratios):.2f}x |")
PY
