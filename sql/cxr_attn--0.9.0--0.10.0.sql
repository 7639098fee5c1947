-- cxr_attn 0.9.0 -> 0.10.0: scoring started on each site through dblink (cxr_score_sites), so
-- that a site lost mid-query is an ERROR naming it; cxr_model_name_writable; cxr_train_federated
-- checks every right it needs to store its model (the name's owner included) before any site
-- works.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.10.0'" to load this file. \quit

-- Scoring started on each site (0.10.0): every site runs the query (rows of key, image) and
-- scores its rows with the model's digest, all sites at once, in chunks of fetch_size rows
-- through a cursor (what the coordinator holds is bounded by a chunk per site); only keys and
-- probabilities come back. Unlike a scan of foreign partitions, a site lost at any point, even
-- after its last row, is an ERROR naming it; the query is chosen by the caller.
CREATE FUNCTION cxr_score_sites(model text, servers text[], query text, fetch_size int DEFAULT 100,
                                OUT site text, OUT key text, OUT probability float8)
    RETURNS SETOF record LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    dbl text;
    d bytea;
    conns text[] := '{}';
    live boolean[] := '{}';
    scored bigint[] := '{}';
    c text;
    cur text;
    keys text[];
    probs float8[];
    busy int;
    left_sites int;
    reported timestamptz := clock_timestamp();
    msg text;
    st text;
BEGIN
    IF fetch_size < 1 OR fetch_size > 100000 THEN
        RAISE EXCEPTION 'fetch_size must be between 1 and 100000 rows' USING ERRCODE = 'invalid_parameter_value';
    END IF;
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
    IF d IS NULL THEN
        RAISE EXCEPTION 'model "%" does not exist', model USING ERRCODE = 'undefined_object';
    END IF;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(servers, 1), 0) LOOP
            cur := servers[i];
            c := format('cxr_score_%s_%s', pg_backend_pid(), i);
            EXECUTE format('SELECT %I.dblink_connect($1, $2)', dbl) USING c, cur;
            conns := conns || c;
            live := live || true;
            scored := scored || 0::bigint;
            EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING c, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
            EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING c,
                format('DECLARE cxr_scores NO SCROLL CURSOR FOR SELECT q.key::text, cxr.covid_predict(q.image, %L::bytea) '
                       'FROM (%s) q(key, image)', d, query);
            EXECUTE format('SELECT %I.dblink_send_query($1, $2)', dbl) USING c, format('FETCH %s FROM cxr_scores', fetch_size);
        END LOOP;
        left_sites := coalesce(array_length(conns, 1), 0);
        WHILE left_sites > 0 LOOP
            FOR i IN 1 .. array_length(conns, 1) LOOP
                CONTINUE WHEN NOT live[i];
                cur := servers[i];
                -- wait where a cancel can reach us (dblink's own wait cannot be interrupted)
                LOOP
                    EXECUTE format('SELECT %I.dblink_is_busy($1)', dbl) INTO busy USING conns[i];
                    EXIT WHEN busy = 0;
                    PERFORM pg_sleep(0.02);
                END LOOP;
                EXECUTE format('SELECT array_agg(t.k), array_agg(t.p) FROM %I.dblink_get_result($1) AS t(k text, p float8)', dbl)
                    INTO keys, probs USING conns[i];
                -- the empty result that ends an asynchronous query frees the connection
                EXECUTE format('SELECT count(*) FROM %I.dblink_get_result($1) AS t(k text, p float8)', dbl) USING conns[i];
                IF coalesce(array_length(keys, 1), 0) = fetch_size THEN
                    -- the site works on its next chunk while this one is returned
                    EXECUTE format('SELECT %I.dblink_send_query($1, $2)', dbl) USING conns[i], format('FETCH %s FROM cxr_scores', fetch_size);
                ELSE
                    EXECUTE format('SELECT %I.dblink_exec($1, $2)', dbl) USING conns[i], 'ROLLBACK';
                    EXECUTE format('SELECT %I.dblink_disconnect($1)', dbl) USING conns[i];
                    live[i] := false;
                    left_sites := left_sites - 1;
                END IF;
                scored[i] := scored[i] + coalesce(array_length(keys, 1), 0);
                RETURN QUERY SELECT cur, u.k, u.p FROM unnest(keys, probs) u(k, p);
                IF NOT live[i] OR clock_timestamp() - reported > interval '10 seconds' THEN
                    RAISE NOTICE 'cxr_score_sites: % rows scored (%)%', (SELECT sum(s) FROM unnest(scored) s),
                        (SELECT string_agg(format('%s %s%s', servers[j], scored[j], CASE WHEN live[j] THEN '' ELSE ' done' END), ', ')
                         FROM generate_subscripts(conns, 1) j),
                        CASE WHEN left_sites = 0 THEN ', all sites done' ELSE '' END;
                    reported := clock_timestamp();
                END IF;
            END LOOP;
        END LOOP;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, st = RETURNED_SQLSTATE;
        FOR i IN 1 .. coalesce(array_length(conns, 1), 0) LOOP
            CONTINUE WHEN NOT live[i];
            BEGIN -- stop the site's work, then close: its open transaction rolls back
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
        RAISE EXCEPTION 'cxr_score_sites: site "%": %', cur, msg USING ERRCODE = st;
    END;
END $fn$;
COMMENT ON FUNCTION cxr_score_sites(text, text[], text, int) IS
    'scores on every listed site at once (foreign servers, through dblink) the (key, image) rows of query, with the model''s digest: rows of (site, key, probability); images stay at the sites, and a site lost mid-query is an ERROR naming it';

-- Whether the caller may store a model under a name: what the registry's row security decides
-- when it is stored, asked before long work such as cxr_train_federated starts.
CREATE FUNCTION cxr_model_name_writable(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_model_name_writable' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_name_writable(text) IS
    'true when the current role may store a model under the name (it is new, or belongs only to roles the current role is a member of)';

-- the name's owner and every table privilege are checked before any site works
CREATE OR REPLACE FUNCTION cxr_train_federated(name text, servers text[], training_query text,
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
    IF NOT has_table_privilege('@extschema@.models', 'INSERT')
       OR NOT has_table_privilege('@extschema@.training_history', 'INSERT')
       OR (deploy AND NOT has_table_privilege('@extschema@.deployments', 'INSERT')) THEN
        RAISE EXCEPTION 'permission denied to store a model'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'cxr_train_federated stores a model row and its history (and a deployment unless deploy => false).';
    END IF;
    IF NOT @extschema@.cxr_model_name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A name belongs to the roles that own its models and the roles that deployed it; choose another name.';
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
