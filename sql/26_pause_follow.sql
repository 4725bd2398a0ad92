-- Pause and resume a subscription. Paused, the worker applies nothing and
-- keeps no stream open, but the upstream slot stays: the upstream retains
-- WAL from the slot's position until resume_follow (watch its disk). The
-- flag lives in the subscription row, so a pause survives worker restarts.
CREATE FUNCTION pgfollower.set_paused(p_name text, p_paused boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was boolean;
BEGIN
    -- NO KEY UPDATE: the worker's FOR KEY SHARE SKIP LOCKED still sees the row
    SELECT s.paused INTO v_was
      FROM pgfollower.subscription s
     WHERE s.name = p_name
       FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pg_follower_py: there is no subscription named %', quote_literal(p_name)
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM follow_status lists the subscriptions.';
    END IF;
    IF v_was = p_paused THEN
        RAISE NOTICE 'pg_follower_py: subscription % is already %', quote_literal(p_name),
                     CASE WHEN p_paused THEN 'paused' ELSE 'not paused' END;
        RETURN;
    END IF;
    UPDATE pgfollower.subscription SET paused = p_paused WHERE name = p_name;
    -- the worker looks at the subscriptions again when this commits
    PERFORM pg_notify('pg_follower_py', CASE WHEN p_paused THEN 'pause' ELSE 'resume' END);
    IF p_paused THEN
        RAISE NOTICE 'pg_follower_py: subscription % is paused', quote_literal(p_name)
            USING DETAIL = 'Nothing is applied until resume_follow; the upstream keeps WAL for its slot meanwhile.',
                  HINT = 'follow_status.state shows ''paused'' once the worker has stopped applying.';
    END IF;
END
$$;
REVOKE ALL ON FUNCTION pgfollower.set_paused(text, boolean) FROM PUBLIC;

CREATE FUNCTION @extschema@.pause_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- mark the subscription paused; the worker stops applying within a second
    PERFORM pgfollower.set_paused(pause_follow.name, true);
END
$$;
COMMENT ON FUNCTION @extschema@.pause_follow(text) IS
    'Stop applying the subscription''s changes, keeping its upstream slot (which retains WAL) until resume_follow';
REVOKE ALL ON FUNCTION @extschema@.pause_follow(text) FROM PUBLIC;

CREATE FUNCTION @extschema@.resume_follow(name text DEFAULT 'default') RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- clear the pause; the worker streams again from where it stopped
    PERFORM pgfollower.set_paused(resume_follow.name, false);
END
$$;
COMMENT ON FUNCTION @extschema@.resume_follow(text) IS
    'Apply the subscription''s changes again after pause_follow, from where it stopped';
REVOKE ALL ON FUNCTION @extschema@.resume_follow(text) FROM PUBLIC;
