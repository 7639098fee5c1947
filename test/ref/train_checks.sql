-- Timings in NOTICEs vary from run to run: keep them out of the expected output.
SET client_min_messages = warning;
SET cxr_attn.training_threads = 2;

-- a few epochs learn the blob: validation accuracy >= 0.9
CREATE TABLE history AS
SELECT * FROM cxr.cxr_train('blob_model',
    $$SELECT image, label FROM blobs WHERE split = 'train'$$, 'alexnet_attn1',
    validation_query => $$SELECT image, label::int FROM blobs WHERE split = 'val'$$,
    epochs => 8, batch_size => 4, learning_rate => 1e-4, seed => 7);
-- (BatchNorm's running statistics need a few dozen steps before inference mode agrees with
-- training mode, hence the small batches)
SELECT count(*) AS epochs,
       (SELECT val_accuracy FROM history ORDER BY epoch DESC LIMIT 1) >= 0.9 AS learned,
       bool_and(train_loss > 0 AND seconds > 0) AS sane FROM history;
SELECT arch, attention_score, deployed, metrics->>'best_epoch' IS NOT NULL AS has_best_epoch
FROM cxr.model_list WHERE name = 'blob_model';
SELECT count(*) = 8 AS history_stored
FROM cxr.training_history h JOIN cxr.current_models c ON c.model_id = h.model_id
WHERE c.name = 'blob_model';
-- the history as a picture (loss and accuracy per epoch, 960 x 420), by name or by id
SELECT (cxr.cxr_image_info(cxr.cxr_training_curve('blob_model'))).width,
       (cxr.cxr_image_info(cxr.cxr_training_curve('blob_model'))).height,
       cxr.cxr_training_curve('blob_model') = cxr.cxr_training_curve(c.model_id) AS by_id_equals_by_name
FROM cxr.current_models c WHERE c.name = 'blob_model';
SELECT cxr.cxr_model_import('no_history', cxr.cxr_model_export('blob_model'), deploy => true) > 0 AS imported;
DO $$ BEGIN  -- an imported model has no history (its id varies with the tests run before)
    PERFORM cxr.cxr_training_curve('no_history');
EXCEPTION WHEN OTHERS THEN
    RAISE WARNING '%: %', SQLSTATE, regexp_replace(SQLERRM, '[0-9]+', 'N');
END $$;
SELECT cxr.cxr_model_drop('no_history');
SELECT cxr.cxr_training_curve(-1::bigint);
CREATE ROLE cxr_train_reader;                   -- may score, may not read histories
GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO cxr_train_reader;
SET ROLE cxr_train_reader;
SELECT cxr.cxr_training_curve('blob_model');
RESET ROLE;
DROP OWNED BY cxr_train_reader;
DROP ROLE cxr_train_reader;
-- every row of the result names the model row it stored
SELECT bool_and(h.model_id = c.model_id) AS result_names_stored_row
FROM history h, cxr.current_models c WHERE c.name = 'blob_model';

-- evaluation in one pass over a query
SELECT n, accuracy >= 0.9 AS accurate, roc_auc >= 0.9 AS separates,
       true_positive + false_positive + true_negative + false_negative = n AS confusion_complete
FROM cxr.cxr_evaluate('blob_model', $$SELECT image, label FROM blobs WHERE split = 'val'$$);

-- the same seed on the same machine and thread count gives the same model, bit for bit
SELECT count(*) FROM cxr.cxr_train('det_a', $$SELECT image, label FROM blobs WHERE split = 'train' LIMIT 16$$,
    'alexnet_attn2', epochs => 2, batch_size => 8, seed => 3, deploy => true);
SELECT count(*) FROM cxr.cxr_train('det_b', $$SELECT image, label FROM blobs WHERE split = 'train' LIMIT 16$$,
    'alexnet_attn2', epochs => 2, batch_size => 8, seed => 3, deploy => true);
SELECT count(*) FROM cxr.cxr_train('det_c', $$SELECT image, label FROM blobs WHERE split = 'train' LIMIT 16$$,
    'alexnet_attn2', epochs => 2, batch_size => 8, seed => 4, deploy => true);
SELECT md5(cxr.cxr_model_export('det_a')) = md5(cxr.cxr_model_export('det_b')) AS same_seed_same_bytes,
       md5(cxr.cxr_model_export('det_a')) <> md5(cxr.cxr_model_export('det_c')) AS other_seed_differs;

-- cancel (here: statement_timeout) stops training and stores nothing
SET statement_timeout = '1500ms';
SELECT count(*) FROM cxr.cxr_train('cancelled', $$SELECT image, label FROM blobs$$, epochs => 50);
RESET statement_timeout;
SELECT count(*) AS cancelled_rows FROM cxr.models WHERE name = 'cancelled';

-- bad training queries and arguments are clear errors
SELECT cxr.cxr_train('bad', $$SELECT image FROM blobs$$);
SELECT cxr.cxr_train('bad', $$SELECT label, image FROM blobs$$);
SELECT cxr.cxr_train('bad', $$SELECT image, 'yes'::text FROM blobs$$);
SELECT cxr.cxr_train('bad', $$SELECT NULL::bytea, true$$);
SELECT cxr.cxr_train('bad', $$SELECT image, NULL::boolean FROM blobs$$);
SELECT cxr.cxr_train('bad', $$SELECT image, 2 FROM blobs$$);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs WHERE false$$);
SELECT cxr.cxr_train('bad', $$SELECT '\x00'::bytea, true$$);
SELECT cxr.cxr_train('bad', $$SELEKT 1$$);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM no_such_table$$);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, 'vgg16');
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, epochs => 0);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, batch_size => 0);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, learning_rate => -1);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, attention_score => 'cosine');
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, init_model => 'no_such_model');
-- training_memory bounds the run's optimiser and activations (refused before any image is
-- decoded), and then the decoded images
SET cxr_attn.training_memory = '1MB';
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$);
SET cxr_attn.training_memory = '220MB';
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, batch_size => 1);
RESET cxr_attn.training_memory;
SELECT cxr.cxr_evaluate('blob_model', $$SELECT image, label FROM blobs WHERE false$$);
SELECT count(*) AS bad_rows FROM cxr.models WHERE name = 'bad';
