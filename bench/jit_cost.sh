#!/usr/bin/env bash
# What PostgreSQL's JIT adds to scoring queries: `SELECT count(cxr.covid_predict(image))` over
# 20, 100 and 1,000 real X-rays with jit on and off, twice each, alternating; execution time and
# the JIT's own time from EXPLAIN (ANALYZE). Scoring's declared cost puts a query of a few dozen
# rows above jit_above_cost and jit_inline_above_cost. Needs the extension installed
# (make install) and ../shared/data/cxr.
#
#   bench/jit_cost.sh [DATA_DIR]      (starts its own throwaway PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/cxr}
source bench/xray_server.inc
psql -X -q -c "CREATE TABLE t AS SELECT file, image FROM cxr_data.xrays WHERE split IN ('test', 'val') ORDER BY file LIMIT 1000" \
     -c "VACUUM ANALYZE t"
echo "| rows | jit | execution ms | of which JIT ms |"
echo "|---|---|---|---|"
for n in 20 100 1000; do
    for jit in on off on off; do
        # one session per query: each loads the model once, as a new connection would
        psql -X -Atq -c "SET jit = $jit" \
            -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(cxr.covid_predict(image)) FROM (SELECT image FROM t LIMIT $n) s" |
            /usr/bin/python3 -c "
import json, sys
p = json.load(sys.stdin)[0]
print(f\"| $n | $jit | {p['Execution Time']:.0f} | {p.get('JIT', {}).get('Timing', {}).get('Total', 0.0):.0f} |\")"
    done
done
