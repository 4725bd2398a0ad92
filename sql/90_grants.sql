-- Any role's DDL runs the event triggers with that role's rights: let it reach
-- the functions they call (the capture functions are SECURITY DEFINER with a
-- pinned search_path). The tables stay superuser-only.
GRANT USAGE ON SCHEMA pgfollower TO PUBLIC;
GRANT EXECUTE ON FUNCTION pgfollower.capture_ddl(text, text, text, text, boolean, boolean),
                          pgfollower.capture_drop(text, text, text, text, boolean, boolean)
    TO PUBLIC;
