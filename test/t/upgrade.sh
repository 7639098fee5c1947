#!/usr/bin/env bash
# The upgrade paths: a database created at 0.9.0 (the previous release), 0.8.0, 0.7.0, 0.6.0, 0.5.0, 0.4.0, 0.3.0, 0.2.0 or 0.1.0 keeps its
# models through ALTER EXTENSION UPDATE, ends up with exactly the objects of a fresh install of
# the current version, and roles that could train before can train (and resume) after.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/t/tap.inc
echo "1..80"
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" cxr_attn.control)
new=cxr_up_new
psql -X -q -c "DROP DATABASE IF EXISTS $new" -c "CREATE DATABASE $new"
psql -X -q -c "DROP ROLE IF EXISTS cxr_up_modeler" -c "CREATE ROLE cxr_up_modeler"
tmp=$(mktemp -d)

# the extension's objects, in a form that does not depend on creation order or oids
describe() {
    psql -X -Atq -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT 'member ' || pg_describe_object(classid, objid, 0) FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cxr_attn') ORDER BY 1;
SELECT 'function ' || p.oid::regprocedure || ' -> ' || pg_get_function_result(p.oid) || ' | ' ||
       pg_get_function_arguments(p.oid) || ' | ' || p.provolatile::text || p.proparallel::text || p.proisstrict::text ||
       p.prosecdef::text || ' | cost ' || p.procost || ' rows ' || p.prorows || ' | ' ||
       coalesce(p.proconfig::text, '') || ' | ' || md5(p.prosrc) || ' | ' ||
       coalesce(p.proacl::text, '') || ' | ' || coalesce(obj_description(p.oid, 'pg_proc'), '')
FROM pg_proc p WHERE p.pronamespace::regnamespace::text IN ('cxr', 'cxr_internal') ORDER BY 1;
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || a.attnum || ' ' ||
       format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' ' ||
       coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'cxr'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1;
SELECT 'relation ' || c.oid::regclass || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity || ' ' ||
       coalesce(c.relacl::text, '') || ' ' || coalesce(pg_get_viewdef(c.oid), '')
FROM pg_class c WHERE c.relnamespace = 'cxr'::regnamespace ORDER BY 1;
SELECT 'policy ' || polrelid::regclass || ' ' || polname || ' ' || polcmd::text || ' ' ||
       coalesce(pg_get_expr(polqual, polrelid), '') || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '')
FROM pg_policy ORDER BY 1;
SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1;
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'cxr'::regnamespace ORDER BY 1;
SELECT 'index ' || pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
WHERE c.relnamespace = 'cxr'::regnamespace ORDER BY 1;
SELECT 'dumped ' || u.c::regclass || ' ' || coalesce(u.cond, '')
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(c, cond)
WHERE e.extname = 'cxr_attn' ORDER BY 1;
SELECT 'schema ' || nspname || ' ' || coalesce(nspacl::text, '') || ' ' ||
       coalesce(obj_description(oid, 'pg_namespace'), '')
FROM pg_namespace WHERE nspname IN ('cxr', 'cxr_internal') ORDER BY 1;
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'cxr_attn';
SQL
}

# the fresh install, with the grants the comments of the current script ask for
PGDATABASE=$new q -c "CREATE EXTENSION cxr_attn" \
  -c "GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO cxr_up_modeler" \
  -c "GRANT INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_up_modeler" \
  -c "GRANT SELECT, INSERT ON cxr.training_history, cxr.training_states TO cxr_up_modeler"
describe $new > "$tmp/new.txt"

