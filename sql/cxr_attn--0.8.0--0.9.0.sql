-- cxr_attn 0.8.0 -> 0.9.0: past one server. A model's identity on every server is the SHA-256
-- of its weights (cxr.models.digest); by-digest scoring that postgres_fdw can ship to the sites;
-- cxr_metrics, an aggregate for federated evaluation; cxr_model_distribute, one call that puts a
-- model on every site. Existing row ids keep working and every existing row gets its digest.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.9.0'" to load this file. \quit

ALTER TABLE models ADD COLUMN digest bytea NOT NULL GENERATED ALWAYS AS (sha256(weights)) STORED;
CREATE INDEX ON models (digest);

CREATE OR REPLACE VIEW model_list AS
SELECT m.id, m.name, m.arch, m.metadata ->> 'attention_score' AS attention_score, m.metrics,
       m.owner, m.created_at, length(m.weights) AS bytes,
       EXISTS (SELECT 1 FROM current_models c WHERE c.model_id = m.id) AS deployed,
       EXISTS (SELECT 1 FROM training_states s WHERE s.model_id = m.id) AS resumable,
       m.digest
FROM models m ORDER BY m.id;

-- ---------------------------------------------------------------- many servers (0.9.0)
-- A model's identity across servers is the SHA-256 of its weights (cxr.models.digest): the same
-- bytes imported on any server have the same digest, so the by-digest functions below mean the
-- same thing everywhere, and postgres_fdw can ship them to the server that holds the images.
-- Row ids stay per server.
CREATE FUNCTION cxr_model_digest(name text) RETURNS bytea
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT m.digest FROM @extschema@.models m WHERE m.id = @extschema@.cxr_model_id($1) $$;
COMMENT ON FUNCTION cxr_model_digest(text) IS
    'the SHA-256 of the weights of the model a name points at: the model''s identity on every server';
CREATE FUNCTION cxr_model_digest(model_id bigint) RETURNS bytea
    LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp
    AS $$ SELECT m.digest FROM @extschema@.models m WHERE m.id = $1 $$;
COMMENT ON FUNCTION cxr_model_digest(bigint) IS
    'the SHA-256 of a model row''s weights: the model''s identity on every server';

CREATE FUNCTION covid_predict(image bytea, model_digest bytea) RETURNS double precision
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 2900000;
COMMENT ON FUNCTION covid_predict(bytea, bytea) IS
    'probability of COVID-19 for an X-ray, by the model whose weights have this SHA-256 (immutable, the same on every server)';
CREATE FUNCTION attention_map(image bytea, layer int, model_digest bytea) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_attention_map_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 2600000;
COMMENT ON FUNCTION attention_map(bytea, int, bytea) IS
    'attention weights of a conv layer (a side x side grid summing to 1), by model digest';
CREATE FUNCTION cxr_evaluate(model_digest bytea, query text,
                             OUT n bigint, OUT accuracy float8, OUT sensitivity float8,
                             OUT specificity float8, OUT "precision" float8, OUT f1 float8,
                             OUT roc_auc float8, OUT true_positive bigint, OUT false_positive bigint,
                             OUT true_negative bigint, OUT false_negative bigint)
    AS 'MODULE_PATHNAME', 'cxr_evaluate_by_id' LANGUAGE C VOLATILE STRICT
    COST 2700000;
COMMENT ON FUNCTION cxr_evaluate(bytea, text) IS
    'cxr_evaluate by model digest (the SHA-256 of its weights)';

-- cxr_evaluate's figures over rows already scored: federated evaluation scores on each site
-- (pushed down) and aggregates labels and probabilities, per site and pooled (GROUP BY ROLLUP).
CREATE TYPE evaluation AS (n bigint, accuracy float8, sensitivity float8, specificity float8,
                           "precision" float8, f1 float8, roc_auc float8, true_positive bigint,
                           false_positive bigint, true_negative bigint, false_negative bigint);
COMMENT ON TYPE evaluation IS 'what cxr_evaluate and cxr_metrics report about a set of scored X-rays';
CREATE FUNCTION cxr_internal.metrics_accum(internal, boolean, float8) RETURNS internal
    AS 'MODULE_PATHNAME', 'cxr_metrics_accum' LANGUAGE C PARALLEL SAFE;
COMMENT ON FUNCTION cxr_internal.metrics_accum(internal, boolean, float8) IS
    'cxr_metrics''s transition function: keeps each row''s label and probability';
CREATE FUNCTION cxr_internal.metrics_final(internal) RETURNS @extschema@.evaluation
    AS 'MODULE_PATHNAME', 'cxr_metrics_final' LANGUAGE C PARALLEL SAFE;
