-- cxr_attn: chest X-ray COVID-19 screening with attention networks, in SQL.
\echo Use "CREATE EXTENSION cxr_attn" to load this file. \quit

-- ---------------------------------------------------------------- images
CREATE FUNCTION cxr_is_png(bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_is_png' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_is_png(bytea) IS 'true when the value starts with the PNG signature';

-- A column type for X-rays: PNG bytes, checked cheaply (signature only) on input.
CREATE DOMAIN cxr_image AS bytea CHECK (cxr_is_png(VALUE));

CREATE FUNCTION cxr_image_info(image bytea, OUT width int, OUT height int, OUT bit_depth int,
                               OUT color_type text, OUT channels int, OUT interlaced boolean)
    AS 'MODULE_PATHNAME', 'cxr_image_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- The decoded gray image, resized to size x size, values in [0, 1] (what the network sees
-- before normalisation).
CREATE FUNCTION cxr_image_gray(image bytea, size int DEFAULT 299) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_image_gray' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- ---------------------------------------------------------------- model registry
-- Model rows are immutable; names point at models through an append-only deployment log.
CREATE TABLE models (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    arch        text NOT NULL,
    metadata    jsonb NOT NULL,
    weights     bytea NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    owner       name NOT NULL DEFAULT current_user,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON models (name);

CREATE TABLE deployments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    model_id    bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    deployed_by name NOT NULL DEFAULT current_user,
    deployed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON deployments (name, id);

-- Training history of models made by cxr_train, one row per epoch.
CREATE TABLE training_history (
    model_id    bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    epoch       int NOT NULL,
    train_loss  double precision,
    train_accuracy double precision,
    val_loss    double precision,
    val_accuracy double precision,
    seconds     double precision,
    PRIMARY KEY (model_id, epoch)
);

-- The state of a cxr_train run after its last epoch (weights, Adam's moments, progress), kept
-- so that cxr_train(..., init_model => name, resume => true) continues the run exactly.
CREATE TABLE training_states (
    model_id    bigint PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,
    state       bytea NOT NULL
);

CREATE FUNCTION models_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'model rows are immutable: import a new model instead'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;
CREATE TRIGGER models_immutable BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION models_immutable();

-- Tells every backend's model cache that names or models changed (at commit).
CREATE FUNCTION cxr_registry_changed() RETURNS void
    AS 'MODULE_PATHNAME', 'cxr_registry_changed' LANGUAGE C VOLATILE;
CREATE FUNCTION registry_changed_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM @extschema@.cxr_registry_changed();
    RETURN NULL;
END $$;
CREATE TRIGGER deployments_changed AFTER INSERT OR UPDATE OR DELETE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed_trigger();
CREATE TRIGGER models_changed AFTER DELETE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed_trigger();

-- What each name points at now.
CREATE VIEW current_models AS
SELECT DISTINCT ON (d.name) d.name, d.model_id, m.arch, m.metadata, m.metrics, m.owner,
       m.created_at, d.deployed_by, d.deployed_at
FROM deployments d JOIN models m ON m.id = d.model_id
ORDER BY d.name, d.id DESC;

-- Parses and fully validates a safetensors model; returns its arch and metadata.
CREATE FUNCTION cxr_model_validate(weights bytea, OUT arch text, OUT metadata jsonb)
    AS 'MODULE_PATHNAME', 'cxr_model_validate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Who may write: row-level security on the registry. Anyone with the table privileges may add
-- models under a new name or a name whose models all belong to roles they are members of, and
-- only those owners may point the name elsewhere or drop it. Scoring needs only SELECT.
CREATE FUNCTION name_writable(model_name text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM @extschema@.models m
                       WHERE m.name = model_name AND NOT pg_has_role(current_user, m.owner, 'MEMBER'))
$$;
ALTER TABLE models ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_read ON models FOR SELECT USING (true);
CREATE POLICY models_insert ON models FOR INSERT
    WITH CHECK (owner = current_user AND @extschema@.name_writable(name));
CREATE POLICY models_delete ON models FOR DELETE USING (pg_has_role(current_user, owner, 'MEMBER'));
CREATE POLICY deployments_read ON deployments FOR SELECT USING (true);
CREATE POLICY deployments_insert ON deployments FOR INSERT
    WITH CHECK (deployed_by = current_user AND @extschema@.name_writable(name));
CREATE POLICY deployments_delete ON deployments FOR DELETE USING (@extschema@.name_writable(name));
ALTER TABLE training_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_states_read ON training_states FOR SELECT USING (true);
CREATE POLICY training_states_insert ON training_states FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM @extschema@.models m WHERE m.id = model_id
                        AND pg_has_role(current_user, m.owner, 'MEMBER')));

