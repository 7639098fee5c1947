-- Until a trained default model ships, nothing pretends to be one.
SELECT count(*) AS registered_models FROM cxr.models;
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea);
SELECT cxr.attention_map('\x89504e470d0a1a0a'::bytea, 4);
SELECT cxr.cxr_model_export('default') IS NULL AS nothing_to_export;
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea, 'no_such_model');
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea, 12345::bigint);
