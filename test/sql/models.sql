-- Registry, scoring and attention with a random (untrained) model written by the core library.
\set xray0 `base64 -w0 test/data/xray0.png`
\set xray1 `base64 -w0 test/data/xray1.png`
\set xray2 `base64 -w0 test/data/xray2.png`
\set xray3 `base64 -w0 test/data/xray3.png`
\set model_b64 `base64 -w0 test/bin/random_attn2.safetensors`
\set want `test/bin/cxr_cli predict test/bin/random_attn2.safetensors test/data/xray0.png test/data/xray1.png test/data/xray2.png test/data/xray3.png | paste -sd,`
\set want_map `test/bin/cxr_cli attention test/bin/random_attn2.safetensors test/data/xray1.png 3 | tr ' \n' ',,' | sed 's/,$//'`
CREATE TABLE scans (id int PRIMARY KEY, image cxr.cxr_image);
INSERT INTO scans VALUES
    (0, decode(:'xray0', 'base64')), (1, decode(:'xray1', 'base64')),
    (2, decode(:'xray2', 'base64')), (3, decode(:'xray3', 'base64'));

-- import validates the file fully before storing
SELECT cxr.cxr_model_import('random', '\x00'::bytea);
SELECT cxr.cxr_model_import('random', substring(decode(:'model_b64', 'base64') from 1 for 5000));
SELECT cxr.cxr_model_import('random', decode(:'model_b64', 'base64')) AS random_id \gset
SELECT name, arch, attention_score, deployed, bytes = length(decode(:'model_b64', 'base64')) AS whole
FROM cxr.model_list WHERE name <> 'default';
SELECT metadata FROM cxr.models WHERE id = :random_id;

-- rows are immutable
UPDATE cxr.models SET name = 'other';

-- predictions equal the core library's on the same PNGs
SELECT s.id, abs(cxr.covid_predict(s.image, 'random') - w.p) < 1e-6 AS equals_core
FROM scans s JOIN unnest(string_to_array(:'want', ',')::float8[]) WITH ORDINALITY AS w(p, n)
     ON w.n = s.id + 1
ORDER BY s.id;
-- by name (STABLE) and by id (IMMUTABLE) agree, and a probability is a probability
SELECT bool_and(cxr.covid_predict(image, 'random') = cxr.covid_predict(image, :random_id::bigint))
           AS same,
       bool_and(cxr.covid_predict(image, 'random') BETWEEN 0 AND 1) AS in_range
FROM scans;

-- the by-id form can back an index and a generated column
CREATE TABLE scored (image bytea,
                     p float8 GENERATED ALWAYS AS (cxr.covid_predict(image, :random_id::bigint)) STORED);
INSERT INTO scored SELECT image FROM scans;
CREATE INDEX ON scans ((cxr.covid_predict(image, :random_id::bigint)));
SELECT count(*) FROM scored s JOIN scans t ON s.p = cxr.covid_predict(t.image, 'random');

-- attention maps: the layer's grid, summing to 1, equal to the core library's
SELECT layer, array_dims(cxr.attention_map(image, layer, 'random')) AS dims,
       abs((SELECT sum(a) FROM unnest(cxr.attention_map(image, layer, 'random')) a) - 1) < 1e-5
           AS sums_to_one
FROM scans, (VALUES (3), (4)) l(layer) WHERE id = 1 ORDER BY layer;
SELECT (SELECT max(abs(a - b)) FROM unnest(cxr.attention_map(image, 3, 'random'),
                                           string_to_array(:'want_map', ',')::real[]) t(a, b)) < 1e-6
           AS map_equals_core
FROM scans WHERE id = 1;
SELECT cxr.attention_map(image, 2, 'random') FROM scans WHERE id = 0;
SELECT cxr.attention_map(image, 9, 'random') FROM scans WHERE id = 0;

-- the overlay is an RGB PNG at the X-ray's own width, the X-ray above a band with the colour
-- scale (25 rows at these widths) and, when asked, two caption lines (12 rows each)
SELECT (cxr.cxr_image_info(image)).width AS xray_width, (cxr.cxr_image_info(image)).height AS xray_height,
       (cxr.cxr_image_info(cxr.attention_overlay(image, 4, 'random'))).*,
       (cxr.cxr_image_info(cxr.attention_overlay(image, 4, 'random', caption => true))).height AS with_caption
