-- The operator's way past an apply error: skip exactly the failing upstream
-- transaction, named by the commit LSN follow_status shows in error_lsn, and
-- only while it is failing. Its changes are then missing downstream.
CREATE FUNCTION @extschema@.skip_transaction(lsn pg_lsn, name text DEFAULT 'default')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sub record;
BEGIN
    -- NO KEY UPDATE: the worker's FOR KEY SHARE SKIP LOCKED still sees the row
    SELECT s.id, st.state, st.error_lsn
      INTO sub
      FROM pgfollower.subscription s
      LEFT JOIN pgfollower.subscription_status st ON st.sub_id = s.id
     WHERE s.name = skip_transaction.name
       FOR NO KEY UPDATE OF s;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_follower_py: there is no subscription named %', quote_literal(name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM follow_status lists the subscriptions.';
    END IF;
    IF lsn IS NULL THEN
        RAISE EXCEPTION 'pg_follower_py: the LSN of the transaction to skip is NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass error_lsn from follow_status.';
    END IF;
    IF sub.state IS DISTINCT FROM 'error' OR sub.error_lsn IS NULL THEN
        RAISE EXCEPTION 'pg_follower_py: subscription % has no failing transaction to skip',
                        quote_literal(name)
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'skip_transaction only skips the transaction shown in follow_status.error_lsn while the state is ''error''.';
    END IF;
    IF sub.error_lsn <> lsn THEN
        RAISE EXCEPTION 'pg_follower_py: subscription % is failing at %, not at %',
                        quote_literal(name), sub.error_lsn, lsn
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('To skip the failing transaction: SELECT skip_transaction(%L, %L);',
                                sub.error_lsn, name);
    END IF;
    UPDATE pgfollower.subscription SET skip_lsn = lsn WHERE id = sub.id;
    PERFORM pg_notify('pg_follower_py', 'skip');
    RAISE NOTICE 'pg_follower_py: subscription % will skip the upstream transaction committed at %',
                 quote_literal(name), lsn
        USING DETAIL = 'Its changes will be missing downstream.';
END
$$;
COMMENT ON FUNCTION @extschema@.skip_transaction(pg_lsn, text) IS
    'Skip the one failing upstream transaction at lsn (follow_status.error_lsn); its changes are lost downstream';
REVOKE ALL ON FUNCTION @extschema@.skip_transaction(pg_lsn, text) FROM PUBLIC;