for from in 0.1.0 0.2.0 0.3.0 0.4.0 0.5.0 0.6.0 0.7.0 0.8.0 0.9.0; do
    old=cxr_up_${from//./_}
    export PGDATABASE=$old
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $old" -c "CREATE DATABASE $old"
    # the old version, with a user's model and a role allowed to train, as its comments said
    q -c "CREATE EXTENSION cxr_attn VERSION '$from'"
    q -c "GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO cxr_up_modeler" \
      -c "GRANT INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_up_modeler" \
      -c "GRANT SELECT, INSERT ON cxr.training_history TO cxr_up_modeler"
    [ "$from" != 0.1.0 ] && q -c "GRANT SELECT, INSERT ON cxr.training_states TO cxr_up_modeler"
    q -c "CREATE TABLE imgs (id int, image cxr.cxr_image, label boolean)" -c "GRANT SELECT ON imgs TO cxr_up_modeler"
    test_xrays imgs
    # a model owned by the modeler role, and one whose metrics claim to be the shipped model
    # (0.1.0 and 0.2.0 let any caller write that mark, and pg_dump then left the row out; 0.3.0
    # refuses it with an ERROR)
    q -c "SET ROLE cxr_up_modeler" -c "SELECT cxr.cxr_model_import('users_model', cxr.cxr_model_export('default'))" >/dev/null
    q -c "SET ROLE cxr_up_modeler" \
      -c "SELECT cxr.cxr_model_import('claims_shipped', cxr.cxr_model_export('default'), true, '{\"shipped\": true}')" >/dev/null
    q -c "SELECT id, cxr.covid_predict(image, 'users_model') FROM imgs ORDER BY id" > "$tmp/before.txt"
    err=$(psql -X -Atq -c "SELECT count(*) FROM cxr.cxr_train('x', 'SELECT image, label FROM imgs', epochs => 1)" 2>&1)
    echo "# $err"
    grep -q "older than its library" <<< "$err"
    ok $? "$from: training on $from's SQL with the new library asks for ALTER EXTENSION UPDATE"

    q -c "ALTER EXTENSION cxr_attn UPDATE"
    q -c "SELECT id, cxr.covid_predict(image, 'users_model') FROM imgs ORDER BY id" > "$tmp/after.txt"
    [ -s "$tmp/before.txt" ] && cmp -s "$tmp/before.txt" "$tmp/after.txt"
    ok $? "$from: the user's model survives the upgrade and scores the same"
    # 0.9.0: every row gets its identity, the SHA-256 of its weights (sha256sum, outside
    # PostgreSQL), and the old row id still scores
    q -c "SELECT encode(weights, 'base64') FROM cxr.models WHERE name = 'users_model'" | base64 -d > "$tmp/users_model.bin"
    want=$(sha256sum < "$tmp/users_model.bin" | cut -d' ' -f1)
    got=$(q -c "SELECT encode(cxr.cxr_model_digest('users_model'), 'hex')")
    by_id=$(q -c "SELECT bool_and(cxr.covid_predict(image, cxr.cxr_model_id('users_model')) = cxr.covid_predict(image, cxr.cxr_model_digest('users_model'))) FROM imgs")
    [ -n "$want" ] && [ "$got" = "$want" ] && [ "$by_id" = t ]
    ok $? "$from: existing rows get their digest ($got) and score the same by id and by digest"
    owners=$(q -c "SELECT string_agg(DISTINCT owner::text || ':' || pg_typeof(owner), ',') FROM cxr.models WHERE name <> 'default'")
    [ "$owners" = "cxr_up_modeler:regrole" ]
    ok $? "$from: owners become role ids of the same roles ($owners)"
    [ "$(q -c "SELECT count(*) FROM cxr.models WHERE metrics ? 'shipped' AND name <> 'default'")" = 0 ] &&
        [ "$(q -c "SELECT count(*) FROM cxr.models WHERE metrics ? 'shipped' AND name = 'default'")" = 1 ]
    ok $? "$from: only the extension's own model keeps the shipped mark (pg_dump keeps the others)"

    grants=$(q -c "SELECT string_agg(privilege_type, ',' ORDER BY privilege_type) FROM information_schema.role_table_grants
                   WHERE grantee = 'cxr_up_modeler' AND table_name = 'training_states'")
    [ "$grants" = "INSERT,SELECT" ]
    ok $? "$from: a role that could train has the same rights on training_states ($grants)"

    describe $old > "$tmp/old.txt"
    diff "$tmp/old.txt" "$tmp/new.txt" | sed 's/^/# /' | head -40
    cmp -s "$tmp/old.txt" "$tmp/new.txt"
    ok $? "$from + upgrade scripts has exactly the objects of a fresh $current ($(wc -l < "$tmp/new.txt") catalog lines compared)"
    grep -q "^version $current$" "$tmp/old.txt"
    ok $? "$from: the upgraded database reports version $current"

    # the role trains and resumes after the upgrade
    train() {
        psql -X -Atq -v ON_ERROR_STOP=1 -c "SET ROLE cxr_up_modeler" -c "SET client_min_messages = warning" \
            -c "SELECT count(*) FROM cxr.cxr_train('$1', 'SELECT image, label FROM imgs', epochs => 1, batch_size => 4 $2)"
    }
    if [ "$from" != 0.1.0 ]; then
        train up_a "" >/dev/null &&
        train up_b ", init_model => 'up_a', resume => true" >/dev/null &&
            [ "$(q -c "SELECT string_agg(epoch::text, ',' ORDER BY epoch) FROM cxr.training_history h
                       JOIN cxr.current_models c USING (model_id) WHERE c.name = 'up_b'")" = "1,2" ]
        ok $? "$from: the modeler role trains and resumes its run after the upgrade (history 1,2)"
    fi
    psql -X -q -d postgres -c "DROP DATABASE $old"
done

psql -X -q -d postgres -c "DROP DATABASE $new"
psql -X -q -d postgres -c "DROP ROLE cxr_up_modeler"
rm -rf "$tmp"
exit $tap_failed
