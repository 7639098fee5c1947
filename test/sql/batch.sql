-- covid_predict_batch: a query's (key, image) rows scored in batches give, bit for bit, the
-- probabilities covid_predict gives row by row, in the query's order, at every batch size and
-- across batch boundaries; NULL images score NULL; bad queries and arguments get clear errors.
\set xray0 `base64 -w0 test/data/xray0.png`
\set xray1 `base64 -w0 test/data/xray1.png`
\set xray2 `base64 -w0 test/data/xray2.png`
\set xray3 `base64 -w0 test/data/xray3.png`
\set shipped_b64 `base64 -w0 weights/cxr_attn_default.safetensors`
SELECT cxr.cxr_model_import('batch_net', decode(:'shipped_b64', 'base64')) > 0 AS imported;
CREATE TABLE batch_imgs (id int PRIMARY KEY, image bytea, label boolean);
INSERT INTO batch_imgs
SELECT i, decode(CASE i % 4 WHEN 0 THEN :'xray0' WHEN 1 THEN :'xray1' WHEN 2 THEN :'xray2' ELSE :'xray3' END,
                 'base64'), i % 2 = 1
FROM generate_series(1, 37) i;
INSERT INTO batch_imgs VALUES (38, NULL, false);
CREATE TABLE row_by_row AS
SELECT id, cxr.covid_predict(image, 'batch_net') AS p FROM batch_imgs;

-- every row, at batch sizes that divide the rows, do not, and exceed them
SELECT s.batch_size, count(*) AS n,
       bool_and(b.probability IS NOT DISTINCT FROM r.p) AS equals_row_by_row,
       count(b.probability) AS scored
FROM unnest(ARRAY[1, 5, 32, 256]) s(batch_size),
     cxr.covid_predict_batch('SELECT id, image FROM batch_imgs ORDER BY id', 'batch_net', s.batch_size) b
JOIN row_by_row r ON r.id = b.key::int
GROUP BY s.batch_size ORDER BY s.batch_size;
-- the query's order, keys of any type (NULL keys included), by model id
SELECT array_agg(key ORDER BY ord) = ARRAY['38', '37', '36', '35'] AS query_order
FROM cxr.covid_predict_batch('SELECT id, image FROM batch_imgs ORDER BY id DESC LIMIT 4', 'batch_net')
     WITH ORDINALITY AS b(key, probability, ord);
SELECT key, probability = (SELECT p FROM row_by_row WHERE id = 2) AS same
FROM cxr.covid_predict_batch($$SELECT NULL::date, image FROM batch_imgs WHERE id = 2
                              UNION ALL SELECT '2026-11-26'::date, image FROM batch_imgs WHERE id = 2$$,
                             cxr.cxr_model_id('batch_net'));
-- a random forest (a kind without a batch path) scores the same way
SET client_min_messages = warning;
SELECT count(*) AS fitted FROM cxr.cxr_train('batch_forest', 'SELECT image, label FROM batch_imgs WHERE id <= 37',
    'random_forest', params => '{"n_estimators": 5, "feature_grid": 16}');
RESET client_min_messages;
SELECT bool_and(b.probability = cxr.covid_predict(i.image, 'batch_forest')) AS forest_equals_row_by_row, count(*)
FROM cxr.covid_predict_batch('SELECT id, image FROM batch_imgs WHERE id <= 37', 'batch_forest', 8) b
JOIN batch_imgs i ON i.id = b.key::int;

-- the model stays alive while the query changes the registry (every cache flushed) and scores
CREATE FUNCTION public.batch_flush_and_score(img bytea) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM cxr_internal.cxr_registry_changed();
    RETURN cxr.covid_predict(img, 'batch_forest') >= 0;
END $$;
SELECT bool_and(b.probability = r.p) AS same_while_flushed, count(*)
FROM cxr.covid_predict_batch('SELECT id, image FROM batch_imgs WHERE batch_flush_and_score(image)', 'batch_net', 4) b
JOIN row_by_row r ON r.id = b.key::int;

-- errors, with their SQLSTATEs
CREATE FUNCTION pg_temp.error_of(call text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE call;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT c AS call, pg_temp.error_of('SELECT count(*) FROM cxr.covid_predict_batch(' || c || ')') AS error
FROM unnest(ARRAY[
    $$'SELECT id, image FROM batch_imgs', 'batch_net', 0$$,
    $$'SELECT id, image FROM batch_imgs', 'batch_net', 257$$,
    $$'SELECT image FROM batch_imgs', 'batch_net'$$,
    $$'SELECT id, label FROM batch_imgs', 'batch_net'$$,
    $$'SELEKT 1', 'batch_net'$$,
    $$'CREATE TABLE nope (x int)', 'batch_net'$$,
    $$'SELECT id, image FROM no_such_table', 'batch_net'$$,
    $$'SELECT 1, ''\x00''::bytea', 'batch_net'$$,
    $$'SELECT id, image FROM batch_imgs', 'no_such_model'$$,
    $$'SELECT id, image FROM batch_imgs', -1::bigint$$]) c;
SELECT * FROM cxr.covid_predict_batch(NULL, 'batch_net');
-- the batch's memory is checked before any image is decoded
SET cxr_attn.training_memory = '8MB';
SELECT pg_temp.error_of($$SELECT count(*) FROM cxr.covid_predict_batch('SELECT id, image FROM batch_imgs', 'batch_net', 64)$$) AS error;
RESET cxr_attn.training_memory;
-- the query runs with the caller's rights: a role that may score but not read the table
CREATE ROLE cxr_batch_scorer;
GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models TO cxr_batch_scorer;
SET ROLE cxr_batch_scorer;
SELECT pg_temp.error_of($$SELECT count(*) FROM cxr.covid_predict_batch('SELECT id, image FROM batch_imgs', 'batch_net')$$) AS error;
RESET ROLE;
DROP OWNED BY cxr_batch_scorer;
DROP ROLE cxr_batch_scorer;

DROP FUNCTION public.batch_flush_and_score(bytea);
DROP TABLE batch_imgs, row_by_row;
SELECT cxr.cxr_model_drop('batch_net') > 0 AS dropped, cxr.cxr_model_drop('batch_forest') > 0 AS dropped_forest;
