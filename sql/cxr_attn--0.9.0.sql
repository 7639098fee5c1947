-- cxr_attn: chest X-ray COVID-19 screening with attention networks, in SQL.
\echo Use "CREATE EXTENSION cxr_attn" to load this file. \quit

COMMENT ON SCHEMA @extschema@ IS 'cxr_attn: chest X-ray COVID-19 screening in SQL';

-- ---------------------------------------------------------------- images
CREATE FUNCTION cxr_is_png(bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_is_png' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_is_png(bytea) IS 'true when the value starts with the PNG signature';

-- true for PNG, JPEG or DICOM bytes; otherwise an ERROR that says what the bytes look like
CREATE FUNCTION cxr_image_check(bytea) RETURNS boolean
    AS 'MODULE_PATHNAME', 'cxr_image_check' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_image_check(bytea) IS
    'the cxr_image domain''s check: true for PNG, JPEG or DICOM bytes (told by content), else an error saying what they look like';

-- A column type for X-rays: PNG, JPEG or DICOM bytes, checked cheaply (by content) on input.
CREATE DOMAIN cxr_image AS bytea CONSTRAINT cxr_image_check CHECK (cxr_image_check(VALUE));
COMMENT ON DOMAIN cxr_image IS 'an X-ray as PNG, JPEG or DICOM bytes (the format is checked on input)';

-- The header of an image of any supported format; the DICOM columns are NULL for PNG and JPEG.
CREATE FUNCTION cxr_image_info(image bytea, OUT width int, OUT height int, OUT bit_depth int,
                               OUT color_type text, OUT channels int, OUT interlaced boolean,
                               OUT format text, OUT frames int, OUT transfer_syntax text,
                               OUT photometric text, OUT bits_allocated int,
                               OUT pixel_signed boolean, OUT rescale_slope double precision,
                               OUT rescale_intercept double precision, OUT voi text,
                               OUT window_center double precision,
                               OUT window_width double precision)
    AS 'MODULE_PATHNAME', 'cxr_image_info' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 700;
COMMENT ON FUNCTION cxr_image_info(bytea) IS
    'the header of a PNG, JPEG or DICOM image: size, bit depth, colour, channels, interlacing, format, frames, and for DICOM the transfer syntax and the pixel module (photometric interpretation, bits, sign, rescale, VOI)';

-- The DICOM attributes a screening query filters on, as jsonb (NULL for PNG and JPEG).
-- Patient identifiers only when extra names them.
CREATE FUNCTION cxr_dicom_tags(image bytea, extra text[] DEFAULT '{}') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'cxr_dicom_tags' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 700;
COMMENT ON FUNCTION cxr_dicom_tags(bytea, text[]) IS
    'a DICOM image''s Modality, BodyPartExamined, ViewPosition, PhotometricInterpretation, Rows, Columns, PixelSpacing, TransferSyntaxUID and study, series and instance UIDs as jsonb, plus the attributes extra names (PatientID, ...); NULL for PNG and JPEG';

-- The decoded gray image, resized to size x size, values in [0, 1] (what the network sees
-- before normalisation).
CREATE FUNCTION cxr_image_gray(image bytea, size int DEFAULT 299) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_image_gray' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 180000;
COMMENT ON FUNCTION cxr_image_gray(bytea, int) IS
    'the decoded gray image resized to size x size, values in [0, 1]';

-- The 8-bit gray levels (0..255) of cxr_image_gray: the features a random_forest sees, and
-- what to export to fit one elsewhere (scikit-learn) and import it.
CREATE FUNCTION cxr_image_pixels(image bytea, size int DEFAULT 64) RETURNS smallint[]
    AS 'MODULE_PATHNAME', 'cxr_image_pixels' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 180000;
COMMENT ON FUNCTION cxr_image_pixels(bytea, int) IS
    'the decoded gray image resized to size x size as 8-bit levels 0..255 (a random_forest''s features)';

-- ---------------------------------------------------------------- model registry
-- The extension's internal helpers live in schema cxr_internal, on which no user has USAGE, so
-- nothing a user runs can name them. The row-level security policies, column defaults and
-- triggers reach them by oid, and so do the registry's C functions (src/pg/registry.c).
-- Every SQL-language and plpgsql function pins its search_path, so that no object a caller puts
-- first in search_path (a function, an operator) can run inside it.
CREATE SCHEMA cxr_internal;
COMMENT ON SCHEMA cxr_internal IS
    'cxr_attn''s internal helpers: policies, triggers and defaults use them; users cannot call them';
REVOKE ALL ON SCHEMA cxr_internal FROM PUBLIC;

-- The current role as a role id (owners are stored as ids: a dropped role's models are not
-- inherited by a new role of the same name).
CREATE FUNCTION cxr_internal.cxr_current_role() RETURNS regrole
    AS 'MODULE_PATHNAME', 'cxr_current_role' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_internal.cxr_current_role() IS
    'the id of current_user, as stored in cxr.models.owner and cxr.deployments.deployed_by';

-- Model rows are immutable; names point at models through an append-only deployment log.
CREATE TABLE models (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    arch        text NOT NULL,
    metadata    jsonb NOT NULL,
    weights     bytea NOT NULL,
    metrics     jsonb NOT NULL DEFAULT '{}',
    owner       regrole NOT NULL DEFAULT cxr_internal.cxr_current_role(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- the model's identity on every server (0.9.0): the SHA-256 of its weights
    digest      bytea NOT NULL GENERATED ALWAYS AS (sha256(weights)) STORED
);
CREATE INDEX ON models (name);
CREATE INDEX ON models (digest);
COMMENT ON TABLE models IS
    'registered models: immutable rows of validated safetensors weights, owned by a role id';

CREATE TABLE deployments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    model_id    bigint NOT NULL REFERENCES models (id) ON DELETE CASCADE,
    deployed_by regrole NOT NULL DEFAULT cxr_internal.cxr_current_role(),
    deployed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON deployments (name, id);
COMMENT ON TABLE deployments IS
    'append-only log of which model each name points at; the newest row of a name wins';

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
COMMENT ON TABLE training_history IS 'per-epoch losses and accuracies of models made by cxr_train';

-- The state of a cxr_train run after its last epoch (weights, Adam's moments, progress), kept
-- so that cxr_train(..., init_model => name, resume => true) continues the run exactly.
CREATE TABLE training_states (
    model_id    bigint PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,
    state       bytea NOT NULL
);
COMMENT ON TABLE training_states IS
    'the resumable state (weights, Adam moments, progress) of each cxr_train run after its last epoch';

CREATE FUNCTION cxr_internal.models_immutable() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION 'model rows are immutable: import a new model instead'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;
COMMENT ON FUNCTION cxr_internal.models_immutable() IS 'trigger: refuses UPDATE of cxr.models';
CREATE TRIGGER models_immutable BEFORE UPDATE ON models
    FOR EACH ROW EXECUTE FUNCTION cxr_internal.models_immutable();

-- Parses and fully validates a safetensors model; returns its arch and metadata.
CREATE FUNCTION cxr_model_validate(weights bytea, OUT arch text, OUT metadata jsonb)
    AS 'MODULE_PATHNAME', 'cxr_model_validate' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 950000;
COMMENT ON FUNCTION cxr_model_validate(bytea) IS
    'parses and fully validates a safetensors model file; returns its architecture and metadata';

-- Every path that stores a model goes through this check: import, cxr_train, a direct INSERT
-- and a restore from pg_dump. The caller's rights first (as the policies say), then the file
-- must load; arch and metadata are what the file says; only the extension's own script may
-- mark a model as shipped (pg_dump leaves shipped models out).
CREATE FUNCTION cxr_internal.models_validate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'cxr_models_validate' LANGUAGE C;
COMMENT ON FUNCTION cxr_internal.models_validate() IS
    'trigger: validates every stored model file and derives arch and metadata from it';
CREATE TRIGGER models_validate BEFORE INSERT ON models
    FOR EACH ROW EXECUTE FUNCTION cxr_internal.models_validate();

-- Tells every backend's model cache that names or models changed (at commit). Not for PUBLIC:
-- each call makes every backend reload its models.
CREATE FUNCTION cxr_internal.cxr_registry_changed() RETURNS void
    AS 'MODULE_PATHNAME', 'cxr_registry_changed' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION cxr_internal.cxr_registry_changed() IS
    'invalidates every backend''s model cache (the registry triggers do this on every change)';
REVOKE ALL ON FUNCTION cxr_internal.cxr_registry_changed() FROM PUBLIC;
CREATE FUNCTION cxr_internal.registry_changed_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'cxr_registry_changed_trigger' LANGUAGE C;
COMMENT ON FUNCTION cxr_internal.registry_changed_trigger() IS
    'trigger: invalidates every backend''s model cache after a deployment or a dropped model';
CREATE TRIGGER deployments_changed AFTER INSERT OR UPDATE OR DELETE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION cxr_internal.registry_changed_trigger();
CREATE TRIGGER models_changed AFTER DELETE ON models
    FOR EACH STATEMENT EXECUTE FUNCTION cxr_internal.registry_changed_trigger();

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
CREATE FUNCTION cxr_internal.name_writable(model_name text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT NOT EXISTS (SELECT 1 FROM @extschema@.models m
                       WHERE m.name = model_name AND NOT pg_has_role(m.owner, 'MEMBER'))
       AND NOT EXISTS (SELECT 1 FROM @extschema@.deployments d
                       WHERE d.name = model_name AND NOT pg_has_role(d.deployed_by, 'MEMBER'))
$$;
COMMENT ON FUNCTION cxr_internal.name_writable(text) IS
    'true when the current role may add to, repoint or drop the model name';
-- true when the current role is a member of the role that owns model model_id
CREATE FUNCTION cxr_internal.model_writable(model_id bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM @extschema@.models m
                   WHERE m.id = model_id AND pg_has_role(m.owner, 'MEMBER'))
$$;
COMMENT ON FUNCTION cxr_internal.model_writable(bigint) IS
    'true when the current role is a member of the role owning the model row';
ALTER TABLE models ENABLE ROW LEVEL SECURITY;
ALTER TABLE deployments ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_read ON models FOR SELECT USING (true);
CREATE POLICY models_insert ON models FOR INSERT
    WITH CHECK (owner = cxr_internal.cxr_current_role() AND cxr_internal.name_writable(name));
CREATE POLICY models_delete ON models FOR DELETE
    USING (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY deployments_read ON deployments FOR SELECT USING (true);
CREATE POLICY deployments_insert ON deployments FOR INSERT
    WITH CHECK (deployed_by = cxr_internal.cxr_current_role() AND cxr_internal.name_writable(name));
CREATE POLICY deployments_delete ON deployments FOR DELETE USING (cxr_internal.name_writable(name));
ALTER TABLE training_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_states_read ON training_states FOR SELECT USING (true);
CREATE POLICY training_states_insert ON training_states FOR INSERT
    WITH CHECK (cxr_internal.model_writable(model_id));
ALTER TABLE training_history ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_history_read ON training_history FOR SELECT USING (true);
CREATE POLICY training_history_insert ON training_history FOR INSERT
    WITH CHECK (cxr_internal.model_writable(model_id));

-- Stores a new immutable model row and (by default) points the name at it. The writers are C
-- (src/pg/registry.c): they reach cxr_internal's helpers by oid.
CREATE FUNCTION cxr_model_import(name text, weights bytea, deploy boolean DEFAULT true,
                                 metrics jsonb DEFAULT '{}') RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_import' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION cxr_model_import(text, bytea, boolean, jsonb) IS
    'validates and stores a safetensors model under a name; with deploy, points the name at it';

-- Points a name at an existing model row (a rollback, or promoting a candidate).
CREATE FUNCTION cxr_model_deploy(name text, model_id bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'cxr_model_deploy' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION cxr_model_deploy(text, bigint) IS
    'points a model name at an existing model row (rollback or promotion)';

-- Drops every model row stored under a name, with its deployments and history.
CREATE FUNCTION cxr_model_drop(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_drop' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION cxr_model_drop(text) IS
    'drops every model row under a name, with its deployments, histories and training states';

-- The id a name points at now; a name that resolves to nothing gets an ERROR saying why (no
-- such name, or rows stored under it but none deployed).
CREATE FUNCTION cxr_model_id(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_id' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_id(text) IS
    'the id of the model row a name points at now (for the IMMUTABLE by-id functions)';

-- The exact bytes of a model; an unknown name or id is an ERROR, never NULL.
CREATE FUNCTION cxr_model_export(name text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_model_export_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_export(text) IS
    'the safetensors bytes of the model a name points at';
CREATE FUNCTION cxr_model_export(model_id bigint) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_model_export_by_id' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_model_export(bigint) IS 'the safetensors bytes of a model row';

CREATE VIEW model_list AS
SELECT m.id, m.name, m.arch, m.metadata ->> 'attention_score' AS attention_score, m.metrics,
       m.owner, m.created_at, length(m.weights) AS bytes,
       EXISTS (SELECT 1 FROM current_models c WHERE c.model_id = m.id) AS deployed,
       EXISTS (SELECT 1 FROM training_states s WHERE s.model_id = m.id) AS resumable,
       m.digest
FROM models m ORDER BY m.id;
COMMENT ON VIEW model_list IS 'every model row, with whether it is deployed and resumable';

-- ---------------------------------------------------------------- scoring
-- COSTs are measured (bench/function_costs.sh, in units of cpu_operator_cost): the planner then
-- scores above a LIMIT rather than every row, and weighs parallel plans by the real work.
CREATE FUNCTION covid_predict(image bytea, model text DEFAULT 'default') RETURNS double precision
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 2900000;
COMMENT ON FUNCTION covid_predict(bytea, text) IS
    'probability of COVID-19 for an X-ray, by the model a name points at now';
-- Model rows never change, so scoring by id is immutable: usable in indexes and generated
-- columns, and safe to push to remote servers.
CREATE FUNCTION covid_predict(image bytea, model_id bigint) RETURNS double precision
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 2900000;
COMMENT ON FUNCTION covid_predict(bytea, bigint) IS
    'probability of COVID-19 for an X-ray, by a model row (immutable)';

-- Scoring a query's rows in batches (0.7.0): the core runs many images through each layer at
-- once, and each probability equals covid_predict's for the same image, bit for bit. The query
-- returns (key, image); the key comes back as text, in the query's order.
CREATE FUNCTION covid_predict_batch(query text, model text DEFAULT 'default',
                                    batch_size int DEFAULT 32)
    RETURNS TABLE (key text, probability double precision)
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_batch_by_name' LANGUAGE C VOLATILE STRICT
    COST 2900000 ROWS 1000;
COMMENT ON FUNCTION covid_predict_batch(text, text, int) IS
    'scores the (key, image) rows of a query in batches, by model name: the same probabilities as covid_predict, in the query''s order';
CREATE FUNCTION covid_predict_batch(query text, model_id bigint, batch_size int DEFAULT 32)
    RETURNS TABLE (key text, probability double precision)
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_batch_by_id' LANGUAGE C VOLATILE STRICT
    COST 2900000 ROWS 1000;
COMMENT ON FUNCTION covid_predict_batch(text, bigint, int) IS
    'scores the (key, image) rows of a query in batches, by model row: the same probabilities as covid_predict, in the query''s order';

CREATE FUNCTION attention_map(image bytea, layer int, model text DEFAULT 'default') RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_attention_map_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 2600000;
COMMENT ON FUNCTION attention_map(bytea, int, text) IS
    'attention weights of a conv layer (a side x side grid summing to 1), by model name';
CREATE FUNCTION attention_map(image bytea, layer int, model_id bigint) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_attention_map_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 2600000;
COMMENT ON FUNCTION attention_map(bytea, int, bigint) IS
    'attention weights of a conv layer (a side x side grid summing to 1), by model row';

-- Pictures (src/pg/pictures.c): the overlay is drawn at the image's own resolution, with a
-- colour scale and, when asked, a caption (probability, layer, model).
CREATE FUNCTION attention_overlay(image bytea, layer int, model text DEFAULT 'default',
                                  caption boolean DEFAULT false) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_overlay_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 5700000;
COMMENT ON FUNCTION attention_overlay(bytea, int, text, boolean) IS
    'a PNG of the X-ray at its own resolution with a layer''s attention over it, a colour scale and an optional caption, by model name';
CREATE FUNCTION attention_overlay(image bytea, layer int, model_id bigint,
                                  caption boolean DEFAULT false) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_overlay_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 5700000;
COMMENT ON FUNCTION attention_overlay(bytea, int, bigint, boolean) IS
    'a PNG of the X-ray at its own resolution with a layer''s attention over it, a colour scale and an optional caption, by model row';

-- A random forest's impurity importance on its pixel grid (scikit-learn's
-- feature_importances_): which pixels it uses, as an array and over an X-ray.
CREATE FUNCTION feature_importance(model text DEFAULT 'default') RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_feature_importance_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION feature_importance(text) IS
    'a random_forest''s impurity importance of every pixel of its feature grid (a side x side grid summing to 1), by model name';
CREATE FUNCTION feature_importance(model_id bigint) RETURNS real[]
    AS 'MODULE_PATHNAME', 'cxr_feature_importance_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION feature_importance(bigint) IS
    'a random_forest''s impurity importance of every pixel of its feature grid (a side x side grid summing to 1), by model row';
CREATE FUNCTION feature_importance_overlay(image bytea, model text DEFAULT 'default',
                                           caption boolean DEFAULT false) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_feature_importance_overlay_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 5700000;
COMMENT ON FUNCTION feature_importance_overlay(bytea, text, boolean) IS
    'a PNG of the X-ray at its own resolution with a random_forest''s feature importance over it, a colour scale and an optional caption, by model name';
CREATE FUNCTION feature_importance_overlay(image bytea, model_id bigint,
                                           caption boolean DEFAULT false) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_feature_importance_overlay_by_id' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 5700000;
COMMENT ON FUNCTION feature_importance_overlay(bytea, bigint, boolean) IS
    'a PNG of the X-ray at its own resolution with a random_forest''s feature importance over it, a colour scale and an optional caption, by model row';

-- One figure of several X-rays side by side: a row per image (the X-ray, then every attention
-- layer of the model), captions with the probability, one colour scale.
CREATE FUNCTION attention_figure(images bytea[], captions text[] DEFAULT NULL,
                                 model text DEFAULT 'default', panel int DEFAULT 299) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_figure_by_name' LANGUAGE C STABLE PARALLEL SAFE
    COST 76000000;
COMMENT ON FUNCTION attention_figure(bytea[], text[], text, int) IS
    'a PNG figure: one row per X-ray with its probability, then its attention at every layer, by model name';
CREATE FUNCTION attention_figure(images bytea[], captions text[], model_id bigint,
                                 panel int DEFAULT 299) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_attention_figure_by_id' LANGUAGE C IMMUTABLE PARALLEL SAFE
    COST 76000000;
COMMENT ON FUNCTION attention_figure(bytea[], text[], bigint, int) IS
    'a PNG figure: one row per X-ray with its probability, then its attention at every layer, by model row';

-- A model's training history (cxr.training_history) as loss and accuracy curves.
CREATE FUNCTION cxr_training_curve(model text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_training_curve_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 3000000;
COMMENT ON FUNCTION cxr_training_curve(text) IS
    'a PNG of the loss and accuracy per epoch of the model a name points at';
CREATE FUNCTION cxr_training_curve(model_id bigint) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_training_curve_by_id' LANGUAGE C STABLE STRICT PARALLEL SAFE
    COST 3000000;
COMMENT ON FUNCTION cxr_training_curve(bigint) IS
    'a PNG of the loss and accuracy per epoch of a model row';

-- Which kernels this backend runs (BLAS library, core type, self-test).
CREATE FUNCTION cxr_kernels() RETURNS text
    AS 'MODULE_PATHNAME', 'cxr_kernels' LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cxr_kernels() IS 'which BLAS library and kernels this backend runs';

-- ---------------------------------------------------------------- training and evaluation
CREATE FUNCTION cxr_train(name text, training_query text, arch text DEFAULT 'alexnet_attn2',
                          validation_query text DEFAULT NULL, epochs int DEFAULT 10,
                          batch_size int DEFAULT 64, learning_rate float8 DEFAULT 1e-4,
                          augment boolean DEFAULT true, seed int DEFAULT 1,
                          deploy boolean DEFAULT true, init_model text DEFAULT NULL,
                          attention_score text DEFAULT 'scaled_dot', resume boolean DEFAULT false,
                          init_model_id bigint DEFAULT NULL, trainable text DEFAULT NULL,
                          params jsonb DEFAULT NULL,
                          OUT model_id bigint, OUT epoch int, OUT train_loss float8,
                          OUT train_accuracy float8, OUT val_loss float8, OUT val_accuracy float8,
                          OUT seconds float8)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'cxr_train' LANGUAGE C VOLATILE
    COST 10000000 ROWS 10;
COMMENT ON FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean, bigint, text, jsonb) IS
    'trains a network (or, with trainable => ''layer4,fc'', only the parameters under those names), or fits a random_forest (params: scikit-learn''s names), on the (image, label) rows of a query and stores it under a name; returns the stored row''s id and the per-epoch history';

CREATE FUNCTION cxr_evaluate(model text, query text,
                             OUT n bigint, OUT accuracy float8, OUT sensitivity float8,
                             OUT specificity float8, OUT "precision" float8, OUT f1 float8,
                             OUT roc_auc float8, OUT true_positive bigint, OUT false_positive bigint,
                             OUT true_negative bigint, OUT false_negative bigint)
    AS 'MODULE_PATHNAME', 'cxr_evaluate' LANGUAGE C VOLATILE STRICT
    COST 2700000;
COMMENT ON FUNCTION cxr_evaluate(text, text) IS
    'accuracy, sensitivity, specificity, precision, F1 and ROC AUC of a model on a query''s rows';
CREATE FUNCTION cxr_evaluate(model_id bigint, query text,
                             OUT n bigint, OUT accuracy float8, OUT sensitivity float8,
                             OUT specificity float8, OUT "precision" float8, OUT f1 float8,
                             OUT roc_auc float8, OUT true_positive bigint, OUT false_positive bigint,
                             OUT true_negative bigint, OUT false_negative bigint)
    AS 'MODULE_PATHNAME', 'cxr_evaluate_by_id' LANGUAGE C VOLATILE STRICT
    COST 2700000;
COMMENT ON FUNCTION cxr_evaluate(bigint, text) IS
    'cxr_evaluate by model row id (reaches rows no name points at)';

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

-- ---------------------------------------------------------------- privileges
-- Nothing is readable or writable by default. To let a role score with the registered models:
--   GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO scorer;
-- and to let it import, train, deploy and drop its own models, additionally:
--   GRANT INSERT, DELETE ON cxr.models, cxr.deployments TO modeler;
--   GRANT INSERT ON cxr.training_history, cxr.training_states TO modeler;
-- (and SELECT on cxr.training_history, cxr.training_states to resume runs). Row-level security
-- then limits each role to the names and models it owns.
GRANT USAGE ON SCHEMA @extschema@ TO PUBLIC;
REVOKE ALL ON models, deployments, training_history, training_states, current_models, model_list
    FROM PUBLIC;

-- ---------------------------------------------------------------- the shipped default model
CREATE FUNCTION cxr_internal.cxr_shipped_default() RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_shipped_default' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION cxr_internal.cxr_shipped_default() IS
    'the bytes of the model shipped with this build (registered as "default")';
REVOKE ALL ON FUNCTION cxr_internal.cxr_shipped_default() FROM PUBLIC;
-- Registered as "default" when this build ships one (weights/MODEL_CARD.md describes it).
DO $$
DECLARE
    w bytea := cxr_internal.cxr_shipped_default();
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
