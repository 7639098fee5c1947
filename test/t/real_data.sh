#!/usr/bin/env bash
# With the shared X-rays beside the project: a few hundred real images in a table, scored in one
# query (serial and with 2 parallel workers), equal to scoring them one by one.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
need_shared_xrays
echo "1..4"
db=cxr_real_data
psql -X -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
export PGDATABASE=$db
q -c "CREATE EXTENSION cxr_attn"
scripts/load_cxr.sh "$data" 25 >/dev/null            # 25 per split and class: 150 images
n=$(q -c "SELECT count(*) FROM cxr_data.xrays")
ok $([ "$n" -ge 150 ]; echo $?) "loaded $n real X-rays"
import_model t test/bin/random_attn2.safetensors
q -c "CREATE TABLE serial AS SELECT file, cxr.covid_predict(image, 't') AS p FROM cxr_data.xrays"
q -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" \
  -c "SET min_parallel_table_scan_size = 0" -c "SET max_parallel_workers_per_gather = 2" \
  -c "CREATE TABLE parallel AS SELECT file, cxr.covid_predict(image, 't') AS p FROM cxr_data.xrays"
# one by one: a separate statement per image
q -c "SELECT file FROM cxr_data.xrays ORDER BY file" > /tmp/cxr_files.$$
q -c "CREATE TABLE single (file text, p float8)"
while read -r f; do
    echo "INSERT INTO single SELECT file, cxr.covid_predict(image, 't') FROM cxr_data.xrays WHERE file = '$f';"
done < /tmp/cxr_files.$$ | q >/dev/null
rm -f /tmp/cxr_files.$$
diff=$(q -c "SELECT count(*) FROM serial s JOIN single o USING (file) WHERE s.p IS DISTINCT FROM o.p")
ok $([ "$diff" = 0 ] && [ "$(q -c 'SELECT count(*) FROM single')" = "$n" ]; echo $?) "one query equals one-by-one scoring ($diff differ)"
diff=$(q -c "SELECT count(*) FROM serial s JOIN parallel o USING (file) WHERE s.p IS DISTINCT FROM o.p")
ok $([ "$diff" = 0 ]; echo $?) "parallel workers give the same scores ($diff differ)"
plan=$(q -c "SET parallel_setup_cost = 0" -c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" \
          -c "EXPLAIN SELECT cxr.covid_predict(image, 't') FROM cxr_data.xrays")
grep -q "Workers Planned" <<< "$plan"; ok $? "covid_predict runs under a parallel plan"
psql -X -q -d postgres -c "DROP DATABASE $db"
exit $tap_failed
