-- Who may do what: scoring needs only SELECT; writers may only touch names they own.
\set model_b64 `base64 -w0 test/bin/random_attn2.safetensors`
\set xray0 `base64 -w0 test/data/xray0.png`
CREATE ROLE cxr_alice;
CREATE ROLE cxr_bob;
CREATE ROLE cxr_reader;
GRANT SELECT ON cxr.models, cxr.deployments, cxr.current_models, cxr.model_list
    TO cxr_alice, cxr_bob, cxr_reader;
GRANT INSERT, DELETE ON cxr.models, cxr.deployments TO cxr_alice, cxr_bob;

SET ROLE cxr_alice;
SELECT cxr.cxr_model_import('alice_model', decode(:'model_b64', 'base64')) > 0 AS imported;
RESET ROLE;

SET ROLE cxr_bob;
-- bob can ask before long work: alice's name is not his to write, a new name is
SELECT cxr.cxr_model_name_writable('alice_model') AS alice_name, cxr.cxr_model_name_writable('bob_new') AS new_name;
-- bob cannot replace, repoint or drop alice's model ...
SELECT cxr.cxr_model_import('alice_model', decode(:'model_b64', 'base64'));
SELECT cxr.cxr_model_deploy('alice_model', (SELECT min(id) FROM cxr.models));
SELECT cxr.cxr_model_drop('alice_model');
-- ... nor go around the functions
DELETE FROM cxr.models WHERE name = 'alice_model';
INSERT INTO cxr.models (name, arch, metadata, weights, owner)
VALUES ('alice_model', 'x', '{}', '\x00', 'cxr_alice');
-- but he can score with it, and keep models of his own
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), 'alice_model') BETWEEN 0 AND 1 AS scored;
SELECT cxr.cxr_model_import('bob_model', decode(:'model_b64', 'base64')) > 0 AS imported;
SELECT cxr.cxr_model_drop('bob_model');
RESET ROLE;

SET ROLE cxr_reader;
-- a reader scores and lists, but writes nothing
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), 'alice_model') BETWEEN 0 AND 1 AS scored;
SELECT name, owner FROM cxr.model_list WHERE name = 'alice_model';
SELECT cxr.cxr_model_import('reader_model', decode(:'model_b64', 'base64'));
RESET ROLE;

-- a role with no grants cannot even read the weights
CREATE ROLE cxr_nobody;
SET ROLE cxr_nobody;
SELECT cxr.covid_predict(decode(:'xray0', 'base64'), 'alice_model');
RESET ROLE;

-- alice can drop her own
SET ROLE cxr_alice;
SELECT cxr.cxr_model_drop('alice_model');
RESET ROLE;
DROP ROLE cxr_nobody;
REVOKE ALL ON cxr.models, cxr.deployments, cxr.current_models, cxr.model_list
    FROM cxr_alice, cxr_bob, cxr_reader;
DROP ROLE cxr_alice;
DROP ROLE cxr_bob;
DROP ROLE cxr_reader;
