#!/usr/bin/env bash
# Rows per second of scoring a table row by row (`SELECT covid_predict(image, m) FROM t`, no
# parallel workers) against in batches (`covid_predict_batch('SELECT file, image FROM t', m,
# 32)`), at cxr_attn.scoring_threads 1 and 2, for the shipped alexnet_attn2 and a plain alexnet
# (random weights: speed does not depend on them), on N real X-rays (decode + resize included on
# both sides). Also checks, on the same rows, that both give the same probabilities. Needs the
# extension built and installed (make install), test/bin/cxr_cli, and ../shared/data/cxr.
#
#   bench/batch_bench.sh [N] [DATA_DIR]      (default 300 X-rays; starts its own PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
data=${2:-../shared/data/cxr}
source bench/xray_server.inc
make -s test/bin/cxr_cli
alexnet=$(mktemp --suffix=.safetensors)
test/bin/cxr_cli init alexnet dot 1 "$alexnet"
{ printf "SELECT cxr.cxr_model_import('plain_alexnet', decode('"; base64 -w0 "$alexnet"; printf "', 'base64'));\n"; } |
    psql -X -q >/dev/null
rm -f "$alexnet"
psql -X -q -c "CREATE TABLE t AS SELECT file, image FROM cxr_data.xrays WHERE split IN ('test', 'val') ORDER BY file LIMIT $n" \
     -c "VACUUM ANALYZE t"

now() { date +%s%N; }
best() { sort -n | head -1; }
timed() {  # threads, statement: milliseconds
    local t0 t1
    t0=$(now)
    psql -X -Atq -c "SET cxr_attn.scoring_threads = $1" -c "SET max_parallel_workers_per_gather = 0" \
        -c "$2" >/dev/null
    t1=$(now); echo $(( (t1 - t0) / 1000000 ))
}
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
echo "CPU: $cpu, $(nproc) cores; $n real X-rays (256x256 PNG, resized to 299x299); $(psql -X -Atq -c 'SELECT cxr.cxr_kernels()')"
echo
echo "| model | threads | row by row: rows/s | covid_predict_batch (32): rows/s | speed-up | same probabilities |"
echo "|---|---|---|---|---|---|"
for model in default plain_alexnet; do
    same=$(psql -X -Atq -c "SELECT bool_and(b.probability = cxr.covid_predict(t.image, '$model'))
                            FROM cxr.covid_predict_batch('SELECT file, image FROM t', '$model', 32) b
                            JOIN t ON t.file = b.key")
    for threads in 1 2; do
        timed "$threads" "SELECT count(cxr.covid_predict(image, '$model')) FROM t" >/dev/null  # warm
        row=$( (timed "$threads" "SELECT count(cxr.covid_predict(image, '$model')) FROM t";
                timed "$threads" "SELECT count(cxr.covid_predict(image, '$model')) FROM t") | best)
        bat=$( (timed "$threads" "SELECT count(*) FROM cxr.covid_predict_batch('SELECT file, image FROM t', '$model', 32)";
                timed "$threads" "SELECT count(*) FROM cxr.covid_predict_batch('SELECT file, image FROM t', '$model', 32)") | best)
        python3 -c "r, b = $n * 1000 / $row, $n * 1000 / $bat; print(f'| $model | $threads | {r:.1f} | {b:.1f} | {b / r:.2f}x | $same |')"
    done
done
