-- What the worker last reported for each subscription. Written by the
-- worker about once a second; not dumped (it describes this server's worker).
CREATE TABLE pgfollower.subscription_status (
    sub_id          integer PRIMARY KEY
                    REFERENCES pgfollower.subscription (id) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'starting'
                    CHECK (state IN ('starting', 'copying', 'streaming', 'paused', 'error',
                                     'stopped')),
    received_lsn    pg_lsn,
    applied_lsn     pg_lsn,
    upstream_lsn    pg_lsn,
    lag_seconds     double precision,
    last_error      text,
    last_error_at   timestamptz,
    error_lsn       pg_lsn,
    error_statement text,
    tables_copied   integer NOT NULL DEFAULT 0,
    tables_total    integer,
    rows_copied     bigint NOT NULL DEFAULT 0,
    rows_total      bigint,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- everything below it is applied and flushed downstream (what the slot is told)
    flushed_lsn     pg_lsn,
    -- applied since counters_since, across worker restarts (added at each status write)
    transactions_applied bigint NOT NULL DEFAULT 0,
    rows_applied    bigint NOT NULL DEFAULT 0,
    counters_since  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgfollower.subscription_status FROM PUBLIC;