COMMENT ON FUNCTION cxr_internal.metrics_final(internal) IS
    'cxr_metrics''s final function: the figures of cxr_evaluate, threshold 0.5';
CREATE AGGREGATE cxr_metrics(label boolean, probability float8) (
    SFUNC = cxr_internal.metrics_accum, STYPE = internal,
    FINALFUNC = cxr_internal.metrics_final, PARALLEL = SAFE);
COMMENT ON AGGREGATE cxr_metrics(boolean, float8) IS
    'accuracy, sensitivity, specificity, precision, F1 and ROC AUC of (label, probability) rows, as cxr_evaluate computes them (rows with a NULL are skipped)';

-- One call puts a model on every site: servers are foreign servers (postgres_fdw) with user
-- mappings, reached through dblink. The model is imported on each site under the same name in
-- one remote transaction per site, and those commit only when every site has it; an error
-- names the site. Sites that already have the name pointing at the same digest are left alone.
CREATE FUNCTION cxr_model_distribute(model text, servers text[],
                                     OUT server text, OUT model_id bigint, OUT imported boolean)
    RETURNS SETOF record LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    dbl text;
    m record;
    conns text[] := '{}';
    ids bigint[] := '{}';
    news boolean[] := '{}';
    c text;
    i int;
    rid bigint;
    msg text;
    st text;
    committed int := 0;
BEGIN
    SELECT ns.nspname INTO dbl FROM pg_extension x JOIN pg_namespace ns ON ns.oid = x.extnamespace
    WHERE x.extname = 'dblink';
    IF dbl IS NULL THEN
        RAISE EXCEPTION 'work on several sites needs the dblink extension'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'CREATE EXTENSION dblink;';
    END IF;
    -- sites are foreign servers; dblink reaches them by name through their user mappings
    FOR i IN 1 .. coalesce(array_length(servers, 1), 0) LOOP
        IF servers[i] IS NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = servers[i]) THEN
            RAISE EXCEPTION 'foreign server "%" does not exist', servers[i]
                USING ERRCODE = 'undefined_object',
                      HINT = 'Sites are foreign servers (CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw) with user mappings.';
        END IF;
    END LOOP;
    -- the caller must be able to read the model (row security, grants) before anything is sent
    SELECT r.weights, r.metrics - 'shipped' AS metrics, r.digest INTO STRICT m
    FROM @extschema@.models r WHERE r.id = @extschema@.cxr_model_id(model);
    BEGIN
        FOR i IN 1 .. coalesce(array_length(servers, 1), 0) LOOP
            server := servers[i];
            c := format('cxr_distribute_%s_%s', pg_backend_pid(), i);
            EXECUTE format('SELECT %I.dblink_connect($1, $2)', dbl) USING c, server;
            conns := conns || c;
            EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING c, 'BEGIN';
            EXECUTE format('SELECT t.id FROM %I.dblink($1, $2) AS t(id bigint)', dbl) INTO rid USING c,
                format('SELECT m.id FROM cxr.current_models d JOIN cxr.models m ON m.id = d.model_id '
                       'WHERE d.name = %L AND m.digest = %L', model, m.digest);
            news := news || (rid IS NULL);
            IF rid IS NULL THEN
                EXECUTE format('SELECT t.id FROM %I.dblink($1, $2) AS t(id bigint)', dbl) INTO rid USING c,
                    format('SELECT cxr.cxr_model_import(%L, %L::bytea, true, %L::jsonb)',
                           model, m.weights, m.metrics);
            END IF;
            ids := ids || rid;
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            server := servers[i];
            EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING conns[i], 'COMMIT';
            committed := i;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            BEGIN -- closing a connection rolls its site's open transaction back
                EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
        END LOOP;
        IF st = '57014' THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'cxr_model_distribute: site "%": %', server, msg USING ERRCODE = st,
            DETAIL = CASE WHEN committed = 0
                          THEN 'No site keeps the model: each site''s import was rolled back.'
                          ELSE format('The sites that had committed keep it: %s; the others were rolled back.',
                                      array_to_string(servers[1:committed], ', ')) END;
    END;
    FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
        EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
        server := servers[i];
        model_id := ids[i];
        imported := news[i];
        RETURN NEXT;
    END LOOP;
END $fn$;
COMMENT ON FUNCTION cxr_model_distribute(text, text[]) IS
    'imports the model a name points at on every listed site (foreign servers, through dblink) under the same name, all or none; returns each site''s row id';

