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
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, 'resnet50');
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, epochs => 0);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, batch_size => 0);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, learning_rate => -1);
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, attention_score => 'cosine');
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$, init_model => 'no_such_model');
SET cxr_attn.training_memory = '1MB';
SELECT cxr.cxr_train('bad', $$SELECT image, label FROM blobs$$);
RESET cxr_attn.training_memory;
SELECT cxr.cxr_evaluate('blob_model', $$SELECT image, label FROM blobs WHERE false$$);
SELECT count(*) AS bad_rows FROM cxr.models WHERE name = 'bad';