FROM scans WHERE id = 2;
SELECT cxr.attention_overlay(image, 4, 'random') = cxr.attention_overlay(image, 4, :random_id::bigint)
       AS by_id_equals_by_name
FROM scans WHERE id = 2;

-- images smaller or thinner than the attention grid still give maps and overlays
SELECT kind, array_dims(cxr.attention_map(img, 3, 'random')) AS map,
       (cxr.cxr_image_info(img)).width AS width, (cxr.cxr_image_info(img)).height AS height,
       (cxr.cxr_image_info(cxr.attention_overlay(img, 3, 'random'))).width AS overlay_width,
       (cxr.cxr_image_info(cxr.attention_overlay(img, 3, 'random'))).height AS overlay_height
FROM png_cases WHERE kind IN ('gray8_1x1', 'gray8_40x1', 'gray8_1x40', 'gray1') ORDER BY kind;

-- a figure: a row per X-ray (the X-ray, then each of the model's 2 attention layers); at 128
-- pixels a panel the layout (src/core/cxr_draw.h) gives 2*4 + 3*128 + 2*4 = 400 pixels across
-- and 4 + 13 + 2*(11 + 128) + 4 + 25 = 324 down for two X-rays
SELECT (cxr.cxr_image_info(cxr.attention_figure(array_agg(image ORDER BY id), array['first', NULL],
                                                'random', 128))).*
FROM scans WHERE id < 2;
SELECT (cxr.cxr_image_info(cxr.attention_figure(array_agg(image ORDER BY id), NULL, :random_id::bigint, 128))).width
       AS by_id_width
FROM scans WHERE id < 2;
-- what a figure refuses, before decoding anything
SELECT cxr.attention_figure('{}'::bytea[]);
SELECT cxr.attention_figure(array[NULL::bytea]);
SELECT cxr.attention_figure(array_agg(image), array['a', 'b', 'c']) FROM scans WHERE id < 2;
SELECT cxr.attention_figure(array_agg(image), NULL, 'random', 16) FROM scans WHERE id < 2;
SELECT cxr.attention_figure(array_agg(image), NULL, 'random', NULL) FROM scans WHERE id < 2;
SELECT cxr.attention_figure(array_fill('\x00'::bytea, array[65]));
SET cxr_attn.max_image_pixels = 100000;
SELECT cxr.attention_figure(array_agg(image), NULL, 'random', 299) FROM scans;
RESET cxr_attn.max_image_pixels;
SELECT cxr.attention_figure(array['\x00'::bytea], NULL, 'random', 128);

-- export gives back the exact bytes; they import and predict identically
SELECT cxr.cxr_model_export('random') = decode(:'model_b64', 'base64') AS exact_bytes;
SELECT cxr.cxr_model_import('random_copy', cxr.cxr_model_export('random')) AS copy_id \gset
SELECT bool_and(cxr.covid_predict(image, 'random_copy') = cxr.covid_predict(image, 'random'))
           AS identical
FROM scans;

-- pointing a name elsewhere is seen at once (the model cache is invalidated)
\set other_b64 `test/bin/cxr_cli init alexnet_attn1 dot 99 /dev/stdout | base64 -w0`
SELECT cxr.covid_predict(image, 'random') AS before FROM scans WHERE id = 0 \gset
SELECT cxr.cxr_model_import('random', decode(:'other_b64', 'base64')) > 0 AS redeployed;
SELECT name, arch FROM cxr.current_models WHERE name <> 'default' ORDER BY name;
SELECT cxr.covid_predict(image, 'random') <> :before AS changed,
       array_dims(cxr.attention_map(image, 4, 'random')) AS attn1_dims
FROM scans WHERE id = 0;
SELECT cxr.attention_map(image, 3, 'random') FROM scans WHERE id = 0;
-- old rows stay: deploy the first one again
SELECT cxr.cxr_model_deploy('random', :random_id);
SELECT cxr.covid_predict(image, 'random') = :before AS rolled_back FROM scans WHERE id = 0;
SELECT name, count(*) AS rows FROM cxr.models WHERE name <> 'default' GROUP BY name ORDER BY name;

-- dropping removes every row of the name
SELECT cxr.cxr_model_drop('random_copy');
SELECT cxr.covid_predict(image, 'random_copy') FROM scans WHERE id = 0;
\set VERBOSITY sqlstate
SELECT cxr.covid_predict(image, :copy_id::bigint) FROM scans WHERE id = 0;
\set VERBOSITY default
SELECT cxr.cxr_model_drop('random_copy');

-- bad images through the scoring functions
SELECT cxr.covid_predict('\x00'::bytea, 'random');
SELECT cxr.attention_overlay('\x89504e470d0a1a0a0000'::bytea, 4, 'random');

-- scoring costs what it costs (bench/function_costs.sh): under a LIMIT, the planner scores only
-- the rows the LIMIT keeps (the Sort below does not compute covid_predict)
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id, cxr.covid_predict(image, 'random') FROM scans ORDER BY md5(image) LIMIT 2;

-- A table of X-rays is small on disk (its images live in TOAST), below
-- min_parallel_table_scan_size, so costs alone never get it workers: the table's
-- parallel_workers setting does (README, "Scoring in parallel").
CREATE TABLE many_scans AS SELECT s.id, s.image FROM scans s, generate_series(1, 25);
ALTER TABLE many_scans SET (parallel_workers = 2);
ANALYZE many_scans;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(cxr.covid_predict(image, 'random')) FROM many_scans;
-- and the workers' scores are the scores
SELECT count(*) AS rows, bool_and(m.p = s.p) AS same_scores
FROM (SELECT id, cxr.covid_predict(image, 'random') AS p FROM many_scans) m
JOIN (SELECT id, cxr.covid_predict(image, 'random') AS p FROM scans) s USING (id);
DROP TABLE many_scans;

-- a name always resolves or says why: stored but not deployed (with the ids), or unknown
SELECT cxr.cxr_model_import('undeployed', decode(:'model_b64', 'base64'), deploy => false) AS undeployed_id \gset
SELECT cxr.covid_predict(image, 'undeployed') FROM scans WHERE id = 0;
SELECT cxr.cxr_model_export('undeployed');
SELECT * FROM cxr.cxr_evaluate('undeployed', 'SELECT image, id % 2 = 0 FROM scans');
SELECT cxr.cxr_model_id('never_stored');
SELECT cxr.cxr_model_export(-1::bigint);
-- every function that takes a model name also takes a row id: such a row is reachable
SELECT cxr.cxr_model_export(:undeployed_id::bigint) = decode(:'model_b64', 'base64') AS export_by_id;
SELECT n = (SELECT count(*) FROM scans) AS all_rows,
       true_positive + false_negative = (SELECT count(*) FROM scans WHERE id % 2 = 0) AS positives
FROM cxr.cxr_evaluate(:undeployed_id::bigint, 'SELECT image, id % 2 = 0 FROM scans');
-- the id is the name's for the IMMUTABLE by-id functions, and deploying makes the name work
SELECT cxr.cxr_model_deploy('undeployed', :undeployed_id);
SELECT cxr.cxr_model_id('undeployed') = :undeployed_id AS id_of_name,
       cxr.covid_predict(image, 'undeployed') = cxr.covid_predict(image, :undeployed_id::bigint) AS same
FROM scans WHERE id = 0;
SELECT (SELECT e FROM cxr.cxr_evaluate('undeployed', 'SELECT image, id % 2 = 0 FROM scans') e)
     = (SELECT e FROM cxr.cxr_evaluate(:undeployed_id::bigint, 'SELECT image, id % 2 = 0 FROM scans') e)
       AS evaluate_by_name_equals_by_id;
SELECT cxr.cxr_model_drop('undeployed');

-- kernels report (varies by machine: only its shape is checked)
SELECT cxr.cxr_kernels() ~ 'self-test passed|portable built-in' AS kernels_reported;
