-- CREATE EXTENSION registered the shipped default model (weights/MODEL_CARD.md), owned by the
-- installing role, and nothing else.
SELECT name, arch, attention_score, metrics->>'shipped' AS shipped FROM cxr.model_list;
\set shipped_b64 `base64 -w0 weights/cxr_attn_default.safetensors`
SELECT cxr.cxr_model_export('default') = decode(:'shipped_b64', 'base64') AS same_bytes_as_weights;
-- it scores and explains with the default arguments
\set xray1 `base64 -w0 test/data/xray1.png`
SELECT cxr.covid_predict(decode(:'xray1', 'base64')) BETWEEN 0 AND 1 AS probability,
       array_dims(cxr.attention_map(decode(:'xray1', 'base64'), 3)) AS layer3,
       array_dims(cxr.attention_map(decode(:'xray1', 'base64'), 4)) AS layer4;
-- without a default model, the calls that rely on it fail clearly
SELECT cxr.cxr_model_drop('default');
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea);
SELECT cxr.attention_map('\x89504e470d0a1a0a'::bytea, 4);
SELECT cxr.cxr_model_export('default');
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea, 'no_such_model');
SELECT cxr.covid_predict('\x89504e470d0a1a0a'::bytea, 12345::bigint);
