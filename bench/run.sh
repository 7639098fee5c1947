#!/usr/bin/env bash
# Core library against PyTorch (Debian python3-torch) on this machine, in one run, at 1 and 2
# threads: single-image inference latency, batch-32 inference throughput, training throughput
# at batch 64 (resnet50: 32, at 224), the inference workspace, and conv GFLOP/s against square
# sgemm. Prints a markdown table.
#
#   bench/run.sh > bench/core_results.md        (OPENBLAS_CORETYPE is cleared for both sides)
set -euo pipefail
cd "$(dirname "$0")/.."
make -s bench/bin/bench_core test/bin/test_winograd
unset OPENBLAS_CORETYPE
out=$(mktemp)
for t in 1 2; do
    echo "threads $t" >> "$out"
    bench/bin/bench_core "$t" >> "$out"
    /usr/bin/python3 bench/bench_torch.py "$t" >> "$out"
done
# the conv layers' rate on every other Winograd product path this CPU runs, against the FMA
# peak at that path's vector width
echo "threads 1" >> "$out"
for p in avx2; do
    if grep -q "^$p\$" <(test/bin/test_winograd paths); then
        CXR_WINO_PATH=$p BENCH_GFLOPS_ONLY=1 bench/bin/bench_core 1 | grep conv_gflops >> "$out"
    fi
done
/usr/bin/python3 - "$out" <<'PY'
import re, sys, platform
lines = open(sys.argv[1]).read().splitlines()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"CPU: {cpu} ({platform.machine()}), {len([l for l in open('/proc/cpuinfo') if l.startswith('processor')])} cores\n")
res, threads, extra = {}, None, []
for l in lines:
    if l.startswith("threads "):
        threads = int(l.split()[1]); continue
    p = l.split()
    if p[0] in ("C", "T") and len(p) == 4 and p[2] in ("single_ms", "batch32_img_s", "train_img_s", "workspace_mib"):
        res[(threads, p[0], p[1], p[2])] = float(p[3])
    else:
        extra.append(f"{threads} thread(s): {l}")
print("| threads | network | 1-image latency ms: cxr / torch (speed-up) | batch-32 img/s: cxr / torch | train img/s (batch 64; resnet50 32): cxr / torch | cxr inference workspace MiB |")
print("|---|---|---|---|---|---|")
for t in (1, 2):
    for net in ("alexnet", "alexnet_attn1", "alexnet_attn2", "alexnet_attn3", "resnet50"):
        g = lambda side, m: res.get((t, side, net, m), float("nan"))
        c1, t1 = g("C", "single_ms"), g("T", "single_ms")
        cb, tb = g("C", "batch32_img_s"), g("T", "batch32_img_s")
        ct, tt = g("C", "train_img_s"), g("T", "train_img_s")
        ws = g("C", "workspace_mib")
        print(f"| {t} | {net} | {c1:.1f} / {t1:.1f} ({t1 / c1:.2f}x) | {cb:.1f} / {tb:.1f} ({cb / tb:.2f}x) | {ct:.1f} / {tt:.1f} ({ct / tt:.2f}x) | {ws:.1f} |")
print()
for e in extra:
    print("    " + e)
PY
rm -f "$out"
