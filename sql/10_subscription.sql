-- One row per subscription of this (downstream) database. The conninfo may
-- hold a password: the table is superuser-only and kept by pg_dump.
CREATE TABLE pgfollower.subscription (
    id          serial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 63),
    conninfo    text NOT NULL,
    upstream    text NOT NULL,  -- conninfo with passwords removed, for display
    slot_name   text NOT NULL UNIQUE,
    origin_name text NOT NULL UNIQUE,
    copy_data   boolean NOT NULL,
    skip_lsn    pg_lsn,  -- skip_transaction(): commit LSN of the one transaction to skip
    created_at  timestamptz NOT NULL DEFAULT now(),
    paused      boolean NOT NULL DEFAULT false  -- pause_follow(): the worker applies nothing
);
REVOKE ALL ON pgfollower.subscription FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('pgfollower.subscription', '');
SELECT pg_catalog.pg_extension_config_dump('pgfollower.subscription_id_seq', '');
