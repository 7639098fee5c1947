-- cxr_attn 0.1.0 -> 0.2.0: resumable training runs (cxr_train's resume argument).
\echo Use "ALTER EXTENSION cxr_attn UPDATE TO '0.2.0'" to load this file. \quit

-- The state of a cxr_train run after its last epoch (weights, Adam's moments, progress), kept
-- so that cxr_train(..., init_model => name, resume => true) continues the run exactly.
CREATE TABLE training_states (
    model_id    bigint PRIMARY KEY REFERENCES models (id) ON DELETE CASCADE,
    state       bytea NOT NULL
);
ALTER TABLE training_states ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_states_read ON training_states FOR SELECT USING (true);
CREATE POLICY training_states_insert ON training_states FOR INSERT
    WITH CHECK (EXISTS (SELECT 1 FROM @extschema@.models m WHERE m.id = model_id
                        AND pg_has_role(current_user, m.owner, 'MEMBER')));
REVOKE ALL ON training_states FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('training_states', '');

-- Roles that could store and read training histories keep training: they get the same
-- privileges on the new table (cxr_train now stores a state beside each model).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT a.privilege_type, g.rolname
             FROM pg_class c, aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = a.grantee
             WHERE c.oid = '@extschema@.training_history'::regclass
               AND a.grantee <> c.relowner AND a.privilege_type IN ('SELECT', 'INSERT')
    LOOP
        EXECUTE format('GRANT %s ON @extschema@.training_states TO %I', r.privilege_type, r.rolname);
    END LOOP;
END $$;

CREATE OR REPLACE VIEW model_list AS
SELECT m.id, m.name, m.arch, m.metadata ->> 'attention_score' AS attention_score, m.metrics,
       m.owner, m.created_at, length(m.weights) AS bytes,
       EXISTS (SELECT 1 FROM current_models c WHERE c.model_id = m.id) AS deployed,
       EXISTS (SELECT 1 FROM training_states s WHERE s.model_id = m.id) AS resumable
FROM models m ORDER BY m.id;

DROP FUNCTION cxr_train(text, text, text, text, int, int, float8, boolean, int, boolean, text, text);
CREATE FUNCTION cxr_train(name text, training_query text, arch text DEFAULT 'alexnet_attn2',
                          validation_query text DEFAULT NULL, epochs int DEFAULT 10,
                          batch_size int DEFAULT 64, learning_rate float8 DEFAULT 1e-4,
                          augment boolean DEFAULT true, seed int DEFAULT 1,
                          deploy boolean DEFAULT true, init_model text DEFAULT NULL,
                          attention_score text DEFAULT 'scaled_dot', resume boolean DEFAULT false,
                          OUT epoch int, OUT train_loss float8, OUT train_accuracy float8,
                          OUT val_loss float8, OUT val_accuracy float8, OUT seconds float8)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'cxr_train' LANGUAGE C VOLATILE;

DROP FUNCTION cxr_store_trained(text, bytea, boolean, jsonb, jsonb);
-- Stores a model row for cxr_train (validated like an import) with its history and the run's
-- state; a resumed run's history starts with the rows of the model it resumed.
CREATE FUNCTION cxr_store_trained(name text, weights bytea, deploy boolean, metrics jsonb,
                                  history jsonb, state bytea, resumed_from bigint) RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    new_id bigint;
BEGIN
    new_id := @extschema@.cxr_model_import(name, weights, deploy, metrics);
    INSERT INTO @extschema@.training_history
    SELECT new_id, h.epoch, h.train_loss, h.train_accuracy, h.val_loss, h.val_accuracy, h.seconds
    FROM @extschema@.training_history h WHERE h.model_id = resumed_from;
    INSERT INTO @extschema@.training_states VALUES (new_id, state);
    INSERT INTO @extschema@.training_history
    SELECT new_id, (h ->> 'epoch')::int, (h ->> 'train_loss')::float8,
           (h ->> 'train_accuracy')::float8, (h ->> 'val_loss')::float8,
           (h ->> 'val_accuracy')::float8, (h ->> 'seconds')::float8
    FROM jsonb_array_elements(history) h;
    RETURN new_id;
END $$;
