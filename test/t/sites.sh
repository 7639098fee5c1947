#!/usr/bin/env bash
# Past one server (issue 14): three sites, each a PostgreSQL server of its own with cxr_attn and
# a third of a sample of the shared X-rays, and a coordinator (a database on the throwaway
# server) that sees them as one partitioned table of postgres_fdw foreign partitions. The user
# mappings reach each site as a non-superuser holding only the grants README.md lists. The
# shared X-rays come from one source, so the sites split them by a hash of the file name.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
need_shared_xrays
echo "1..24"
source scripts/sites.inc

# ---- the coordinator: every image once in a local table (the one-server reference), each
# site's third copied to it
fresh_db cxr_coord
q -c "CREATE TABLE pooled (file text PRIMARY KEY, label boolean, split text, source text, image bytea)"
python3 scripts/load_cxr.py "$data" --limit-per-split 15 |
    q -c "\\copy pooled (file, label, split, source, image) FROM STDIN WITH (FORMAT csv)"
q -c "ALTER TABLE pooled ADD COLUMN site text" \
  -c "UPDATE pooled SET site = 'site' || (1 + abs(hashtext(file)) % 3)"
for i in 1 2 3; do
    q -c "\\copy (SELECT file, label, split, image FROM pooled WHERE site = 'site$i') TO STDOUT" |
        site_q $i -c "\\copy xrays (file, label, split, image) FROM STDIN"
    site_q $i -c "ANALYZE xrays"
done
n=$(q -c "SELECT count(*) FROM pooled")
per_site=$(for i in 1 2 3; do site_q $i -c "SELECT count(*) FROM xrays"; done | paste -sd/)
ok $([ "$n" -ge 90 ] && [ "$(( ${per_site//\// + } ))" = "$n" ]; echo $?) "$n real X-rays, split $per_site over three sites"

make_coordinator

# ---- one model, everywhere, by one call
import_model net test/bin/random_attn2.safetensors
dist=$(q -c "SELECT server || ':' || imported FROM cxr.cxr_model_distribute('net', ARRAY['site1', 'site2', 'site3'])" | paste -sd,)
again=$(q -c "SELECT server || ':' || imported FROM cxr.cxr_model_distribute('net', ARRAY['site1', 'site2', 'site3'])" | paste -sd,)
[ "$dist" = "site1:true,site2:true,site3:true" ] && [ "$again" = "site1:false,site2:false,site3:false" ]
ok $? "cxr_model_distribute puts the model on every site in one call, and a second call finds it there ($dist; $again)"

file_digest=$(sha256sum < test/bin/random_attn2.safetensors | cut -d' ' -f1)
digests=$(q -c "SELECT encode(cxr.cxr_model_digest('net'), 'hex')"
          for i in 1 2 3; do site_q $i -c "SELECT encode(cxr.cxr_model_digest('net'), 'hex')"; done)
[ "$(sort -u <<< "$digests")" = "$file_digest" ]
ok $? "the model has the same identity on the coordinator and the three sites: the file's SHA-256 ($file_digest)"

# a site that is not there: all or nothing, and the ERROR names it
q -c "CREATE SERVER site9 FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '$sites_dir/none', port '1', dbname 'site')" \
  -c "CREATE USER MAPPING FOR CURRENT_USER SERVER site9 OPTIONS (user 'cxr_site')"
err=$(q -c "SELECT * FROM cxr.cxr_model_distribute('net', ARRAY['site1', 'site9'])" 2>&1)
echo "# $err" | head -3
grep -q 'site "site9"' <<< "$err" && [ "$(site_q 1 -c "SELECT count(*) FROM cxr.models WHERE name = 'net'")" = 1 ]
ok $? "a site that is down makes cxr_model_distribute fail with an ERROR naming it, and no site keeps anything"

# ---- scoring across sites
digest="'\\x$file_digest'::bytea"
q -c "CREATE TABLE one_server AS SELECT file, cxr.covid_predict(image, $digest) AS p FROM pooled"
net="(SELECT cxr.cxr_model_digest('net'))"
q -c "CREATE TABLE across AS SELECT file, probability AS p FROM all_scores WHERE model = $net"
diff=$(q -c "SELECT count(*) FROM one_server o FULL JOIN across a USING (file) WHERE o.p IS DISTINCT FROM a.p")
ok $([ "$diff" = 0 ] && [ "$(q -c 'SELECT count(*) FROM across')" = "$n" ]; echo $?) \
    "scores across the sites equal scoring the same rows on one server, bit for bit ($diff differ)"

