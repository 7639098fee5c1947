#!/usr/bin/env bash
# Measures what one call of each expensive function costs, in the planner's own units, so that
# their COST declarations (sql/cxr_attn.sql) come from measurement: the planner then evaluates
# scoring above a LIMIT instead of for every row, and weighs parallel plans.
#
#   bench/function_costs.sh [DATA_DIR]     (starts its own throwaway PostgreSQL; real X-rays are
#                                           used when DATA_DIR has them, the test PNGs otherwise)
#
# One planner cost unit is measured as the time of a plain sequential scan with a filter divided
# by its estimated total cost; a function's COST is in units of cpu_operator_cost (0.0025 of a
# cost unit), so COST = seconds per call / seconds per cost unit / cpu_operator_cost.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/cxr}
unset OPENBLAS_CORETYPE
source scripts/pg_throwaway.sh
q() { psql -X -Atq -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION cxr_attn"
q -c "CREATE TABLE imgs (image bytea)"
if [ -f "$data/manifest.csv" ]; then
    scripts/load_cxr.sh "$data" 5 >/dev/null
    q -c "INSERT INTO imgs SELECT image FROM cxr_data.xrays LIMIT 20"
    what="20 real X-rays"
else
    for i in 0 1 2 3; do
        q -c "INSERT INTO imgs VALUES (decode('$(base64 -w0 test/data/xray$i.png)', 'base64'))"
    done
    what="the 4 test PNGs"
fi
if [ -z "$(q -c "SELECT 1 FROM cxr.current_models WHERE name = 'default'")" ]; then
    make -s test/bin/random_attn2.safetensors >/dev/null
    { printf "SELECT cxr.cxr_model_import('default', decode('"; base64 -w0 test/bin/random_attn2.safetensors; printf "', 'base64'));\n"; } | q >/dev/null
fi
q -c "CREATE TABLE models_bytes AS SELECT cxr.cxr_model_export('default') AS w"

# milliseconds of a statement: best of three
ms() {
    local best=""
    for _ in 1 2 3; do
        local t=$(q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1)
        best=$(awk -v a="$t" -v b="$best" 'BEGIN { print (b == "" || a < b) ? a : b }')
    done
    echo "$best"
}
q -c "CREATE TABLE calib AS SELECT g FROM generate_series(1, 3000000) g" -c "VACUUM ANALYZE calib"
calib_sql="SELECT count(*) FROM calib WHERE g % 7 = 3"
calib_cost=$(q -c "EXPLAIN (FORMAT JSON) $calib_sql" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Plan"]["Total Cost"])')
calib_ms=$(ms "$calib_sql")
op=$(q -c "SHOW cpu_operator_cost")
n=$(q -c "SELECT count(*) FROM imgs")
echo "# $(q -c "SELECT cxr.cxr_kernels()")"
echo "# calibration: $calib_sql: $calib_ms ms for $calib_cost cost units; cpu_operator_cost $op; images: $what"
printf '%-48s %12s %12s\n' "function" "ms/call" "COST"
cost_of() {  # label, SQL over imgs computing the call for every row, calls per row
    q -c "$2" >/dev/null  # warm: model loaded, BLAS started
    local t=$(ms "$2")
    awk -v l="$1" -v t="$t" -v n="$n" -v k="${3:-1}" -v cm="$calib_ms" -v cc="$calib_cost" -v op="$op" 'BEGIN {
        per = t / (n * k); cost = per / (cm / cc) / op
        e = 10 ^ (int(log(cost) / log(10)) - 1); if (cost < 10) e = 1
        printf "%-48s %12.4f %12d\n", l, per, int(cost / e + 0.5) * e }'
}
cost_of "covid_predict(bytea, text|bigint)" "SELECT count(cxr.covid_predict(image)) FROM imgs"
cost_of "attention_map(bytea, int, text|bigint)" "SELECT count(cxr.attention_map(image, 3)) FROM imgs"
cost_of "attention_overlay(bytea, int, text|bigint)" "SELECT count(cxr.attention_overlay(image, 3)) FROM imgs"
cost_of "attention_overlay(..., caption => true)" "SELECT count(cxr.attention_overlay(image, 3, caption => true)) FROM imgs"
# (cost_of divides by n images x k: these statements make 1 and 10 calls)
cost_of "attention_figure(bytea[], ...) of 6 X-rays" "SELECT length(cxr.attention_figure((SELECT array_agg(image) FROM (SELECT image FROM imgs LIMIT 6) s)))" "$(awk "BEGIN { print 1 / $n }")"
q -c "INSERT INTO cxr.training_history SELECT (SELECT min(id) FROM cxr.models), g, 1.0 / g, 0.5 + g / 100.0, 1.2 / g, 0.5 + g / 120.0, 1
      FROM generate_series(1, 30) g"  # a 30-epoch history to draw
cost_of "cxr_training_curve(text|bigint), 30 epochs" "SELECT length(cxr.cxr_training_curve((SELECT min(id) FROM cxr.models))) FROM generate_series(1, 10)" "$(awk "BEGIN { print 10 / $n }")"
cost_of "cxr_image_gray(bytea, int) at 299" "SELECT count(cxr.cxr_image_gray(image, 299)) FROM imgs"
cost_of "cxr_image_info(bytea)" "SELECT count((cxr.cxr_image_info(image)).width) FROM imgs, generate_series(1, 100)" 100
cost_of "cxr_model_validate(bytea)" "SELECT count((cxr.cxr_model_validate(w)).arch) FROM models_bytes, imgs"
cost_of "cxr_evaluate(text, text), per image" "SELECT n FROM cxr.cxr_evaluate('default', 'SELECT image, i % 2 = 0 FROM (SELECT image, row_number() OVER () AS i FROM imgs) s')"
