-- Hardening (issue 8): row ownership that no search_path can subvert, names owned through
-- deployments, owners as role ids, row security on histories, validation of every stored model,
-- no PUBLIC access to cache flushing, limits a role may lower but not raise, cxr_train checking
-- before it decodes, JSON that a name cannot inject into, and a cached model that outlives a
-- registry change made by the query it evaluates.
\set model_b64 `base64 -w0 test/bin/random_attn2.safetensors`
\set xray0 `base64 -w0 test/data/xray0.png`
-- runs a statement; returns ok, or its SQLSTATE and message
CREATE FUNCTION public.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION public.try(text) TO PUBLIC;
CREATE TABLE sec_imgs (id int, image bytea, label boolean);
INSERT INTO sec_imgs SELECT i, decode(b, 'base64'), i % 2 = 1
FROM (VALUES (0, :'xray0'), (1, :'xray0')) v(i, b);
CREATE ROLE cxr_sec_alice;
CREATE ROLE cxr_sec_bob;
GRANT SELECT, INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_sec_alice, cxr_sec_bob;
GRANT SELECT, INSERT ON cxr.training_history, cxr.training_states TO cxr_sec_alice, cxr_sec_bob;
GRANT SELECT ON cxr.current_models, cxr.model_list, sec_imgs TO cxr_sec_alice, cxr_sec_bob;
CREATE SCHEMA sec_alice AUTHORIZATION cxr_sec_alice;

-- the superuser's name "default", with one model row
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM cxr.models WHERE name = 'default') THEN
        PERFORM cxr.cxr_model_drop('default');
    END IF;
END $$;
SELECT cxr.cxr_model_import('default', decode(:'model_b64', 'base64')) > 0 AS admin_default;
SET ROLE cxr_sec_bob;
SELECT cxr.cxr_model_import('bob_model', decode(:'model_b64', 'base64')) AS bob_id \gset
RESET ROLE;

-- ---------------------------------------------------------------- search_path hijack
-- Every SQL-language and plpgsql function of the extension pins its search_path ...
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace IN ('cxr'::regnamespace, 'cxr_internal'::regnamespace)
  AND l.lanname IN ('sql', 'plpgsql')
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false);
SELECT string_agg(p.oid::regprocedure::text, ', ' ORDER BY p.oid::regprocedure::text) AS sql_and_plpgsql_functions
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace IN ('cxr'::regnamespace, 'cxr_internal'::regnamespace)
  AND l.lanname IN ('sql', 'plpgsql');

