-- cxr_attn 0.2.0 -> 0.3.0: the registry is safe whatever the caller's search_path; owners are
-- role ids; names that live only in deployments are owned too; training histories have row
-- security; every stored model is validated; the cache-flushing and storing functions are no
-- longer PUBLIC; every object has a comment.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.3.0'" to load this file. \quit

COMMENT ON SCHEMA @extschema@ IS 'cxr_attn: chest X-ray COVID-19 screening in SQL';

-- Policies and views read the owner columns, whose type changes: drop them first, keeping the
-- views' grants to restore them.
DROP POLICY models_read ON models;
DROP POLICY models_insert ON models;
DROP POLICY models_delete ON models;
DROP POLICY deployments_read ON deployments;
DROP POLICY deployments_insert ON deployments;
DROP POLICY deployments_delete ON deployments;
DROP POLICY training_states_read ON training_states;
DROP POLICY training_states_insert ON training_states;
CREATE TEMPORARY TABLE cxr_view_grants AS
SELECT c.relname, a.privilege_type, g.rolname, a.is_grantable
FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = a.grantee
WHERE c.relnamespace = '@extschema@'::regnamespace AND c.relname IN ('current_models', 'model_list')
  AND a.grantee <> c.relowner;
DROP VIEW model_list;
DROP VIEW current_models;
-- cxr_train stores its rows itself now, with the caller's rights
DROP FUNCTION cxr_store_trained(text, bytea, boolean, jsonb, jsonb, bytea, bigint);

CREATE FUNCTION cxr_current_role() RETURNS regrole
    AS 'MODULE_PATHNAME', 'cxr_current_role' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_current_role() IS
    'the id of current_user, as stored in cxr.models.owner and cxr.deployments.deployed_by';

CREATE FUNCTION cxr_in_extension_script() RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_in_extension_script' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_in_extension_script() IS
    'true while the cxr_attn extension script itself runs (the only writer of shipped models)';

-- Owners become role ids. A row whose owner role no longer exists (dropped under 0.2.0) gets
-- role id 0, shown as "-": only superusers may change such names.
ALTER TABLE models ALTER COLUMN owner DROP DEFAULT,
    ALTER COLUMN owner TYPE regrole USING coalesce(to_regrole(quote_ident(owner)), '-'::regrole),
    ALTER COLUMN owner SET DEFAULT cxr_current_role();
ALTER TABLE deployments ALTER COLUMN deployed_by DROP DEFAULT,
    ALTER COLUMN deployed_by TYPE regrole
        USING coalesce(to_regrole(quote_ident(deployed_by)), '-'::regrole),
    ALTER COLUMN deployed_by SET DEFAULT cxr_current_role();
COMMENT ON TABLE models IS
    'registered models: immutable rows of validated safetensors weights, owned by a role id';
COMMENT ON TABLE deployments IS
    'append-only log of which model each name points at; the newest row of a name wins';
COMMENT ON TABLE training_history IS 'per-epoch losses and accuracies of models made by cxr_train';
COMMENT ON TABLE training_states IS
    'the resumable state (weights, Adam moments, progress) of each cxr_train run after its last epoch';

CREATE OR REPLACE FUNCTION models_immutable() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'model rows are immutable: import a new model instead'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;
COMMENT ON FUNCTION models_immutable() IS 'trigger: refuses UPDATE of cxr.models';

CREATE OR REPLACE FUNCTION cxr_model_validate(weights bytea, OUT arch text, OUT metadata jsonb)
    AS 'MODULE_PATHNAME', 'cxr_model_validate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_validate(bytea) IS
    'parses and fully validates a safetensors model file; returns its architecture and metadata';

