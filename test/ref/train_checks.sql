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

-- a run resumed from its stored state (weights, Adam's moments, progress) equals one
-- uninterrupted run, bit for bit: same model, same state, same history
CREATE TEMP VIEW tiny_train AS SELECT image, label FROM blobs WHERE split = 'train' LIMIT 16;
CREATE TEMP VIEW tiny_val AS SELECT image, label FROM blobs WHERE split = 'val' LIMIT 8;
SELECT count(*) FROM cxr.cxr_train('run_whole', 'SELECT * FROM tiny_train', 'alexnet_attn2',
    validation_query => 'SELECT * FROM tiny_val', epochs => 3, batch_size => 8, seed => 5);
SELECT count(*) FROM cxr.cxr_train('run_part', 'SELECT * FROM tiny_train', 'alexnet_attn2',
    validation_query => 'SELECT * FROM tiny_val', epochs => 2, batch_size => 8, seed => 5);
SELECT epoch FROM cxr.cxr_train('run_rest', 'SELECT * FROM tiny_train',
    validation_query => 'SELECT * FROM tiny_val', epochs => 1, batch_size => 8, seed => 5,
    init_model => 'run_part', resume => true);
CREATE TEMP VIEW run_ids AS SELECT name, model_id FROM cxr.current_models WHERE name LIKE 'run_%';
SELECT md5(cxr.cxr_model_export('run_whole')) = md5(cxr.cxr_model_export('run_rest')) AS same_model,
       (SELECT md5(s.state) FROM cxr.training_states s JOIN run_ids USING (model_id) WHERE name = 'run_whole') =
       (SELECT md5(s.state) FROM cxr.training_states s JOIN run_ids USING (model_id) WHERE name = 'run_rest') AS same_state,
       (SELECT md5(s.state) FROM cxr.training_states s JOIN run_ids USING (model_id) WHERE name = 'run_whole') <>
       (SELECT md5(s.state) FROM cxr.training_states s JOIN run_ids USING (model_id) WHERE name = 'run_part') AS state_moves_on;
SELECT r.name, array_agg(h.epoch ORDER BY h.epoch) AS epochs,
       bool_and(h.train_loss = w.train_loss AND h.val_loss = w.val_loss) AS same_as_whole
FROM cxr.training_history h JOIN run_ids r USING (model_id)
JOIN (SELECT epoch, train_loss, val_loss FROM cxr.training_history JOIN run_ids USING (model_id)
      WHERE name = 'run_whole') w USING (epoch)
GROUP BY r.name ORDER BY r.name;
SELECT name, metrics->>'first_epoch' AS first_epoch, metrics->>'best_epoch' AS best_epoch,
       metrics->>'resumed' AS resumed, resumable
FROM cxr.model_list WHERE name LIKE 'run_%' ORDER BY name;
-- a run stored without deploying its name is reached by the id its result gives: resumed by
-- id, it still equals the uninterrupted run
CREATE TEMP TABLE tiny_run AS SELECT * FROM cxr.cxr_train('tiny', 'SELECT * FROM tiny_train',
    'alexnet_attn2', validation_query => 'SELECT * FROM tiny_val', epochs => 2, batch_size => 8,
    seed => 5, deploy => false);
SELECT count(*) AS epochs, bool_and(model_id = (SELECT id FROM cxr.models WHERE name = 'tiny'))
    AS id_of_stored_row FROM tiny_run;
\set VERBOSITY terse
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'tiny', resume => true);
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'tiny',
    init_model_id => (SELECT min(model_id) FROM tiny_run));
\set VERBOSITY default
SELECT epoch FROM cxr.cxr_train('tiny_rest', 'SELECT * FROM tiny_train',
    validation_query => 'SELECT * FROM tiny_val', epochs => 1, batch_size => 8, seed => 5,
    init_model_id => (SELECT min(model_id) FROM tiny_run), resume => true);
SELECT md5(cxr.cxr_model_export('tiny_rest')) = md5(cxr.cxr_model_export('run_whole')) AS same_model,
       (metrics->>'init_model_id')::bigint = (SELECT min(model_id) FROM tiny_run) AS provenance
FROM cxr.models WHERE name = 'tiny_rest';
-- what cannot be resumed
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', resume => true);
SELECT cxr.cxr_model_import('imported_run', cxr.cxr_model_export('run_part')) > 0 AS imported;  -- weights only
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'imported_run', resume => true);
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'no_such_model', resume => true);
BEGIN;  -- a state that belongs to another architecture
UPDATE cxr.training_states SET state = (SELECT s.state FROM cxr.training_states s
    JOIN cxr.current_models c USING (model_id) WHERE c.name = 'blob_model')
WHERE model_id = (SELECT model_id FROM run_ids WHERE name = 'run_rest');
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'run_rest', resume => true);
ROLLBACK;
BEGIN;  -- a damaged state
UPDATE cxr.training_states SET state = substr(state, 1, 1000)
WHERE model_id = (SELECT model_id FROM run_ids WHERE name = 'run_rest');
SELECT cxr.cxr_train('bad', 'SELECT * FROM tiny_train', init_model => 'run_rest', resume => true);
ROLLBACK;

-- init_model continues from a stored model (fine-tuning), with the paper's unscaled score kept
SELECT count(*) FROM cxr.cxr_train('blob_tuned', $$SELECT image, label FROM blobs WHERE split = 'val'$$,
    'alexnet_attn1', epochs => 1, batch_size => 8, init_model => 'blob_model');
SELECT m.metrics->>'init_model' AS init_model, m.arch FROM cxr.models m WHERE m.name = 'blob_tuned';
SELECT count(*) FROM cxr.cxr_train('dot_model', $$SELECT image, label FROM blobs LIMIT 8$$,
    'alexnet_attn3', epochs => 1, batch_size => 8, attention_score => 'dot');
SELECT arch, attention_score FROM cxr.model_list WHERE name = 'dot_model';

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
SET cxr_attn.training_memory = '216MB';
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, batch_size => 1);
RESET cxr_attn.training_memory;
SELECT cxr.cxr_evaluate('blob_model', $$SELECT image, label FROM blobs WHERE false$$);
SELECT count(*) AS bad_rows FROM cxr.models WHERE name = 'bad';
