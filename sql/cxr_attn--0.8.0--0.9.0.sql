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
    busy int;
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
            -- wait where a cancel can reach us (dblink's own wait cannot be interrupted)
            WHILE busy <> 0 OR busy IS NULL LOOP
                EXECUTE format('SELECT %I.dblink_is_busy($1)', dbl) INTO busy USING conns[i];
                IF busy <> 0 THEN
                    PERFORM pg_sleep(0.05);
                END IF;
            END LOOP;
            busy := NULL;
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
            BEGIN -- stop the site's work, then close the connection
                EXECUTE format('SELECT %I.dblink_cancel_query($1)', dbl) USING conns[i];
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            BEGIN
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

-- The federated average of models of one architecture, weighted by sample counts (each
-- parameter, BatchNorm statistics included): what a round of cxr_train_federated stores.
CREATE FUNCTION cxr_model_average(weights bytea[], sample_counts float8[]) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_model_average_sql' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_average(bytea[], float8[]) IS
    'the weighted mean, parameter by parameter, of models of one architecture (federated averaging by sample counts)';

-- Federated training (FedAvg): in each round every site trains from the current global weights
-- on its own rows of training_query (local_epochs epochs, in a remote transaction that is then
-- rolled back, so no site keeps anything), all sites at once; the coordinator averages the
-- sites' weights by their image counts. The final global model is stored here under name with
-- one history row per round (epoch = round; losses and accuracies weighted by images). Round r
-- trains with seed + r - 1; round 1 starts every site from the same fresh weights (seed), or
-- from init_model; with resume, rounds continue init_model's history, so 2 rounds and then 2
-- resumed rounds give the model 4 rounds give. Only weights and figures cross the network.
CREATE FUNCTION cxr_train_federated(name text, servers text[], training_query text,
                                    rounds int DEFAULT 5, arch text DEFAULT 'alexnet_attn2',
                                    local_epochs int DEFAULT 1, batch_size int DEFAULT 64,
                                    learning_rate float8 DEFAULT 1e-4, augment boolean DEFAULT true,
                                    seed int DEFAULT 1, deploy boolean DEFAULT true,
                                    init_model text DEFAULT NULL,
                                    attention_score text DEFAULT 'scaled_dot',
                                    resume boolean DEFAULT false,
                                    OUT model_id bigint, OUT round int, OUT site text,
                                    OUT images bigint, OUT train_loss float8,
                                    OUT train_accuracy float8, OUT seconds float8)
    RETURNS SETOF record LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    dbl text;
    conns text[] := '{}';
    c text;
    cur text;
    global bytea;
    first_round int := 1;
    tmp text := format('cxr_federated_%s', pg_backend_pid());
    sum_w bytea;
    cnt float8[];
    loss float8[];
    acc float8[];
    rw bytea;
    rn bigint;
    rl float8;
    ra float8;
    t0 timestamptz;
    hist jsonb := '[]';
    out_rows jsonb := '[]';
    msg text;
    st text;
BEGIN
    IF name IS NULL OR servers IS NULL OR training_query IS NULL OR rounds IS NULL OR rounds < 1
       OR local_epochs IS NULL OR local_epochs < 1 OR array_length(servers, 1) IS NULL THEN
        RAISE EXCEPTION 'cxr_train_federated needs a name, at least one server, a training query, rounds >= 1 and local_epochs >= 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF resume AND init_model IS NULL THEN
        RAISE EXCEPTION 'resume continues init_model''s rounds: name it' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT ns.nspname INTO dbl FROM pg_extension x JOIN pg_namespace ns ON ns.oid = x.extnamespace
    WHERE x.extname = 'dblink';
    IF dbl IS NULL THEN
        RAISE EXCEPTION 'work on several sites needs the dblink extension'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'CREATE EXTENSION dblink;';
    END IF;
    -- sites are foreign servers; dblink reaches them by name through their user mappings
    FOR i IN 1 .. array_length(servers, 1) LOOP
        IF servers[i] IS NULL OR NOT EXISTS (SELECT 1 FROM pg_foreign_server s WHERE s.srvname = servers[i]) THEN
            RAISE EXCEPTION 'foreign server "%" does not exist', servers[i]
                USING ERRCODE = 'undefined_object',
                      HINT = 'Sites are foreign servers (CREATE SERVER ... FOREIGN DATA WRAPPER postgres_fdw) with user mappings.';
        END IF;
    END LOOP;
    -- the caller's rights here, before any site works: reading init_model, and storing name
    IF init_model IS NOT NULL THEN
        global := @extschema@.cxr_model_export(init_model);
        IF resume THEN
            SELECT coalesce(max(h.epoch), 0) + 1, coalesce(jsonb_agg(to_jsonb(h) - 'model_id' ORDER BY h.epoch), '[]')
            INTO first_round, hist
            FROM @extschema@.training_history h WHERE h.model_id = @extschema@.cxr_model_id(init_model);
        END IF;
    END IF;
    IF NOT has_table_privilege('@extschema@.models', 'INSERT') THEN
        RAISE EXCEPTION 'permission denied to store a model' USING ERRCODE = 'insufficient_privilege';
    END IF;
    BEGIN
        FOR i IN 1 .. array_length(servers, 1) LOOP
            cur := servers[i];
            c := format('cxr_federated_%s_%s', pg_backend_pid(), i);
            EXECUTE format('SELECT %I.dblink_connect($1, $2)', dbl) USING c, cur;
            conns := conns || c;
        END LOOP;
        FOR r IN first_round .. first_round + rounds - 1 LOOP
            t0 := clock_timestamp();
            sum_w := NULL; cnt := '{}'; loss := '{}'; acc := '{}';
            FOR i IN 1 .. array_length(conns, 1) LOOP
                cur := servers[i];
                EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING conns[i], 'BEGIN';
                IF global IS NOT NULL THEN
                    EXECUTE format('SELECT t.id FROM %I.dblink($1, $2) AS t(id bigint)', dbl) INTO rn USING conns[i],
                        format('SELECT cxr.cxr_model_import(%L, %L::bytea)', tmp || '_global', global);
                END IF;
                EXECUTE format('SELECT %I.dblink_send_query($1, $2)', dbl) USING conns[i], format(
                    'SELECT t.model_id, t.train_loss, t.train_accuracy '
                    'FROM cxr.cxr_train(%L, %L, arch => %L, epochs => %s, batch_size => %s, '
                    'learning_rate => %s, augment => %L, seed => %s, init_model => %L, attention_score => %L) t '
                    'ORDER BY t.epoch DESC LIMIT 1',
                    tmp, training_query, arch, local_epochs, batch_size, learning_rate, augment,
                    seed + r - 1, CASE WHEN global IS NULL THEN NULL ELSE tmp || '_global' END, attention_score);
            END LOOP;
            FOR i IN 1 .. array_length(conns, 1) LOOP
                cur := servers[i];
                -- wait where a cancel can reach us (dblink's own wait cannot be interrupted)
                LOOP
                    EXECUTE format('SELECT %I.dblink_is_busy($1)', dbl) INTO rn USING conns[i];
                    EXIT WHEN rn = 0;
                    PERFORM pg_sleep(0.05);
                END LOOP;
                EXECUTE format('SELECT t.id, t.l, t.a FROM %I.dblink_get_result($1) AS t(id bigint, l float8, a float8)', dbl)
                    INTO rn, rl, ra USING conns[i];
                -- the empty result that ends an asynchronous query frees the connection
                EXECUTE format('SELECT count(*) FROM %I.dblink_get_result($1) AS t(id bigint, l float8, a float8)', dbl)
                    USING conns[i];
                -- the trained row, seen by a statement after the one that stored it
                EXECUTE format('SELECT t.w, t.n FROM %I.dblink($1, $2) AS t(w bytea, n bigint)', dbl) INTO rw, rn
                    USING conns[i], format('SELECT weights, (metrics ->> ''train_images'')::bigint FROM cxr.models WHERE id = %s', rn);
                EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING conns[i], 'ROLLBACK';
                RAISE NOTICE 'cxr_train_federated: round % of %, site "%": % images, train loss %, accuracy %',
                    r, first_round + rounds - 1, cur, rn, round(rl::numeric, 4), round(ra::numeric, 4);
                -- a running weighted mean: at most two models in memory, whatever the sites
                sum_w := CASE WHEN sum_w IS NULL THEN rw ELSE @extschema@.cxr_model_average(
                             ARRAY[sum_w, rw], ARRAY[(SELECT sum(n) FROM unnest(cnt) n), rn::float8]) END;
                cnt := cnt || rn::float8; loss := loss || rl; acc := acc || ra;
                out_rows := out_rows || jsonb_build_object('round', r, 'site', cur, 'images', rn,
                                                           'train_loss', rl, 'train_accuracy', ra);
            END LOOP;
            cur := NULL;
            global := sum_w;
            SELECT sum(l * n) / sum(n), sum(a * n) / sum(n) INTO rl, ra FROM unnest(loss, acc, cnt) u(l, a, n);
            hist := hist || jsonb_build_object('epoch', r, 'train_loss', rl, 'train_accuracy', ra,
                                               'seconds', extract(epoch FROM clock_timestamp() - t0));
            out_rows := out_rows || jsonb_build_object('round', r, 'site', NULL, 'images', (SELECT sum(n) FROM unnest(cnt) n),
                                                       'train_loss', rl, 'train_accuracy', ra,
                                                       'seconds', extract(epoch FROM clock_timestamp() - t0));
            RAISE NOTICE 'cxr_train_federated: round % of % averaged over % sites: train loss %',
                r, first_round + rounds - 1, array_length(conns, 1), round(rl::numeric, 4);
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            BEGIN -- stop the site's work, then close: its open transaction rolls back
                EXECUTE format('SELECT %I.dblink_cancel_query($1)', dbl) USING conns[i];
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
            BEGIN
                EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
            EXCEPTION WHEN OTHERS THEN NULL;
            END;
        END LOOP;
        IF st = '57014' OR cur IS NULL THEN
            RAISE;
        END IF;
        RAISE EXCEPTION 'cxr_train_federated: site "%": %', cur, msg USING ERRCODE = st,
            DETAIL = 'Nothing was stored: every site''s round was rolled back.';
    END;
    FOR i IN 1 .. array_length(conns, 1) LOOP
        EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
    END LOOP;
    model_id := @extschema@.cxr_model_import(name, global, deploy, jsonb_build_object(
        'trained_by', 'cxr_train_federated', 'sites', to_jsonb(servers), 'rounds', first_round + rounds - 1,
        'local_epochs', local_epochs, 'batch_size', batch_size, 'learning_rate', learning_rate,
        'seed', seed, 'train_images', (SELECT sum(n) FROM unnest(cnt) n)));
    INSERT INTO @extschema@.training_history (model_id, epoch, train_loss, train_accuracy, seconds)
    SELECT cxr_train_federated.model_id, (h ->> 'epoch')::int, (h ->> 'train_loss')::float8,
           (h ->> 'train_accuracy')::float8, (h ->> 'seconds')::float8
    FROM jsonb_array_elements(hist) h;
    FOR i IN 0 .. jsonb_array_length(out_rows) - 1 LOOP
        round := (out_rows -> i ->> 'round')::int;
        site := out_rows -> i ->> 'site';
        images := (out_rows -> i ->> 'images')::bigint;
        train_loss := (out_rows -> i ->> 'train_loss')::float8;
        train_accuracy := (out_rows -> i ->> 'train_accuracy')::float8;
        seconds := (out_rows -> i ->> 'seconds')::float8;
        RETURN NEXT;
    END LOOP;
END $fn$;
COMMENT ON FUNCTION cxr_train_federated(text, text[], text, int, text, int, int, float8, boolean, int, boolean, text, text, boolean) IS
    'federated averaging over sites (foreign servers, through dblink): each round every site trains from the global weights on its own rows, nothing is kept at the sites, and the coordinator stores the average under name with a history row per round';
