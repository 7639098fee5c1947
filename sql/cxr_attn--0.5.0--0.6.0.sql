-- cxr_attn 0.5.0 -> 0.6.0: the random forest of the paper's Table V joins the architectures
-- (arch => 'random_forest', a second model kind beside the CNN graphs). cxr_train gains params,
-- the forest's hyperparameters under scikit-learn's names; cxr_image_pixels gives a forest's
-- features; feature_importance and feature_importance_overlay show which pixels it uses.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.6.0'" to load this file. \quit

DROP FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean, bigint, text);
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

-- The 8-bit gray levels (0..255) of cxr_image_gray: the features a random_forest sees, and
-- what to export to fit one elsewhere (scikit-learn) and import it.
CREATE FUNCTION cxr_image_pixels(image bytea, size int DEFAULT 64) RETURNS smallint[]
    AS 'MODULE_PATHNAME', 'cxr_image_pixels' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    COST 180000;
COMMENT ON FUNCTION cxr_image_pixels(bytea, int) IS
    'the decoded gray image resized to size x size as 8-bit levels 0..255 (a random_forest''s features)';

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
