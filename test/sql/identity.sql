-- 0.9.0: a model's identity on every server is the SHA-256 of its weights; the by-digest
-- functions score as the by-id ones do; cxr_metrics computes cxr_evaluate's figures over rows
-- already scored; cxr_model_distribute refuses what it cannot do before sending anything.
\set xray0 `base64 -w0 test/data/xray0.png`
\set xray1 `base64 -w0 test/data/xray1.png`
\set xray2 `base64 -w0 test/data/xray2.png`
\set xray3 `base64 -w0 test/data/xray3.png`
\set model_b64 `base64 -w0 test/bin/random_attn2.safetensors`
SELECT cxr.cxr_model_import('id_a', decode(:'model_b64', 'base64')) > 0 AS imported;
-- the same bytes under a second name: a second row, the same identity
SELECT cxr.cxr_model_import('id_b', decode(:'model_b64', 'base64')) > 0 AS imported;
SELECT cxr.cxr_model_id('id_a') <> cxr.cxr_model_id('id_b') AS two_rows,
       cxr.cxr_model_digest('id_a') = cxr.cxr_model_digest('id_b') AS one_identity,
       length(cxr.cxr_model_digest('id_a')) AS digest_bytes,
       cxr.cxr_model_digest(cxr.cxr_model_id('id_b')) = cxr.cxr_model_digest('id_b') AS by_id;
SELECT count(*) FILTER (WHERE digest IS NULL) AS rows_without_digest FROM cxr.model_list;

CREATE TABLE id_imgs (id int PRIMARY KEY, image bytea, label boolean);
INSERT INTO id_imgs VALUES (0, decode(:'xray0', 'base64'), false), (1, decode(:'xray1', 'base64'), true),
                           (2, decode(:'xray2', 'base64'), false), (3, decode(:'xray3', 'base64'), true);
-- by digest = by id, bit for bit, for scores and attention maps
SELECT bool_and(cxr.covid_predict(image, cxr.cxr_model_digest('id_a')) = cxr.covid_predict(image, cxr.cxr_model_id('id_a')))
           AS predict_same,
       bool_and(cxr.attention_map(image, 3, cxr.cxr_model_digest('id_a')) = cxr.attention_map(image, 3, cxr.cxr_model_id('id_a')))
           AS attention_same
FROM id_imgs;
-- a name in quotes is still a name (an unknown literal resolves to the text overload)
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), 'id_a') = cxr.covid_predict(decode(:'xray0', 'base64'), cxr.cxr_model_id('id_a')) AS quoted_name;
-- the by-digest function is immutable: postgres_fdw may ship it
SELECT p.oid::regprocedure, p.provolatile FROM pg_proc p
WHERE p.proname IN ('covid_predict', 'attention_map', 'cxr_evaluate')
  AND 'bytea'::regtype = p.proargtypes[array_length(p.proargtypes, 1) - 1 - (p.proname = 'cxr_evaluate')::int]
ORDER BY 1;
-- bad digests
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), '\x0102'::bytea);
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), sha256('not a model'));
SELECT cxr.cxr_model_digest('no_such_model');

-- cxr_metrics against a hand-derived case: labels t t f f, probabilities .9 .4 .6 .1: one of
-- each outcome at threshold 0.5, and 3 of the 4 positive-negative pairs ordered (AUC 0.75);
-- NULLs are skipped
SELECT (cxr.cxr_metrics(l, p)).* FROM (VALUES (true, 0.9), (true, 0.4), (false, 0.6), (false, 0.1),
                                              (NULL, 0.3), (true, NULL)) v(l, p);
-- one class only: the ratios that have nothing to divide are NULL; no rows: NULL
SELECT (cxr.cxr_metrics(l, p)).* FROM (VALUES (true, 0.9), (true, 0.2)) v(l, p);
SELECT cxr.cxr_metrics(l, p) IS NULL AS empty FROM (VALUES (true, 0.9)) v(l, p) WHERE false;
SELECT cxr.cxr_metrics(true, 1.5);
SELECT cxr.cxr_metrics(true, 'NaN');
-- per group, and equal to cxr_evaluate (by digest) over the same rows
SELECT (e).n, (e).accuracy, (e).roc_auc FROM (
    SELECT cxr.cxr_metrics(label, cxr.covid_predict(image, cxr.cxr_model_digest('id_a'))) AS e
    FROM id_imgs GROUP BY id % 2 ORDER BY id % 2) s;
SELECT (SELECT cxr.cxr_metrics(label, cxr.covid_predict(image, 'id_a')) FROM id_imgs)
       IS NOT DISTINCT FROM
       (SELECT e::cxr.evaluation FROM cxr.cxr_evaluate(cxr.cxr_model_digest('id_a'), 'SELECT image, label FROM id_imgs') e)
       AS equals_cxr_evaluate;

-- cxr_model_distribute: dblink missing, unknown servers, unknown models: refused first
SELECT * FROM cxr.cxr_model_distribute('id_a', ARRAY['site_x']);
CREATE EXTENSION dblink;
SELECT * FROM cxr.cxr_model_distribute('id_a', ARRAY['site_x']);
SELECT * FROM cxr.cxr_model_distribute('no_such_model', ARRAY[]::text[]);
SELECT * FROM cxr.cxr_model_distribute('id_a', ARRAY[]::text[]);
SELECT * FROM cxr.cxr_train_federated('f', ARRAY['site_x'], 'SELECT image, label FROM id_imgs', rounds => 0);
SELECT * FROM cxr.cxr_train_federated('f', ARRAY['site_x'], 'SELECT image, label FROM id_imgs', resume => true);
SELECT * FROM cxr.cxr_train_federated('f', ARRAY['site_x'], 'SELECT image, label FROM id_imgs');
DROP EXTENSION dblink;

-- cxr_model_average: a model averaged with itself is itself, byte for byte; bad input is refused
SELECT cxr.cxr_model_average(ARRAY[w, w], ARRAY[2, 5]) = w AS same_bytes
FROM (SELECT cxr.cxr_model_export('id_a') AS w) s;
SELECT cxr.cxr_model_average(ARRAY[cxr.cxr_model_export('id_a')], ARRAY[1, 2]);
SELECT cxr.cxr_model_average(ARRAY['\x00'::bytea], ARRAY[1]);
SELECT cxr.cxr_model_average(ARRAY[cxr.cxr_model_export('id_a'), NULL], ARRAY[1, 2]);
SELECT cxr.cxr_model_drop('id_a') + cxr.cxr_model_drop('id_b') AS dropped;