-- Stores a new immutable model row and (by default) points the name at it.
CREATE FUNCTION cxr_model_import(name text, weights bytea, deploy boolean DEFAULT true,
                                 metrics jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
    new_id bigint;
BEGIN
    IF name IS NULL OR weights IS NULL OR length(name) = 0 THEN
        RAISE EXCEPTION 'model name and weights must not be null or empty'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT @extschema@.name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    v := @extschema@.cxr_model_validate(weights);
    INSERT INTO @extschema@.models (name, arch, metadata, weights, metrics, owner)
    VALUES (name, v.arch, v.metadata, weights, coalesce(metrics, '{}'), current_user)
    RETURNING id INTO new_id;
    IF deploy THEN
        INSERT INTO @extschema@.deployments (name, model_id, deployed_by)
        VALUES (name, new_id, current_user);
    END IF;
    RETURN new_id;
END $$;

-- Points a name at an existing model row (a rollback, or promoting a candidate).
CREATE FUNCTION cxr_model_deploy(name text, model_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT @extschema@.name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @extschema@.models m WHERE m.id = model_id) THEN
        RAISE EXCEPTION 'model % does not exist', model_id USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO @extschema@.deployments (name, model_id, deployed_by)
    VALUES (name, model_id, current_user);
END $$;

-- Drops every model row stored under a name, with its deployments and history.
CREATE FUNCTION cxr_model_drop(name text) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    IF NOT @extschema@.name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM @extschema@.deployments d WHERE d.name = cxr_model_drop.name;
    DELETE FROM @extschema@.models m WHERE m.name = cxr_model_drop.name;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN
        RAISE EXCEPTION 'model "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    RETURN n;
END $$;

CREATE FUNCTION cxr_model_export(name text) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT m.weights FROM @extschema@.current_models c JOIN @extschema@.models m ON m.id = c.model_id
    WHERE c.name = cxr_model_export.name
$$;
CREATE FUNCTION cxr_model_export(model_id bigint) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE AS $$
    SELECT m.weights FROM @extschema@.models m WHERE m.id = cxr_model_export.model_id
$$;

CREATE VIEW model_list AS
SELECT m.id, m.name, m.arch, m.metadata ->> 'attention_score' AS attention_score, m.metrics,
       m.owner, m.created_at, length(m.weights) AS bytes,
       EXISTS (SELECT 1 FROM current_models c WHERE c.model_id = m.id) AS deployed,
       EXISTS (SELECT 1 FROM training_states s WHERE s.model_id = m.id) AS resumable
FROM models m ORDER BY m.id;

-- ---------------------------------------------------------------- scoring
CREATE FUNCTION covid_predict(image bytea, model text DEFAULT 'default') RETURNS double precision
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
-- Model rows never change, so scoring by id is immutable: usable in indexes and generated
-- columns, and safe to push to remote servers.
CREATE FUNCTION covid_predict(image bytea, model_id bigint) RETURNS double precision
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION attention_map(image bytea, layer int, model text DEFAULT 'default') RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_attention_map_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION attention_map(image bytea, layer int, model_id bigint) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_attention_map_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION attention_overlay(image bytea, layer int, model text DEFAULT 'default') RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_overlay_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION attention_overlay(image bytea, layer int, model_id bigint) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_overlay_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- Which kernels this backend runs (BLAS library, core type, self-test).
CREATE FUNCTION cxr_kernels() RETURNS text
    AS 'MODULE_PATHNAME', 'cxr_kernels' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;

-- ---------------------------------------------------------------- training and evaluation
CREATE FUNCTION cxr_train(name text, training_query text, arch text DEFAULT 'alexnet_attn2',
                          validation_query text DEFAULT NULL, epochs int DEFAULT 10,
                          batch_size int DEFAULT 64, learning_rate float8 DEFAULT 1e-4,
                          augment boolean DEFAULT true, seed int DEFAULT 1,
                          deploy boolean DEFAULT true, init_model text DEFAULT NULL,
                          attention_score text DEFAULT 'scaled_dot', resume boolean DEFAULT false,
                          OUT epoch int, OUT train_loss float8, OUT train_accuracy float8,
                          OUT val_loss float8, OUT val_accuracy float8, OUT seconds float8)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'cxr_train' LANGUAGE C VOLATILE;

CREATE FUNCTION cxr_evaluate(model text, query text,
                             OUT n bigint, OUT accuracy float8, OUT sensitivity float8,
                             OUT specificity float8, OUT "precision" float8, OUT f1 float8,
                             OUT roc_auc float8, OUT true_positive bigint, OUT false_positive bigint,
                             OUT true_negative bigint, OUT false_negative bigint)
    AS 'MODULE_PATHNAME', 'cxr_evaluate' LANGUAGE C VOLATILE STRICT;

-- Stores a model row for cxr_train (validated like an import) with its history and the run's
-- state; a resumed run's history starts with the rows of the model it resumed.
CREATE FUNCTION cxr_store_trained(name text, weights bytea, deploy boolean, metrics jsonb,
                                  history jsonb, state bytea, resumed_from bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    new_id := @extschema@.cxr_model_import(name, weights, deploy, metrics);
    INSERT INTO @extschema@.training_history
    SELECT new_id, h.epoch, h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy, h.seconds
    FROM @extschema@.training_history h WHERE h.model_id = resumed_from;
    INSERT INTO @extschema@.training_states VALUES (new_id, state);
    INSERT INTO @extschema@.training_history
    SELECT new_id, (h ->> 'epoch')::int, (h ->> 'train_loss')::float8,
           (h ->> 'train_accuracy')::float8, (h ->> 'val_loss')::float8,
           (h ->> 'val_accuracy')::float8, (h ->> 'seconds')::float8
    FROM jsonb_array_elements(history) h;
    RETURN new_id;
END $$;

-- ---------------------------------------------------------------- privileges
-- Nothing is readable or writable by default. To let a role score with the registered models:
--   GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO scorer;
-- and to let it import, train, deploy and drop its own models, additionally:
--   GRANT INSERT, DELETE ON cxr.models, cxr.deployments TO modeler;
--   GRANT INSERT ON cxr.training_history, cxr.training_states TO modeler;
-- (and SELECT on cxr.training_history, cxr.training_states to resume runs).
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
REVOKE ALL ON models, deployments, training_history, training_states, current_models, model_list
    FROM PUBLIC;

-- ---------------------------------------------------------------- the shipped default model
CREATE FUNCTION cxr_shipped_default() RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_shipped_default' LANGUAGE C VOLATILE;
REVOKE ALL ON FUNCTION cxr_shipped_default() FROM PUBLIC;
-- Registered as "default" when this build ships one (weights/MODEL_CARD.md describes it).
DO $$
DECLARE
    w bytea := @extschema@.cxr_shipped_default();
BEGIN
    IF w IS NOT NULL THEN
        PERFORM @extschema@.cxr_model_import('default', w, true,
            '{"shipped": true, "model_card": "weights/MODEL_CARD.md"}');
    END IF;
END $$;

-- ---------------------------------------------------------------- pg_dump
-- Users' models, deployments and histories are data, not part of the extension: dump them (the
-- shipped default is re-registered by CREATE EXTENSION on restore, so it is left out).
SELECT pg_catalog.pg_extension_config_dump('models',
    $$WHERE NOT coalesce((metrics ->> 'shipped')::boolean, false)$$);
SELECT pg_catalog.pg_extension_config_dump('deployments',
    $$WHERE model_id NOT IN (SELECT id FROM cxr.models WHERE coalesce((metrics ->> 'shipped')::boolean, false))$$);
SELECT pg_catalog.pg_extension_config_dump('training_history', '');
SELECT pg_catalog.pg_extension_config_dump('training_states', '');
SELECT pg_catalog.pg_extension_config_dump('models_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('deployments_id_seq', '');
