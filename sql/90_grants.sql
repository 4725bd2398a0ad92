-- Any role's DDL runs the event triggers with that role's rights: let it reach
-- the functions they call (the writers are SECURITY DEFINER with a pinned
-- search_path and read what they queue from the event trigger itself). The
-- tables, the deparser and enqueue() stay superuser-only.
GRANT USAGE ON SCHEMA pgfollower TO PUBLIC;
GRANT EXECUTE ON PROCEDURE pgfollower.queue_ddl(text, text, text, boolean),
                           pgfollower.queue_drop(text, text, text, boolean)
    TO PUBLIC;