-- Every path that stores a model goes through this check: import, cxr_train, a direct INSERT
-- and a restore from pg_dump. The file must load; arch and metadata are what the file says; only
-- the extension's own script may mark a model as shipped (pg_dump leaves shipped models out).
CREATE FUNCTION models_validate() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v record;
BEGIN
    -- the rights the row-security policy checks, first: a file is parsed only for a caller
    -- who may store it (roles that bypass row security, such as a restore, skip this)
    IF row_security_active('@extschema@.models') AND
       (NEW.owner IS DISTINCT FROM @extschema@.cxr_current_role()
        OR NOT @extschema@.name_writable(NEW.name)) THEN
        RAISE EXCEPTION 'new row violates row-level security policy for table "models"'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'A role stores models under its own id, in names it owns.';
    END IF;
    IF NEW.weights IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint says so
    END IF;
    v := @extschema@.cxr_model_validate(NEW.weights);
    IF NEW.arch IS NOT NULL AND NEW.arch IS DISTINCT FROM v.arch THEN
        RAISE EXCEPTION 'arch "%" does not match the model file (%)', NEW.arch, v.arch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    NEW.arch := v.arch;
    NEW.metadata := v.metadata;
    IF NEW.metrics ? 'shipped' AND NOT @extschema@.cxr_in_extension_script() THEN
        RAISE EXCEPTION 'the metrics key "shipped" is reserved for the model shipped with cxr_attn'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION models_validate() IS
    'trigger: validates every stored model file and derives arch and metadata from it';
CREATE TRIGGER models_validate BEFORE INSERT ON models
    FOR EACH ROW EXECUTE FUNCTION models_validate();

