-- cxr_attn 0.3.0 -> 0.4.0: the extension's internal helpers move to schema cxr_internal, which
-- users cannot name; the registry's writers (import, deploy, drop, export, the validation
-- trigger) become C, reaching those helpers by oid; every function that takes a model name also
-- takes a row id (cxr_evaluate, cxr_train's init_model_id); cxr_train's rows give the id it
-- stored; exporting an unknown name or id is an ERROR instead of NULL; overlays are drawn at the
-- image's own resolution with a colour scale and a caption; attention_figure and
-- cxr_training_curve draw figures and training curves.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.4.0'" to load this file. \quit

CREATE SCHEMA cxr_internal;
COMMENT ON SCHEMA cxr_internal IS
    'cxr_attn''s internal helpers: policies, triggers and defaults use them; users cannot call them';
REVOKE ALL ON SCHEMA cxr_internal FROM PUBLIC;

-- Moved, not recreated: the policies, column defaults and triggers keep pointing at them.
ALTER FUNCTION cxr_current_role() SET SCHEMA cxr_internal;
ALTER FUNCTION models_immutable() SET SCHEMA cxr_internal;
ALTER FUNCTION cxr_registry_changed() SET SCHEMA cxr_internal;
ALTER FUNCTION registry_changed_trigger() SET SCHEMA cxr_internal;
ALTER FUNCTION name_writable(text) SET SCHEMA cxr_internal;
ALTER FUNCTION model_writable(bigint) SET SCHEMA cxr_internal;
ALTER FUNCTION cxr_shipped_default() SET SCHEMA cxr_internal;

-- The validation trigger is C now (a plpgsql body would look its helpers up by name, with the
-- caller's rights); the extension-script test it called is part of it.
CREATE OR REPLACE FUNCTION models_validate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'cxr_models_validate' LANGUAGE C;
ALTER FUNCTION models_validate() SET SCHEMA cxr_internal;
DROP FUNCTION cxr_in_extension_script();

CREATE OR REPLACE FUNCTION cxr_model_import(name text, weights bytea, deploy boolean DEFAULT true,
                                            metrics jsonb DEFAULT '{}') RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_import' LANGUAGE C VOLATILE;
CREATE OR REPLACE FUNCTION cxr_model_deploy(name text, model_id bigint) RETURNS void
    AS 'MODULE_PATHNAME', 'cxr_model_deploy' LANGUAGE C VOLATILE STRICT;
CREATE OR REPLACE FUNCTION cxr_model_drop(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'cxr_model_drop' LANGUAGE C VOLATILE STRICT;
CREATE OR REPLACE FUNCTION cxr_model_export(name text) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_model_export_by_name' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE OR REPLACE FUNCTION cxr_model_export(model_id bigint) RETURNS bytea
    AS 'MODULE_PATHNAME', 'cxr_model_export_by_id' LANGUAGE C STABLE STRICT PARALLEL SAFE;

-- cxr_train gains init_model_id and a model_id column: a new result type
DROP FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean);
CREATE FUNCTION cxr_train(name text, training_query text, arch text DEFAULT 'alexnet_attn2',
                          validation_query text DEFAULT NULL, epochs int DEFAULT 10,
                          batch_size int DEFAULT 64, learning_rate float8 DEFAULT 1e-4,
                          augment boolean DEFAULT true, seed int DEFAULT 1,
                          deploy boolean DEFAULT true, init_model text DEFAULT NULL,
                          attention_score text DEFAULT 'scaled_dot', resume boolean DEFAULT false,
                          init_model_id bigint DEFAULT NULL,
                          OUT model_id bigint, OUT epoch int, OUT train_loss float8,
                          OUT train_accuracy float8, OUT val_loss float8, OUT val_accuracy float8,
                          OUT seconds float8)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'cxr_train' LANGUAGE C VOLATILE
    COST 10000000 ROWS 10;
COMMENT ON FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean, bigint) IS
    'trains a network on the (image, label) rows of a query and stores it under a name; returns the stored row''s id and the per-epoch history';

CREATE FUNCTION cxr_evaluate(model_id bigint, query text,
                             OUT n bigint, OUT accuracy float8, OUT sensitivity float8,
                             OUT specificity float8, OUT "precision" float8, OUT f1 float8,
                             OUT roc_auc float8, OUT true_positive bigint, OUT false_positive bigint,
                             OUT true_negative bigint, OUT false_negative bigint)
    AS 'MODULE_PATHNAME', 'cxr_evaluate_by_id' LANGUAGE C VOLATILE STRICT
    COST 2700000;
COMMENT ON FUNCTION cxr_evaluate(bigint, text) IS
    'cxr_evaluate by model row id (reaches rows no name points at)';

-- attention_overlay gains a caption argument
DROP FUNCTION attention_overlay(bytea, int, text);
DROP FUNCTION attention_overlay(bytea, int, bigint);
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