-- ... and alice's functions and operators that say yes to everything do not reach them.
SET ROLE cxr_sec_alice;
CREATE FUNCTION sec_alice.pg_has_role(name, name, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION sec_alice.pg_has_role(oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION sec_alice.pg_has_role(name, oid, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE FUNCTION sec_alice.yes(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR sec_alice.= (LEFTARG = text, RIGHTARG = text, FUNCTION = sec_alice.yes);
CREATE FUNCTION sec_alice.yes(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR sec_alice.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = sec_alice.yes);
CREATE FUNCTION sec_alice.no(jsonb, text) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR sec_alice.? (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = sec_alice.no);
SET search_path = sec_alice, pg_catalog;
-- the hijack is live for alice's own queries
SELECT pg_has_role('no_such_role', 'other', 'MEMBER') AS hijacked_function,
       'a'::text = 'b'::text AS hijacked_operator, NOT '{"k": 1}'::jsonb ? 'k' AS hijacked_jsonb;
-- every policy of the registry
SELECT public.try(format('INSERT INTO cxr.deployments (name, model_id) VALUES (%L, %s)',
                         'default', :bob_id)) AS deployments_insert;
SELECT public.try(format('INSERT INTO cxr.deployments (name, model_id) VALUES (%L, %s)',
                         'bob_model', :bob_id)) AS deployments_insert_bobs_name;
SELECT public.try($$INSERT INTO cxr.models (name, weights) VALUES ('bob_model', cxr.cxr_model_export('bob_model'))$$)
    AS models_insert;
SELECT public.try($$INSERT INTO cxr.models (name, weights, owner) VALUES ('x', cxr.cxr_model_export('bob_model'), 'cxr_sec_bob')$$)
    AS models_insert_as_bob;
DELETE FROM cxr.deployments WHERE name IN ('default', 'bob_model');
DELETE FROM cxr.models WHERE name IN ('default', 'bob_model');
SELECT public.try(format('INSERT INTO cxr.training_history VALUES (%s, 99, 0, 0, 0, 0, 0)', :bob_id))
    AS training_history_insert;
SELECT public.try(format('INSERT INTO cxr.training_states VALUES (%s, %L)', :bob_id, '\x00'))
    AS training_states_insert;
-- every SQL-language and plpgsql function
SELECT public.try(format('SELECT cxr.cxr_model_deploy(%L, %s)', 'default', :bob_id)) AS deploy;
SELECT public.try($$SELECT cxr.cxr_model_drop('bob_model')$$) AS drop;
SELECT public.try($$SELECT cxr.cxr_model_import('bob_model', cxr.cxr_model_export('bob_model'))$$)
    AS import;
-- (name_writable and model_writable, the policies' helpers, are tried through every policy
-- above: alice cannot call them herself, see "internal helpers" below)
SELECT cxr.cxr_model_export('bob_model') = cxr.cxr_model_export(:bob_id::bigint) AS export_by_name,
       cxr.cxr_model_export(:bob_id::bigint) = decode(:'model_b64', 'base64') AS export_by_id;
SELECT public.try($$INSERT INTO cxr.models (name, weights, metrics) VALUES ('alice_shipped', cxr.cxr_model_export('bob_model'), '{"shipped": true}')$$)
    AS models_validate_trigger;
-- the C functions' own queries: the name resolves to bob's model, not to any row
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), 'bob_model')
     = cxr.covid_predict(decode(:'xray0', 'base64'), :bob_id::bigint) AS scored_by_name;
RESET search_path;
RESET ROLE;
-- nothing changed
SELECT c.name, c.model_id = :bob_id AS is_bobs FROM cxr.current_models c
WHERE c.name IN ('default', 'bob_model') ORDER BY c.name;
SELECT (SELECT count(*) FROM cxr.models WHERE name IN ('default', 'bob_model')) AS models,
       (SELECT count(*) FROM cxr.deployments WHERE name IN ('default', 'bob_model')) AS deployments,
       (SELECT count(*) FROM cxr.models WHERE owner = 'cxr_sec_alice'::regrole) AS alices,
       (SELECT count(*) FROM cxr.training_history WHERE model_id = :bob_id) AS history,
       (SELECT count(*) FROM cxr.training_states WHERE model_id = :bob_id) AS states;

-- ---------------------------------------------------------------- names owned by deployments
SET client_min_messages = warning;  -- (its NOTICE names ids that depend on earlier tests)
SELECT cxr.cxr_model_deploy('production', :bob_id);
RESET client_min_messages;
SET ROLE cxr_sec_alice;
SELECT cxr.cxr_model_import('alice_model', decode(:'model_b64', 'base64')) AS alice_id \gset
SELECT public.try(format('SELECT cxr.cxr_model_deploy(%L, %s)', 'production', :alice_id)) AS repoint_production;
SELECT public.try($$SELECT cxr.cxr_model_drop('production')$$) AS drop_production;
SELECT public.try(format('INSERT INTO cxr.deployments (name, model_id) VALUES (%L, %s)', 'production', :alice_id))
    AS insert_production;
RESET ROLE;
SELECT name, model_id = :bob_id AS still_bobs FROM cxr.current_models WHERE name = 'production';

-- ---------------------------------------------------------------- owners are role ids
CREATE ROLE cxr_sec_carol;
GRANT SELECT, INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_sec_carol;
SET ROLE cxr_sec_carol;
SELECT cxr.cxr_model_import('carol_model', decode(:'model_b64', 'base64')) > 0 AS imported;
RESET ROLE;
SELECT owner, pg_typeof(owner) FROM cxr.models WHERE name = 'carol_model';
REVOKE ALL ON cxr.models, cxr.deployments FROM cxr_sec_carol;
DROP ROLE cxr_sec_carol;
-- the rows stay, owned by an id no role has now
SELECT owner::text ~ '^[0-9]+$' AS owner_is_a_dangling_id,
       pg_get_userbyid(owner::oid) LIKE 'unknown%' AS no_such_role
FROM cxr.models WHERE name = 'carol_model';
-- a new role of the same name inherits nothing
CREATE ROLE cxr_sec_carol;
GRANT SELECT, INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_sec_carol;
SET ROLE cxr_sec_carol;
SELECT public.try($$SELECT cxr.cxr_model_drop('carol_model')$$) AS new_carol_drops;
RESET ROLE;
-- a superuser can still drop it
SELECT cxr.cxr_model_drop('carol_model') AS superuser_drops;
REVOKE ALL ON cxr.models, cxr.deployments FROM cxr_sec_carol;
DROP ROLE cxr_sec_carol;

-- ---------------------------------------------------------------- every stored model is valid
SET ROLE cxr_sec_alice;
SELECT public.try($$INSERT INTO cxr.models (name, arch, metadata, weights) VALUES ('raw', 'invented', '{}', '\x00')$$)
    AS garbage_weights;
SELECT public.try(format('INSERT INTO cxr.models (name, arch, metadata, weights) VALUES (%L, %L, %L, decode(%L, %L))',
                         'raw', 'invented', '{}', :'model_b64', 'base64')) AS invented_arch;
INSERT INTO cxr.models (name, arch, metadata, weights)
VALUES ('raw', NULL, '{"made": "up"}', decode(:'model_b64', 'base64'))
RETURNING arch, metadata ->> 'attention_score' AS score, metadata ? 'made' AS kept_made_up;
SELECT public.try(format('INSERT INTO cxr.models (name, weights, metrics) VALUES (%L, decode(%L, %L), %L)',
                         'raw', :'model_b64', 'base64', '{"shipped": true}')) AS shipped_mark;
SELECT public.try(format('SELECT cxr.cxr_model_import(%L, decode(%L, %L), true, %L)',
                         'raw', :'model_b64', 'base64', '{"shipped": false}')) AS shipped_mark_import;
RESET ROLE;
SELECT count(*) AS alices_shipped FROM cxr.models
WHERE metrics ? 'shipped' AND owner = 'cxr_sec_alice'::regrole;

-- hostile files, written by test/ref/hostile_files.py (Python's struct and zlib)
\set negative_var `python3 test/ref/hostile_files.py negative_var test/bin/random_attn2.safetensors bn2.running_var`
\set interlace2 `python3 test/ref/hostile_files.py png_interlace2`
SELECT public.try(format('SELECT cxr.cxr_model_import(%L, decode(%L, %L))', 'neg', :'negative_var', 'base64'))
    AS negative_running_var;
SELECT public.try(format('SELECT cxr.cxr_image_info(%L::bytea)', '\x' || :'interlace2')) AS png_interlace_2;

-- bytes that are not a PNG, stored as cxr_image: the error says what they look like
SELECT public.try(format('SELECT %L::bytea::cxr.cxr_image', v)) AS stored_as_cxr_image
FROM (VALUES ('\xffd8ffe000104a464946'), ('\x474946383961'), ('\x'),
             ('\x' || encode(convert_to('hello, world', 'UTF8'), 'hex')),
             ('\x' || repeat('00', 128) || '4449434d')) v(v);

-- ---------------------------------------------------------------- the catalog, beyond the cases
-- no function runs with its owner's rights; every registry table has row security, and its
-- policies are exactly these (no UPDATE policy: no role can update a row; no DELETE policy on
-- histories and states: they go only with their model)
SELECT p.oid::regprocedure AS security_definer FROM pg_proc p
WHERE p.pronamespace = 'cxr'::regnamespace AND p.prosecdef;
SELECT c.relname, c.relrowsecurity AS rls,
       string_agg(p.polname || ':' || p.polcmd::text, ', ' ORDER BY p.polname) AS policies
FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid
WHERE c.relnamespace = 'cxr'::regnamespace AND c.relkind = 'r'
GROUP BY c.relname, c.relrowsecurity ORDER BY c.relname;
-- every user-visible object (function, table, view, domain) has a comment
WITH members AS (
    SELECT d.classid, d.objid FROM pg_depend d
    WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
      AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'cxr_attn')
      AND (d.classid = 'pg_proc'::regclass
           OR (d.classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('r', 'v'))
           OR (d.classid = 'pg_type'::regclass AND (SELECT typtype FROM pg_type WHERE oid = d.objid) = 'd')))
SELECT count(*) AS objects,
       string_agg(pg_describe_object(classid, objid, 0), ', ')
           FILTER (WHERE obj_description(objid, classid::regclass::text) IS NULL) AS without_comment
FROM members;
SELECT obj_description('cxr'::regnamespace, 'pg_namespace') IS NOT NULL AS schema_commented,
       obj_description('cxr_internal'::regnamespace, 'pg_namespace') IS NOT NULL AS internal_schema_commented;

-- ---------------------------------------------------------------- internal helpers
-- Policies' helpers, trigger functions, the cache flush and the shipped model's reader live in
-- cxr_internal, which users cannot name: every call is refused before it runs.
SELECT p.oid::regprocedure::text AS internal_helper FROM pg_proc p
WHERE p.pronamespace = 'cxr_internal'::regnamespace ORDER BY 1;
SET ROLE cxr_sec_bob;
-- (an aggregate's helpers take the type internal, which no SQL value has: they are called
-- with a NULL of a type they do not take, and must be refused all the same)
SELECT count(*) AS internal_functions,
       count(*) FILTER (WHERE public.try(format('SELECT cxr_internal.%I(%s)', p.proname,
           (SELECT coalesce(string_agg('NULL::' || replace(format_type(t, NULL), 'internal', 'text'), ', '), '')
            FROM unnest(p.proargtypes) t))) = '42501: permission denied for schema cxr_internal')
           AS refused
FROM pg_proc p WHERE p.pronamespace = 'cxr_internal'::regnamespace;
RESET ROLE;

-- ---------------------------------------------------------------- not for PUBLIC
SELECT p.oid::regprocedure::text AS not_public FROM pg_proc p
WHERE p.pronamespace IN ('cxr'::regnamespace, 'cxr_internal'::regnamespace)
  AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
ORDER BY 1;
-- the user's schema holds only what users call
SELECT to_regprocedure('cxr.cxr_store_trained(text, bytea, boolean, jsonb, jsonb, bytea, bigint)')
    AS store_trained, to_regprocedure('cxr.name_writable(text)') AS name_writable,
    to_regprocedure('cxr.registry_changed_trigger()') AS trigger_function,
    to_regprocedure('cxr.cxr_registry_changed()') AS flush_caches;

-- ---------------------------------------------------------------- limits: lower yes, raise no
SET ROLE cxr_sec_alice;
SET cxr_attn.max_image_pixels = 1000;
SELECT public.try(format('SELECT cxr.covid_predict(decode(%L, %L), %L)', :'xray0', 'base64', 'bob_model'))
    AS lowered_limit_applies;
SELECT public.try(format('SELECT cxr.cxr_image_gray(decode(%L, %L), 32)', :'xray0', 'base64'))
    AS lowered_limit_bounds_outputs;
SET cxr_attn.max_image_pixels = 40000000;
SELECT public.try('SET cxr_attn.max_image_pixels = 2147483647') AS raise_pixels;
SELECT public.try($$SELECT set_config('cxr_attn.max_image_pixels', '40000001', false)$$) AS raise_by_set_config;
SELECT public.try($$SET cxr_attn.training_memory = '100GB'$$) AS raise_memory;
SELECT public.try('SET cxr_attn.scoring_threads = 2') AS raise_scoring_threads;
SELECT public.try(format('SET cxr_attn.training_threads = %s',
                         current_setting('cxr_attn.training_threads')::int + 1)) <> 'ok' AS raise_training_threads_refused;
SELECT public.try('ALTER ROLE cxr_sec_alice SET cxr_attn.max_image_pixels = 2147483647') AS alter_role;
SELECT public.try($$CREATE FUNCTION sec_alice.big() RETURNS int LANGUAGE sql
                    SET cxr_attn.max_image_pixels = 2147483647 AS 'SELECT 1'$$) AS function_set_clause;
SHOW cxr_attn.max_image_pixels;
RESET ROLE;
-- a superuser may raise them
SET cxr_attn.max_image_pixels = 50000000;
SHOW cxr_attn.max_image_pixels;
RESET cxr_attn.max_image_pixels;

-- ---------------------------------------------------------------- cxr_train checks first
-- (the training query divides by zero: an error about anything else came before it ran)
CREATE ROLE cxr_sec_nobody;
SET ROLE cxr_sec_nobody;
SELECT public.try($$SELECT * FROM cxr.cxr_train('x', 'SELECT 1/0')$$) AS no_grants;
RESET ROLE;
SET ROLE cxr_sec_alice;
SELECT public.try($$SELECT * FROM cxr.cxr_train('', 'SELECT 1/0')$$) AS empty_name;
SELECT public.try($$SELECT * FROM cxr.cxr_train('bob_model', 'SELECT 1/0')$$) AS bobs_name;
SELECT public.try($$SELECT * FROM cxr.cxr_train('production', 'SELECT 1/0')$$) AS deployed_name;
SELECT public.try($$SELECT * FROM cxr.cxr_train('a', 'SELECT 1/0', arch => 'nope')$$) AS bad_arch;
SELECT public.try($$SELECT * FROM cxr.cxr_train('a', 'SELECT 1/0', init_model => 'missing')$$) AS missing_init;
SELECT public.try($$SELECT * FROM cxr.cxr_train('a', 'SELECT 1/0', init_model => 'bob_model', resume => true)$$)
    AS nothing_to_resume;
SET cxr_attn.training_memory = '256MB';
SELECT public.try($$SELECT * FROM cxr.cxr_train('a', 'SELECT 1/0', batch_size => 64)$$) AS batch_memory;
RESET cxr_attn.training_memory;
SELECT public.try($$SELECT * FROM cxr.cxr_train('a', 'SELECT 1/0', batch_size => 4)$$) AS reaches_the_query;
RESET ROLE;
DROP ROLE cxr_sec_nobody;

-- ---------------------------------------------------------------- names are data, not JSON
SET ROLE cxr_sec_alice;
SELECT cxr.cxr_model_import('inj", "shipped": true, "x": "', decode(:'model_b64', 'base64')) > 0 AS imported;
SET client_min_messages = warning;
SELECT count(*) AS epochs FROM cxr.cxr_train('from_inj', 'SELECT image, label FROM sec_imgs',
    init_model => 'inj", "shipped": true, "x": "', epochs => 1, batch_size => 2, augment => false);
RESET client_min_messages;
SELECT metrics ? 'shipped' AS shipped, metrics ? 'x' AS x, metrics ->> 'init_model' AS init_model
FROM cxr.models WHERE name = 'from_inj';
RESET ROLE;

-- ---------------------------------------------------------------- cached models held by cxr_evaluate
-- The evaluation query changes the registry (so every backend's cache is flushed) and scores with
-- other models while cxr_evaluate holds the one it evaluates.
CREATE FUNCTION public.flush_and_score(img bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cxr_internal.cxr_registry_changed();
    RETURN cxr.covid_predict(img, 'default') >= 0 AND cxr.covid_predict(img, 'alice_model') >= 0;
END $$;
SELECT n, accuracy, roc_auc, true_positive, false_positive, true_negative, false_negative
FROM cxr.cxr_evaluate('bob_model', 'SELECT image, label FROM sec_imgs, generate_series(1, 8)') \gset plain_
SELECT e.n = :plain_n AND e.accuracy = :plain_accuracy AND e.roc_auc IS NOT DISTINCT FROM :plain_roc_auc::float8
       AND e.true_positive = :plain_true_positive AND e.false_positive = :plain_false_positive
       AND e.true_negative = :plain_true_negative AND e.false_negative = :plain_false_negative
       AS same_metrics
FROM cxr.cxr_evaluate('bob_model', 'SELECT image, label FROM sec_imgs, generate_series(1, 8) WHERE flush_and_score(image)') e;
-- the same with a deployment made inside the query, by a role without cache-flushing rights
CREATE FUNCTION public.deploy_and_score(img bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cxr.cxr_model_deploy('alice_model', (SELECT max(id) FROM cxr.models WHERE name = 'alice_model'));
    RETURN cxr.covid_predict(img, 'default') >= 0;
END $$;
GRANT EXECUTE ON FUNCTION public.deploy_and_score(bytea) TO cxr_sec_alice;
SET ROLE cxr_sec_alice;
SELECT e.n = :plain_n AND e.accuracy = :plain_accuracy AND e.roc_auc IS NOT DISTINCT FROM :plain_roc_auc::float8
       AND e.true_positive = :plain_true_positive AND e.true_negative = :plain_true_negative AS same_metrics
FROM cxr.cxr_evaluate('bob_model', 'SELECT image, label FROM sec_imgs, generate_series(1, 8) WHERE deploy_and_score(image)') e;
RESET ROLE;

-- ---------------------------------------------------------------- clean up
-- (production pointed at bob's model: it goes with it)
SELECT cxr.cxr_model_drop(n) FROM unnest(ARRAY['default', 'bob_model', 'alice_model', 'raw',
    'inj", "shipped": true, "x": "', 'from_inj']) n;
DROP SCHEMA sec_alice CASCADE;
REVOKE ALL ON cxr.models, cxr.deployments, cxr.training_history, cxr.training_states,
    cxr.current_models, cxr.model_list, sec_imgs FROM cxr_sec_alice, cxr_sec_bob;
DROP FUNCTION public.deploy_and_score(bytea);
DROP ROLE cxr_sec_alice;
DROP ROLE cxr_sec_bob;
DROP TABLE sec_imgs;
DROP FUNCTION public.flush_and_score(bytea);
DROP FUNCTION public.try(text);
