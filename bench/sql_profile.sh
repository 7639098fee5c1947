#!/usr/bin/env bash
# Where scoring through SQL spends its time, beside the core alone: `perf record -p` of one
# backend running `SELECT count(cxr.covid_predict(image)) FROM t` over N real X-rays, and
# `perf record` of `cxr_cli predict` on the same PNG files with the same model. Prints each
# side's CPU seconds by library and its top functions. Needs perf, the extension installed
# (make install), test/bin/cxr_cli and ../shared/data/cxr.
#
#   bench/sql_profile.sh [N] [DATA_DIR]      (starts its own throwaway PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-600}
data=${2:-../shared/data/cxr}
source bench/xray_server.inc
work=$(mktemp -d)
trap 'rm -rf "$work"; pg_throwaway_stop' EXIT
model_file=$work/model.safetensors
psql -X -Atq -c "SELECT encode(cxr.cxr_model_export('default'), 'base64')" | base64 -d > "$model_file"
psql -X -q -c "CREATE TABLE t AS SELECT file, image FROM cxr_data.xrays WHERE split IN ('test', 'val') ORDER BY file LIMIT $n" \
     -c "VACUUM ANALYZE t"
psql -X -Atq -c "SELECT file FROM t ORDER BY file" | sed "s|^|$data/|" > "$work/files"
psql -X -Atq -c "SELECT count(cxr.covid_predict(image)) FROM t" >/dev/null   # warm caches
coproc P { psql -X -Atq; }
echo "SELECT pg_backend_pid();" >&"${P[1]}"
read -r pid <&"${P[0]}"
perf record -q -o "$work/sql.data" -p "$pid" 2>/dev/null &
perf_pid=$!
sleep 1
echo "SELECT count(cxr.covid_predict(image)) FROM t;" >&"${P[1]}"
read -r _ <&"${P[0]}"
kill -INT "$perf_pid"
wait "$perf_pid" || true
echo '\q' >&"${P[1]}"
perf record -q -o "$work/core.data" -- xargs -a "$work/files" test/bin/cxr_cli predict "$model_file" >/dev/null 2>&1
for side in sql core; do
    echo "## $side: $( [ $side = sql ] && echo "one backend, $n rows" || echo "cxr_cli predict, $n files")"
    perf report -i "$work/$side.data" --stdio --sort dso 2>/dev/null > "$work/dso.txt"
    # cpu-clock samples: the event count is in nanoseconds
    awk '/Event count/ { printf "CPU seconds: %.2f\n", $NF / 1e9; exit }' "$work/dso.txt"
    grep '%' "$work/dso.txt" | grep -v '^#' | head -8 || true
    perf report -i "$work/$side.data" --stdio --no-children --sort sym 2>/dev/null |
        grep '%' | grep -v '^#' | head -15 || true
done