-- Storing the shipped mark was possible for anyone before (through cxr_train's init_model name,
-- or import's metrics), and pg_dump leaves shipped rows out: only the extension's own rows keep
-- it. Rows are otherwise immutable.
ALTER TABLE models DISABLE TRIGGER models_immutable;
UPDATE models SET metrics = metrics - 'shipped'
WHERE metrics ? 'shipped'
  AND metrics <> '{"shipped": true, "model_card": "weights/MODEL_CARD.md"}'::jsonb;
ALTER TABLE models ENABLE TRIGGER models_immutable;

CREATE OR REPLACE FUNCTION cxr_registry_changed() RETURNS void
    AS 'MODULE_PATHNAME', 'cxr_registry_changed' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION cxr_registry_changed() IS
    'invalidates every backend''s model cache (the registry triggers do this on every change)';
REVOKE ALL ON FUNCTION cxr_registry_changed() FROM PUBLIC;
CREATE OR REPLACE FUNCTION registry_changed_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'cxr_registry_changed_trigger' LANGUAGE C;
COMMENT ON FUNCTION registry_changed_trigger() IS
    'trigger: invalidates every backend''s model cache after a deployment or a dropped model';

-- What each name points at now.
CREATE VIEW current_models AS
SELECT DISTINCT ON (d.name) d.name, d.model_id, m.arch, m.metadata, m.metrics, m.owner,
       m.created_at, d.deployed_by, d.deployed_at
FROM deployments d JOIN models m ON m.id = d.model_id
ORDER BY d.name, d.id DESC;
COMMENT ON VIEW current_models IS 'the model each deployed name points at now';

-- Who may write: row-level security on the registry. A name belongs to the roles that own its
-- model rows and the roles that deployed it. Anyone with the table privileges may claim a new
-- name, or add to a name all of whose owners and deployers are roles they are members of; only
-- those roles may point the name elsewhere or drop it. Scoring needs only SELECT.
CREATE OR REPLACE FUNCTION name_writable(model_name text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NOT EXISTS (SELECT 1 FROM @extschema@.models m
                       WHERE m.name = model_name AND NOT pg_has_role(m.owner, 'MEMBER'))
       AND NOT EXISTS (SELECT 1 FROM @extschema@.deployments d
                       WHERE d.name = model_name AND NOT pg_has_role(d.deployed_by, 'MEMBER'))
$$;
COMMENT ON FUNCTION name_writable(text) IS
    'true when the current role may add to, repoint or drop the model name';
-- true when the current role is a member of the role that owns model model_id
CREATE FUNCTION model_writable(model_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM @extschema@.models m
                   WHERE m.id = model_id AND pg_has_role(m.owner, 'MEMBER'))
$$;
COMMENT ON FUNCTION model_writable(bigint) IS
    'true when the current role is a member of the role owning the model row';
CREATE POLICY models_read ON models FOR SELECT USING (true);
CREATE POLICY models_insert ON models FOR INSERT
    WITH CHECK (owner = @extschema@.cxr_current_role() AND @extschema@.name_writable(name));
CREATE POLICY models_delete ON models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY deployments_read ON deployments FOR SELECT USING (true);
CREATE POLICY deployments_insert ON deployments FOR INSERT
    WITH CHECK (deployed_by = @extschema@.cxr_current_role() AND @extschema@.name_writable(name));
CREATE POLICY deployments_delete ON deployments FOR DELETE USING (@extschema@.name_writable(name));
CREATE POLICY training_states_read ON training_states FOR SELECT USING (true);
CREATE POLICY training_states_insert ON training_states FOR INSERT
    WITH CHECK (@extschema@.model_writable(model_id));
ALTER TABLE training_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_history_read ON training_history FOR SELECT USING (true);
CREATE POLICY training_history_insert ON training_history FOR INSERT
    WITH CHECK (@extschema@.model_writable(model_id));

CREATE OR REPLACE FUNCTION cxr_model_import(name text, weights bytea, deploy boolean DEFAULT true,
                                 metrics jsonb DEFAULT '{}') RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
    old_id bigint;
BEGIN
    IF name IS NULL OR weights IS NULL OR length(name) = 0 THEN
        RAISE EXCEPTION 'model name and weights must not be null or empty'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- rights first: nothing is parsed for a caller who may not store it
    IF NOT has_table_privilege('@extschema@.models', 'INSERT')
       OR (deploy AND NOT has_table_privilege('@extschema@.deployments', 'INSERT')) THEN
        RAISE EXCEPTION 'permission denied to store models in the cxr_attn registry'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Storing needs INSERT on cxr.models (and cxr.deployments to deploy).';
    END IF;
    IF NOT @extschema@.name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- the models_validate trigger parses the file and fills arch and metadata
    INSERT INTO @extschema@.models (name, arch, metadata, weights, metrics, owner)
    VALUES (name, NULL, NULL, weights, coalesce(metrics, '{}'), @extschema@.cxr_current_role())
    RETURNING id INTO new_id;
    IF deploy THEN
        SELECT d.model_id INTO old_id FROM @extschema@.deployments d
        WHERE d.name = cxr_model_import.name ORDER BY d.id DESC LIMIT 1;
        INSERT INTO @extschema@.deployments (name, model_id, deployed_by)
        VALUES (name, new_id, @extschema@.cxr_current_role());
        IF old_id IS NOT NULL THEN
            -- the whole database scores with this name: say that it moved
            RAISE NOTICE 'model name "%" now points at model % (was model %)', name, new_id, old_id;
        END IF;
    END IF;
    RETURN new_id;
END $$;
COMMENT ON FUNCTION cxr_model_import(text, bytea, boolean, jsonb) IS
    'validates and stores a safetensors model under a name; with deploy, points the name at it';

CREATE OR REPLACE FUNCTION cxr_model_deploy(name text, model_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_id bigint;
BEGIN
    IF NOT @extschema@.name_writable(name) THEN
        RAISE EXCEPTION 'model name "%" belongs to another role', name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM @extschema@.models m WHERE m.id = model_id) THEN
        RAISE EXCEPTION 'model % does not exist', model_id USING ERRCODE = 'undefined_object';
    END IF;
    SELECT d.model_id INTO old_id FROM @extschema@.deployments d
    WHERE d.name = cxr_model_deploy.name ORDER BY d.id DESC LIMIT 1;
    INSERT INTO @extschema@.deployments (name, model_id, deployed_by)
    VALUES (name, model_id, @extschema@.cxr_current_role());
    IF old_id IS DISTINCT FROM model_id THEN
        RAISE NOTICE 'model name "%" now points at model % (was %)', name, model_id,
            coalesce('model ' || old_id, 'nothing');
    END IF;
END $$;
COMMENT ON FUNCTION cxr_model_deploy(text, bigint) IS
    'points a model name at an existing model row (rollback or promotion)';

CREATE OR REPLACE FUNCTION cxr_model_drop(name text) RETURNS bigint
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
COMMENT ON FUNCTION cxr_model_drop(text) IS
    'drops every model row under a name, with its deployments, histories and training states';

-- The id a name points at now; a name that resolves to nothing gets an ERROR saying why (no
-- such name, or rows stored under it but none deployed).
CREATE FUNCTION cxr_model_id(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_id' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_id(text) IS
    'the id of the model row a name points at now (for the IMMUTABLE by-id functions)';

CREATE OR REPLACE FUNCTION cxr_model_export(name text) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.weights FROM @extschema@.models m
    WHERE m.id = @extschema@.cxr_model_id(cxr_model_export.name)
$$;
COMMENT ON FUNCTION cxr_model_export(text) IS
    'the safetensors bytes of the model a name points at';

CREATE OR REPLACE FUNCTION cxr_model_export(model_id bigint) RETURNS bytea
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.weights FROM @extschema@.models m WHERE m.id = cxr_model_export.model_id
$$;
COMMENT ON FUNCTION cxr_model_export(bigint) IS 'the safetensors bytes of a model row';

CREATE VIEW model_list AS
SELECT m.id, m.name, m.arch, m.metadata ->> 'attention_score' AS attention_score, m.metrics,
       m.owner, m.created_at, length(m.weights) AS bytes,
       EXISTS (SELECT 1 FROM current_models c WHERE c.model_id = m.id) AS deployed,
       EXISTS (SELECT 1 FROM training_states s WHERE s.model_id = m.id) AS resumable
FROM models m ORDER BY m.id;
COMMENT ON VIEW model_list IS 'every model row, with whether it is deployed and resumable';
REVOKE ALL ON current_models, model_list FROM PUBLIC;
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM cxr_view_grants LOOP
        EXECUTE format('GRANT %s ON @extschema@.%I TO %I%s', r.privilege_type, r.relname, r.rolname,
                       CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
    END LOOP;
END $$;
DROP TABLE cxr_view_grants;

COMMENT ON DOMAIN cxr_image IS 'an X-ray as PNG bytes (the signature is checked on input)';
COMMENT ON FUNCTION cxr_image_info(bytea) IS
    'the PNG header of an image: size, bit depth, color type, channels, interlacing';
COMMENT ON FUNCTION cxr_image_gray(bytea, int) IS
    'the decoded gray image resized to size x size, values in [0, 1]';
COMMENT ON FUNCTION covid_predict(bytea, text) IS
    'probability of COVID-19 for an X-ray, by the model a name points at now';
COMMENT ON FUNCTION covid_predict(bytea, bigint) IS
    'probability of COVID-19 for an X-ray, by a model row (immutable)';
COMMENT ON FUNCTION attention_map(bytea, int, text) IS
    'attention weights of a conv layer (a side x side grid summing to 1), by model name';
COMMENT ON FUNCTION attention_map(bytea, int, bigint) IS
    'attention weights of a conv layer (a side x side grid summing to 1), by model row';
COMMENT ON FUNCTION attention_overlay(bytea, int, text) IS
    'a PNG of the X-ray with a layer''s attention drawn over it, by model name';
COMMENT ON FUNCTION attention_overlay(bytea, int, bigint) IS
    'a PNG of the X-ray with a layer''s attention drawn over it, by model row';
COMMENT ON FUNCTION cxr_kernels() IS 'which BLAS library and kernels this backend runs';
COMMENT ON FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean) IS
    'trains a network on the (image, label) rows of a query and stores it under a name';
COMMENT ON FUNCTION cxr_evaluate(text, text) IS
    'accuracy, sensitivity, specificity, precision, F1 and ROC AUC of a model on a query''s rows';
COMMENT ON FUNCTION cxr_shipped_default() IS
    'the bytes of the model shipped with this build (registered as "default")';

-- Costs measured by bench/function_costs.sh (units of cpu_operator_cost), so that the planner
-- scores above a LIMIT rather than every row.
ALTER FUNCTION covid_predict(bytea, text) COST 2900000;
ALTER FUNCTION covid_predict(bytea, bigint) COST 2900000;
ALTER FUNCTION attention_map(bytea, int, text) COST 2600000;
ALTER FUNCTION attention_map(bytea, int, bigint) COST 2600000;
ALTER FUNCTION attention_overlay(bytea, int, text) COST 5700000;
ALTER FUNCTION attention_overlay(bytea, int, bigint) COST 5700000;
ALTER FUNCTION cxr_image_gray(bytea, int) COST 180000;
ALTER FUNCTION cxr_image_info(bytea) COST 700;
ALTER FUNCTION cxr_model_validate(bytea) COST 950000;
ALTER FUNCTION cxr_evaluate(text, text) COST 2700000;
ALTER FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean)
    COST 10000000 ROWS 10;

-- The domain's error says what stored bytes look like (a JPEG, a DICOM file, text).
CREATE FUNCTION cxr_image_check(bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_image_check' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_image_check(bytea) IS
    'the cxr_image domain''s check: true for PNG bytes, else an error saying what they look like';
ALTER DOMAIN cxr_image DROP CONSTRAINT cxr_image_check;
ALTER DOMAIN cxr_image ADD CONSTRAINT cxr_image_check CHECK (cxr_image_check(VALUE));
