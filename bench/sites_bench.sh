#!/usr/bin/env bash
# Past one server, measured (issue 14): rows/s scoring real X-rays across 1, 2 and 3 sites (each
# site a PostgreSQL server of its own on this machine, holding the same number of images),
# beside the same rows scored by one backend of one server and through cxr_score_sites (dblink); each site backend's CPU use; and
# one round of federated training (seconds, and the bytes of weights that cross the network).
# Usage: bench/sites_bench.sh [IMAGES_PER_SITE (60)]   Starts its own servers (scripts/pg_throwaway.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
per_site=${1:-60}
source test/t/tap.inc
need_shared_xrays >/dev/null
source scripts/pg_throwaway.sh
N_SITES=3
source scripts/sites.inc
trap 'cleanup; pg_throwaway_stop' EXIT
fresh_db cxr_coord
q -c "CREATE TABLE pooled (file text PRIMARY KEY, label boolean, split text, source text, image bytea)"
python3 scripts/load_cxr.py "$data" --limit-per-split $(( (per_site + 1) / 2 )) |
    q -c "\\copy pooled (file, label, split, source, image) FROM STDIN WITH (FORMAT csv)"
q -c "ALTER TABLE pooled ADD COLUMN site text" \
  -c "UPDATE pooled p SET site = 'site' || (1 + r.n % 3) FROM (SELECT file, row_number() OVER (ORDER BY md5(file)) n FROM pooled) r WHERE r.file = p.file"
for i in 1 2 3; do
    q -c "\\copy (SELECT file, label, split, image FROM pooled WHERE site = 'site$i') TO STDOUT" |
        site_q $i -c "\\copy xrays (file, label, split, image) FROM STDIN"
done
make_coordinator
import_model net weights/cxr_attn_default.safetensors
q -c "SELECT count(*) FROM cxr.cxr_model_distribute('net', ARRAY['site1', 'site2', 'site3'])" >/dev/null
net="(SELECT cxr.cxr_model_digest('net'))"

now() { date +%s.%N; }
# CPU ticks of each site's server: its postmaster's reaped children (every backend of a finished
# session: cutime + cstime, /proc), read once the coordinator's session has ended
site_cpu() {
    sleep 0.3
    for i in 1 2 3; do
        awk '{printf "%d ", $16 + $17}' "/proc/$(head -1 "$sites_dir/s$i/data/postmaster.pid")/stat"
    done
}
tick=$(getconf CLK_TCK)
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $(q -c 'SELECT cxr.cxr_kernels()' | head -c 80)"
echo "images per site: $(q -c "SELECT string_agg(n::text, '/' ORDER BY site) FROM (SELECT site, count(*) n FROM pooled GROUP BY site) s")"
# warm: every site backend loads the model once
q -c "SELECT count(probability) FROM all_scores WHERE model = $net" >/dev/null
printf "%-6s %6s %10s %12s %14s %14s  %s\n" sites rows seconds "rows/s" "one server" "dblink rows/s" "CPU per site (share of the query's wall time)"
for k in 1 2 3; do
    list=$(seq -s, -f "'site%g'" 1 $k)
    rows=$(q -c "SELECT count(*) FROM pooled WHERE site IN ($list)")
    c0=($(site_cpu)); t0=$(now)
    got=$(q -c "SELECT count(probability) FROM all_scores WHERE model = $net AND site IN ($list)")
    t1=$(now)
    c1=($(site_cpu))
    one0=$(now)
    q -c "SELECT count(cxr.covid_predict(image, $net)) FROM pooled WHERE site IN ($list)" >/dev/null
    one1=$(now)
    # the same rows scored through cxr_score_sites (dblink, a cursor per site)
    d0=$(now)
    q -c "SET client_min_messages = warning" -c "SELECT count(probability) FROM cxr.cxr_score_sites('net', ARRAY[$list], 'SELECT file, image FROM xrays')" >/dev/null
    d1=$(now)
    wall=$(echo "$t1 - $t0" | bc -l)
    cpu=""
    for i in 0 1 2; do cpu+=$(printf "%.0f%% " "$(echo "100 * (${c1[$i]} - ${c0[$i]}) / $tick / $wall" | bc -l)"); done
    printf "%-6s %6s %10.2f %12.1f %14.1f %14.1f  %s\n" "$k" "$got" "$wall" "$(echo "$got / $wall" | bc -l)" \
        "$(echo "$rows / ($one1 - $one0)" | bc -l)" "$(echo "$rows / ($d1 - $d0)" | bc -l)" "$cpu"
done

size=$(stat -c %s weights/cxr_attn_default.safetensors)
t0=$(now)
q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM cxr.cxr_train_federated('fed', ARRAY['site1', 'site2', 'site3'],
      'SELECT image, label FROM xrays', rounds => 1, batch_size => 16, init_model => 'net')" >/dev/null
t1=$(now)
printf "federated training, 1 round of 1 local epoch (%s images per site, batch 16, from the shipped model): %.1f s;\n" \
    "$(site_q 1 -c 'SELECT count(*) FROM xrays')" "$(echo "$t1 - $t0" | bc -l)"
printf "  weights crossing the network per round: %d sites x 2 x %.1f MB (hex over dblink doubles it on the wire)\n" 3 \
    "$(echo "$size / 1048576" | bc -l)"