plan=$(q -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT file, probability FROM all_scores WHERE model = $net")
echo "$plan" | sed 's/^/# /'
remote=$(grep -Ec 'Remote SQL: SELECT file, probability FROM site[123].xray_scores WHERE \(\(model = \$1::bytea\)\)' <<< "$plan")
[ "$remote" = 3 ]
ok $? "EXPLAIN VERBOSE: each site computes the scores; only file names and scores cross the network"
[ "$(grep -c 'Async Foreign Scan' <<< "$plan")" = 3 ]
ok $? "the three sites are scanned concurrently (async append)"

scored=$(q -c "SET client_min_messages = warning" -c "CREATE TABLE by_dblink AS SELECT site, key AS file, probability AS p
              FROM cxr.cxr_score_sites('net', ARRAY['site1', 'site2', 'site3'], 'SELECT file, image FROM xrays', fetch_size => 7)" \
         -c "SELECT count(*) || ':' || count(*) FILTER (WHERE o.p IS NOT DISTINCT FROM b.p AND b.site = x.site)
             FROM one_server o FULL JOIN by_dblink b USING (file) LEFT JOIN pooled x USING (file)")
ok $([ "$scored" = "$n:$n" ]; echo $?) "cxr_score_sites (each site scores its rows, in chunks of 7) equals one server bit for bit, each row from its site ($scored)"

privs=$(site_q 1 -c "SET ROLE cxr_site" -c "SELECT has_table_privilege('cxr.training_states', 'SELECT'),
                                                   has_table_privilege('cxr.models', 'UPDATE'),
                                                   rolsuper FROM pg_roles WHERE rolname = 'cxr_site'" | paste -sd,)
ok $([ "$privs" = "f|f|f" ]; echo $?) "the sites are reached as a non-superuser without rights beyond the README's grants ($privs)"

# ---- federated evaluation: labels and scores cross, images do not
fed=$(q -c "SELECT coalesce(site, 'pooled'), (e).n, (e).accuracy, (e).sensitivity, (e).specificity, (e).roc_auc
            FROM (SELECT site, cxr.cxr_metrics(label, probability) e FROM all_scores WHERE model = $net
                  GROUP BY ROLLUP (site)) s ORDER BY 1")
ref=$(q -c "SELECT 'pooled', n, accuracy, sensitivity, specificity, roc_auc FROM cxr.cxr_evaluate($digest, 'SELECT image, label FROM pooled')"
      for i in 1 2 3; do site_q $i -c "SELECT 'site$i', n, accuracy, sensitivity, specificity, roc_auc FROM cxr.cxr_evaluate($digest, 'SELECT image, label FROM xrays')"; done)
echo "$fed" | sed 's/^/# federated: /'
[ -n "$fed" ] && [ "$fed" = "$(sort <<< "$ref")" ]
ok $? "federated evaluation (per site and pooled, one query) equals cxr_evaluate on each site and on the pooled rows"
sites=$(q -c "SELECT coalesce(site, 'pooled'), n, accuracy, sensitivity, specificity, roc_auc
              FROM cxr.cxr_evaluate_sites('net', ARRAY['site1', 'site2', 'site3'], 'SELECT image, label FROM xrays') ORDER BY 1")
[ -n "$sites" ] && [ "$sites" = "$fed" ]
ok $? "cxr_evaluate_sites, started on every site through dblink, gives the same figures"
t0=$(date +%s%N)
err=$(q -c "SET statement_timeout = '1s'" -c "SELECT count(*) FROM cxr.cxr_evaluate_sites('net', ARRAY['site1', 'site2', 'site3'],
                                                   'SELECT image, label FROM xrays, generate_series(1, 20) WHERE pg_sleep(0.01) IS NOT NULL')" 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sleep 1
busy=$(for i in 1 2 3; do site_q $i -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%covid_predict(q.image%' AND pid <> pg_backend_pid()"; done | paste -sd+)
grep -q "canceling statement due to statement timeout" <<< "$err" && [ "$ms" -lt 2000 ] && [ "$(( busy ))" = 0 ]
ok $? "statement_timeout stops cxr_evaluate_sites in ${ms} ms (1 s timeout), and every site stops scoring ($busy)"
fplan=$(q -c "EXPLAIN (VERBOSE, COSTS OFF) SELECT site, cxr.cxr_metrics(label, probability) FROM all_scores WHERE model = $net GROUP BY ROLLUP (site)")
[ "$(grep -Ec 'Remote SQL: SELECT site, label, probability FROM site[123].xray_scores WHERE \(\(model = \$1::bytea\)\)' <<< "$fplan")" = 3 ]
ok $? "the federated evaluation's plan scores on the sites"

out=$(q <<< "${readme_blocks[1]}" 2>&1)
rc=$?
echo "$out" | grep -v '^images/' | sed 's/^/# readme: /'
[ ${#readme_blocks[@]} = 2 ] && [ "$rc" = 0 ] && [ "$(grep -c '^images/' <<< "$out")" = "$n" ] &&
    grep -q '^all sites|90|' <<< "$out" && grep -q '^2|average|' <<< "$out" &&
    [ "$(grep -Ec '^site[123]\|[0-9]+\|[0-9]+$' <<< "$out")" = 3 ]
ok $? "the README's blocks for many sites run as written (${#readme_blocks[@]} blocks)"

# ---- federated training: the sites keep nothing, the run is reproducible and resumable
site_rows() { for i in 1 2 3; do site_q $i -c "SELECT count(*) FROM cxr.models"; done | paste -sd/; }
before=$(site_rows)
fed() {  # NAME ROUNDS [MORE ARGUMENTS]
    q -c "SET client_min_messages = warning" -c "SELECT round || ':' || coalesce(site, 'average') || ':' || images
          FROM cxr.cxr_train_federated('$1', ARRAY['site1', 'site2', 'site3'],
               'SELECT image, label FROM xrays WHERE split = ''train''', rounds => $2, batch_size => 4,
               augment => false, seed => 7 ${3:-})" | paste -sd,
}
rows=$(fed fed_a 2)
train_n=$(q -c "SELECT count(*) FROM pooled WHERE split = 'train'")
hist=$(q -c "SELECT string_agg(epoch::text, ',' ORDER BY epoch) FROM cxr.training_history WHERE model_id = cxr.cxr_model_id('fed_a')")
echo "# $rows"
[ "$(tr , '\n' <<< "$rows" | grep -c .)" = 8 ] && grep -q "2:average:$train_n" <<< "$rows" && [ "$hist" = "1,2" ] &&
    [ "$(site_rows)" = "$before" ]
ok $? "federated training: 2 rounds over 3 sites and $train_n images complete, with history 1,2, and the sites keep nothing ($before model rows)"
fed fed_b 2 >/dev/null
fed fed_c 1 >/dev/null
fed fed_d 1 ", init_model => 'fed_c', resume => true" >/dev/null
d=$(q -c "SELECT string_agg(encode(cxr.cxr_model_digest(n), 'hex'), ' ' ORDER BY n) FROM unnest(ARRAY['fed_a', 'fed_b', 'fed_d']) n")
hist=$(q -c "SELECT string_agg(epoch::text, ',' ORDER BY epoch) FROM cxr.training_history WHERE model_id = cxr.cxr_model_id('fed_d')")
echo "# digests: $d"
[ "$(tr ' ' '\n' <<< "$d" | sort -u | grep -c .)" = 1 ] && [ "$hist" = "1,2" ]
ok $? "the same seed gives the same model, and 1 round resumed by 1 gives the 2-round model (history $hist)"
# cancelled (statement_timeout), and a site lost mid-round: nothing stored anywhere, the ERROR
# names the site
t0=$(date +%s%N)
err=$(q -c "SET statement_timeout = '3s'" -c "SELECT count(*) FROM cxr.cxr_train_federated('fed_x', ARRAY['site1', 'site2', 'site3'],
                     'SELECT image, label FROM xrays', rounds => 50, batch_size => 4)" 2>&1)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "# $err" | head -2
sleep 1
busy=$(for i in 1 2 3; do site_q $i -c "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%cxr_train(%' AND pid <> pg_backend_pid()"; done | paste -sd+)
grep -q "canceling statement due to statement timeout" <<< "$err" && [ "$ms" -lt 5000 ] &&
    [ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'fed_x'")" = 0 ] && [ "$(site_rows)" = "$before" ] &&
    [ "$(( busy ))" = 0 ]
ok $? "statement_timeout stops federated training in ${ms} ms (3 s timeout); nothing is stored, no site is still training ($busy)"
# rights are checked before any site works: a name that belongs to another role is refused
# before the site that is down (site9) is reached
q -c "DO \$\$ BEGIN CREATE ROLE cxr_coord_user; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" -c "GRANT USAGE ON SCHEMA cxr TO cxr_coord_user" \
  -c "GRANT SELECT, INSERT ON cxr.models, cxr.deployments, cxr.training_history TO cxr_coord_user"
err=$(q -c "SET ROLE cxr_coord_user" -c "SELECT count(*) FROM cxr.cxr_train_federated('net', ARRAY['site1', 'site9'],
            'SELECT image, label FROM xrays', rounds => 1)" 2>&1)
mine=$(q -c "SET ROLE cxr_coord_user" -c "SELECT cxr.cxr_model_name_writable('net'), cxr.cxr_model_name_writable('mine')" )
echo "# $err" | head -2
grep -q 'ERROR:  model name "net" belongs to another role' <<< "$err" && [ "$mine" = "f|t" ]
ok $? "cxr_train_federated refuses a name that belongs to another role before any site is reached ($mine)"
q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM cxr.cxr_train_federated('fed_y', ARRAY['site1', 'site2', 'site3'],
      'SELECT image, label FROM xrays', rounds => 50, batch_size => 4)" > "$sites_dir/killed.out" 2>&1 &
query=$!
sleep 4
stop_site 1
wait $query
sed 's/^/# /' "$sites_dir/killed.out" | head -3
start_site 1
grep -q 'cxr_train_federated: site "site1"' "$sites_dir/killed.out" &&
    [ "$(q -c "SELECT count(*) FROM cxr.models WHERE name = 'fed_y'")" = 0 ] && [ "$(site_rows)" = "$before" ]
ok $? "a site lost mid-round: an ERROR naming it, and nothing stored anywhere"

# ---- failures
stop_site 3
err=$(q -c "SELECT count(*) FROM all_scores WHERE model = $net AND probability > 0.5" 2>&1)
echo "# $err" | head -2
grep -q 'server "site3"' <<< "$err"
ok $? "a site that is down gives an ERROR naming it"
start_site 3

# a site killed while it scores: through postgres_fdw the query ends in an ERROR whose context
# is the remote SQL, which names the site's schema (postgres_fdw names no server when a
# connection is lost: docs/scale.md); through the dblink functions in an ERROR naming the site
# (the coordinator takes 50 ms per row, so site2's cursor is still open when it dies)
q -c "ALTER SERVER site2 OPTIONS (SET fetch_size '2')"
q -c "SELECT file, probability FROM all_scores WHERE model = $net AND pg_sleep(0.05) IS NOT NULL" > "$sites_dir/killed.out" 2>&1 &
query=$!
sleep 1.5
stop_site 2
wait $query
rc=$?
grep -v '^[a-z0-9/_.-]*|' "$sites_dir/killed.out" | sed 's/^/# /'
[ "$rc" != 0 ] && grep -q '^ERROR' "$sites_dir/killed.out" &&
    grep -q '^CONTEXT:  remote SQL command: SELECT .* FROM site2\.xray_scores' "$sites_dir/killed.out"
ok $? "a site killed mid-scan ends the postgres_fdw query with an ERROR whose context names it (its schema)"
start_site 2
# the dblink functions: site2 killed 2 s into the query, the ERROR names it. Each site's query
# sleeps 50 ms a row (120 rows: 6 s), so it is still running at 2 s however fast scoring is.
killed_mid_query() {  # FUNCTION QUERY
    q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM $2" > "$sites_dir/killed.out" 2>&1 &
    local query=$!
    sleep 2
    stop_site 2
    wait $query
    local rc=$?
    sed 's/^/# /' "$sites_dir/killed.out"
    [ "$rc" != 0 ] && grep -q "ERROR:  $1: site \"site2\"" "$sites_dir/killed.out"
    ok $? "a site killed mid-query gives $1 an ERROR that names it"
    start_site 2
}
killed_mid_query cxr_evaluate_sites "cxr.cxr_evaluate_sites('net', ARRAY['site1', 'site2', 'site3'],
                                     'SELECT image, label FROM xrays, generate_series(1, 4) WHERE pg_sleep(0.05) IS NOT NULL')"
killed_mid_query cxr_score_sites "cxr.cxr_score_sites('net', ARRAY['site1', 'site2', 'site3'],
                                  'SELECT file, image FROM xrays, generate_series(1, 4) WHERE pg_sleep(0.05) IS NOT NULL', fetch_size => 5)"
# and the coordinator goes on once the site is back
q -c "SELECT count(*) FROM across" >/dev/null
ok $([ "$(q -c "SELECT count(probability) FROM all_scores WHERE model = $net")" = "$n" ]; echo $?) \
    "after the site restarts, the same query scores all $n rows again"
exit $tap_failed
