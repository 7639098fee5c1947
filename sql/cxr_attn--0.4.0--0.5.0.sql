-- cxr_attn 0.4.0 -> 0.5.0: networks are graphs in the core, and resnet50 joins the
-- architectures (torchvision's layout and names); cxr_train gains trainable, the name prefixes
-- of the parameters a run trains (the paper's transfer learning: trainable => 'fc').
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.5.0'" to load this file. \quit

DROP FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean, bigint);
CREATE FUNCTION cxr_train(name text, training_query text, arch text DEFAULT 'alexnet_attn2',
                          validation_query text DEFAULT NULL, epochs int DEFAULT 10,
                          batch_size int DEFAULT 64, learning_rate float8 DEFAULT 1e-4,
                          augment boolean DEFAULT true, seed int DEFAULT 1,
                          deploy boolean DEFAULT true, init_model text DEFAULT NULL,
                          attention_score text DEFAULT 'scaled_dot', resume boolean DEFAULT false,
                          init_model_id bigint DEFAULT NULL, trainable text DEFAULT NULL,
                          OUT model_id bigint, OUT epoch int, OUT train_loss float8,
                          OUT train_accuracy float8, OUT val_loss float8, OUT val_accuracy float8,
                          OUT seconds float8)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'cxr_train' LANGUAGE C VOLATILE
    COST 10000000 ROWS 10;
COMMENT ON FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text, boolean, bigint, text) IS
    'trains a network (or, with trainable => ''layer4,fc'', only the parameters under those names) on the (image, label) rows of a query and stores it under a name; returns the stored row''s id and the per-epoch history';

