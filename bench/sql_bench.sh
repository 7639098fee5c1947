#!/usr/bin/env bash
# Rows per second of `SELECT covid_predict(image) FROM t` over 1,000 real X-rays, with 0, 1 and 2
# parallel workers (the leader scores too), against the core library alone (test/bin/cxr_cli) on the same PNG files with
# 1 and 2 processes: the overhead of going through SQL. Needs the extension built and installed
# (make install), test/bin/cxr_cli (make test/bin/cxr_cli), and ../shared/data/cxr.
#
#   bench/sql_bench.sh [DATA_DIR]       (starts its own throwaway PostgreSQL)
#   CXR_BENCH_ISA=avx2 bench/sql_bench.sh   (both sides on AVX2 kernels: bench/xray_server.inc)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/cxr}
source bench/xray_server.inc
model_file=$(mktemp --suffix=.safetensors)
if [ -n "$(psql -X -Atq -c "SELECT 1 FROM cxr.current_models WHERE name = 'default'")" ]; then
    psql -X -Atq -c "SELECT encode(cxr.cxr_model_export('default'), 'base64')" | base64 -d > "$model_file"
    which="default (alexnet_attn2)"
else
    test/bin/cxr_cli init alexnet_attn2 scaled_dot 1 "$model_file"
    { printf "SELECT cxr.cxr_model_import('default', decode('"; base64 -w0 "$model_file"; printf "', 'base64'));\n"; } | psql -X -q >/dev/null
    which="random alexnet_attn2 (no default shipped)"
fi
psql -X -q -c "CREATE TABLE t AS SELECT file, image FROM cxr_data.xrays WHERE split IN ('test', 'val') ORDER BY file LIMIT 1000" \
     -c "ALTER TABLE t SET (parallel_workers = 2)" -c "VACUUM ANALYZE t"
psql -X -Atq -c "SELECT file FROM t ORDER BY file" | sed "s|^|$data/|" > /tmp/cxr_bench_files.$$
n=$(wc -l < /tmp/cxr_bench_files.$$)

now() { date +%s%N; }
best() { sort -n | head -1; }
sql_run() {  # workers
    local t0 t1
    t0=$(now)
    psql -X -Atq -c "SET max_parallel_workers_per_gather = $1" -c "SET parallel_setup_cost = 0" \
        -c "SET parallel_tuple_cost = 0" -c "SELECT count(cxr.covid_predict(image)) FROM t" >/dev/null
    t1=$(now); echo $(( (t1 - t0) / 1000000 ))
}
core_run() {  # processes
    local t0 t1
    t0=$(now)
    split -n l/"$1" -d /tmp/cxr_bench_files.$$ /tmp/cxr_bench_part.$$.
    for part in /tmp/cxr_bench_part.$$.*; do
        xargs -a "$part" test/bin/cxr_cli predict "$model_file" > /dev/null &
    done
    wait
    rm -f /tmp/cxr_bench_part.$$.*
    t1=$(now); echo $(( (t1 - t0) / 1000000 ))
}
plan=$(psql -X -Atq -c "SET max_parallel_workers_per_gather = 2" -c "SET parallel_setup_cost = 0" \
        -c "SET parallel_tuple_cost = 0" -c "EXPLAIN SELECT count(cxr.covid_predict(image)) FROM t" | grep -o "Workers Planned: [0-9]*" || echo "no parallel plan")
sql_run 0 >/dev/null   # warm the page cache
s0=$( (sql_run 0; sql_run 0; sql_run 0) | best)
s1=$( (sql_run 1; sql_run 1; sql_run 1) | best)
s2=$( (sql_run 2; sql_run 2; sql_run 2) | best)
c1=$( (core_run 1; core_run 1; core_run 1) | best)
c2=$( (core_run 2; core_run 2; core_run 2) | best)
# PyTorch's forward pass alone (no decoding, no resizing) of alexnet_attn2 on one 299x299 image,
# one thread, median of 25, in this same run (issue 12's yardstick for scoring through SQL)
torch_ms=$( (for r in 1 2 3; do BENCH_NO_TRAIN=1 /usr/bin/python3 bench/bench_torch.py 1 alexnet_attn2 |
             awk '$3 == "single_ms" {print $4}'; done) | sort -n | head -1)
rm -f /tmp/cxr_bench_files.$$ "$model_file"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
cat <<MD
CPU: $cpu, $(nproc) cores; model: $which; $n real X-rays (256x256 PNG, resized to 299x299)${CXR_BENCH_ISA:+; both sides held to $CXR_BENCH_ISA (CXR_BENCH_ISA, bench/xray_server.inc)}
$(psql -X -Atq -c "SELECT cxr.cxr_kernels()")

| path | wall ms (best of 3) | rows/s | SQL overhead |
|---|---|---|---|
| core library alone, 1 process (cxr_cli predict) | $c1 | $(( n * 1000 / c1 )) | |
| SQL, 0 parallel workers | $s0 | $(( n * 1000 / s0 )) | $(awk "BEGIN { printf \"%+.1f%%\", ($s0 - $c1) * 100 / $c1 }") |
| SQL, 1 parallel worker (and the leader) | $s1 | $(( n * 1000 / s1 )) | |
| core library alone, 2 processes | $c2 | $(( n * 1000 / c2 )) | |
| SQL, 2 parallel workers ($plan) | $s2 | $(( n * 1000 / s2 )) | $(awk "BEGIN { printf \"%+.1f%%\", ($s2 - $c2) * 100 / $c2 }") |

SQL, 0 parallel workers, 1 scoring thread: $(awk "BEGIN { printf \"%.2f\", $s0 / $n }") ms per X-ray (decode,
resize and forward); PyTorch's forward alone (alexnet_attn2, 1 thread, best of 3 medians):
$torch_ms ms; speed-up $(awk "BEGIN { printf \"%.2f\", $torch_ms * $n / $s0 }")x.
MD