-- Federated evaluation started on each site: every site runs the query (rows of image, label)
-- and scores its rows, all sites at once; only labels and probabilities come back. One row per
-- site, then the pooled row (site NULL). An error at a site, or a site lost mid-query, is an
-- ERROR naming it.
CREATE FUNCTION cxr_evaluate_sites(model text, servers text[], query text,
                                   OUT site text, OUT n bigint, OUT accuracy float8,
                                   OUT sensitivity float8, OUT specificity float8,
                                   OUT "precision" float8, OUT f1 float8, OUT roc_auc float8,
                                   OUT true_positive bigint, OUT false_positive bigint,
                                   OUT true_negative bigint, OUT false_negative bigint)
    RETURNS SETOF record LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    dbl text;
    d bytea;
    conns text[] := '{}';
    c text;
    cur text;
    labels boolean[];
    probs float8[];
    all_labels boolean[] := '{}';
    all_probs float8[] := '{}';
    e @extschema@.evaluation;
    msg text;
    st text;
BEGIN
    SELECT ns.nspname INTO dbl FROM pg_extension x JOIN pg_namespace ns ON ns.oid = x.extnamespace
    WHERE x.extname = 'dblink';
    IF dbl IS NULL THEN
        RAISE EXCEPTION 'work on several sites needs the dblink extension'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'CREATE EXTENSION dblink;';
    END IF;
    -- sites are foreign servers; dblink reaches them by name through their user mappings
    FOR i IN 1 .. coalesce(array_length(servers, 1), 0) LOOP
        IF servers[i] IS NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = servers[i]) THEN
            RAISE EXCEPTION 'foreign server "%" does not exist', servers[i]
                USING ERRCODE = 'undefined_object',
                      HINT = 'Sites are foreign servers (CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw) with user mappings.';
        END IF;
    END LOOP;
    d := @extschema@.cxr_model_digest(model); -- the caller's right to the model, before any work
    BEGIN
        FOR i IN 1 .. coalesce(array_length(servers, 1), 0) LOOP
            cur := servers[i];
            c := format('cxr_evaluate_%s_%s', pg_backend_pid(), i);
            EXECUTE format('SELECT %I.dblink_connect($1, $2)', dbl) USING c, cur;
            conns := conns || c;
            EXECUTE format('SELECT %I.dblink_send_query($1, $2)', dbl) USING c,
                format('SELECT q.label, cxr.covid_predict(q.image, %L::bytea) FROM (%s) q(image, label)', d, query);
        END LOOP;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            cur := servers[i];
            EXECUTE format('SELECT array_agg(t.label), array_agg(t.p) FROM %I.dblink_get_result($1) AS t(label boolean, p float8)', dbl)
                INTO labels, probs USING conns[i];
            e := (SELECT @extschema@.cxr_metrics(u.l, u.p) FROM unnest(labels, probs) u(l, p));
            IF e IS NULL THEN
                RAISE EXCEPTION 'the evaluation query returned no rows' USING ERRCODE = 'invalid_parameter_value';
            END IF;
            site := cur;
            n := e.n; accuracy := e.accuracy; sensitivity := e.sensitivity; specificity := e.specificity;
            "precision" := e."precision"; f1 := e.f1; roc_auc := e.roc_auc; true_positive := e.true_positive;
            false_positive := e.false_positive; true_negative := e.true_negative; false_negative := e.false_negative;
            RETURN NEXT;
            all_labels := all_labels || labels;
            all_probs := all_probs || probs;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            BEGIN -- closing a connection rolls its site's open transaction back
                EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
        END LOOP;
        IF st = '57014' THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'cxr_evaluate_sites: site "%": %', cur, msg USING ERRCODE = st;
    END;
    FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
        EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
    END LOOP;
    site := NULL;
    e := (SELECT @extschema@.cxr_metrics(u.l, u.p) FROM unnest(all_labels, all_probs) u(l, p));
    n := e.n; accuracy := e.accuracy; sensitivity := e.sensitivity; specificity := e.specificity;
    "precision" := e."precision"; f1 := e.f1; roc_auc := e.roc_auc; true_positive := e.true_positive;
    false_positive := e.false_positive; true_negative := e.true_negative; false_negative := e.false_negative;
    RETURN NEXT;
END $fn$;
COMMENT ON FUNCTION cxr_evaluate_sites(text, text[], text) IS
    'cxr_evaluate on every listed site at once (foreign servers, through dblink), each site scoring its own (image, label) rows: a row per site and a pooled row (site NULL); only labels and probabilities leave the sites';

