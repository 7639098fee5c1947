-- Timings in NOTICEs vary from run to run: keep them out of the expected output.
SET client_min_messages = warning;
SET cxr_attn.training_threads = 2;

-- a model of another architecture, with a training state, for the checks below
SELECT count(*) FROM cxr.cxr_train('other_arch', $$SELECT image, label FROM blobs WHERE split = 'train' LIMIT 8$$,
    'alexnet_attn1', epochs => 1, batch_size => 8, seed => 7);

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
    JOIN cxr.current_models c USING (model_id) WHERE c.name = 'other_arch')
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
    'alexnet_attn1', epochs => 1, batch_size => 8, init_model => 'other_arch');
SELECT m.metrics->>'init_model' AS init_model, m.arch FROM cxr.models m WHERE m.name = 'blob_tuned';
SELECT count(*) FROM cxr.cxr_train('dot_model', $$SELECT image, label FROM blobs LIMIT 8$$,
    'alexnet_attn3', epochs => 1, batch_size => 8, attention_score => 'dot');
SELECT arch, attention_score FROM cxr.model_list WHERE name = 'dot_model';

