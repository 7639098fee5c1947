-- cxr_attn 0.6.0 -> 0.7.0: batch scoring. covid_predict_batch scores the (key, image) rows of
-- a query in batches (the core runs many images through each layer at once; a network's fully
-- connected layers read their weights once per batch), each probability equal, bit for bit, to
-- covid_predict's.
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.7.0'" to load this file. \quit

-- Scoring a query's rows in batches (0.7.0): the core runs many images through each layer at
-- once, and each probability equals covid_predict's for the same image, bit for bit. The query
-- returns (key, image); the key comes back as text, in the query's order.
CREATE FUNCTION covid_predict_batch(query text, model text DEFAULT 'default',
                                    batch_size int DEFAULT 32)
    RETURNS TABLE (key text, probability double precision)
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_batch_by_name' LANGUAGE C VOLATILE STRICT
    COST 2900000 ROWS 1000;
COMMENT ON FUNCTION covid_predict_batch(text, text, int) IS
    'scores the (key, image) rows of a query in batches, by model name: the same probabilities as covid_predict, in the query''s order';
CREATE FUNCTION covid_predict_batch(query text, model_id bigint, batch_size int DEFAULT 32)
    RETURNS TABLE (key text, probability double precision)
    AS 'MODULE_PATHNAME', 'cxr_covid_predict_batch_by_id' LANGUAGE C VOLATILE STRICT
    COST 2900000 ROWS 1000;
COMMENT ON FUNCTION covid_predict_batch(text, bigint, int) IS
    'scores the (key, image) rows of a query in batches, by model row: the same probabilities as covid_predict, in the query''s order';
