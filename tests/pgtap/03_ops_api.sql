-- pgTAP tests of the operations API added in 0.2.0, run by
-- tests/integration/test_pgtap.py (pg_prove) in a fresh database with pgtap
-- and pg_follower_py installed.
--
-- Covered:
--   * pause_follow(name text DEFAULT 'default'), resume_follow(name text
--     DEFAULT 'default') and wait_for_catchup(name text DEFAULT 'default',
--     timeout interval DEFAULT '60s') exist in public with these signatures,
--     return types and languages, a fixed search_path, not SECURITY DEFINER,
--     not executable by PUBLIC (nor pgfollower.set_paused);
--   * the catalog: pgfollower.subscription.paused (default false), the
--     'paused' state allowed in subscription_status, and follow_status's new
--     columns flushed_lsn, transactions_applied, rows_applied, counters_since
--     (0, 0 and set for a new subscription);
--   * pause_follow / resume_follow set and clear the flag, show 'paused' in
--     follow_status with no worker, are idempotent (a NOTICE), and refuse an
--     unknown name with its message and SQLSTATE 42704;
--   * wait_for_catchup refuses at once: an unknown name, a paused
--     subscription, a negative timeout, an unreachable upstream (message
--     naming it), a non-superuser caller.
--
-- pg_follower_py.launch_worker is off for the whole transaction: no worker
-- process is launched; everything is rolled back.
\set ON_ERROR_STOP true

BEGIN;
SELECT plan(32);

SET LOCAL pg_follower_py.launch_worker = off;
SET LOCAL client_min_messages = warning;

------------------------------------------------------------------------------
-- Functions: signatures, languages, privileges
------------------------------------------------------------------------------
SELECT has_function('public', 'pause_follow', ARRAY['text'], 'pause_follow(text) is in public');
SELECT has_function('public', 'resume_follow', ARRAY['text'], 'resume_follow(text) is in public');
SELECT has_function('public', 'wait_for_catchup', ARRAY['text', 'interval'],
                    'wait_for_catchup(text, interval) is in public');
SELECT function_returns('public', 'pause_follow', ARRAY['text'], 'void', 'pause_follow returns void');
SELECT function_returns('public', 'resume_follow', ARRAY['text'], 'void',
                        'resume_follow returns void');
SELECT function_returns('public', 'wait_for_catchup', ARRAY['text', 'interval'], 'pg_lsn',
                        'wait_for_catchup returns the pg_lsn it waited for');
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", pg_get_function_arguments(p.oid) COLLATE "default",
             l.lanname::text COLLATE "default", p.prosecdef, p.proconfig COLLATE "default"
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'public'::regnamespace
         AND p.proname IN ('pause_follow', 'resume_follow', 'wait_for_catchup')
       ORDER BY 1$$,
    $$VALUES ('pause_follow', 'name text DEFAULT ''default''::text', 'plpgsql', false,
              ARRAY['search_path=pg_catalog, pg_temp']),
             ('resume_follow', 'name text DEFAULT ''default''::text', 'plpgsql', false,
              ARRAY['search_path=pg_catalog, pg_temp']),
             ('wait_for_catchup',
              'name text DEFAULT ''default''::text, timeout interval DEFAULT ''00:01:00''::interval',
              'plpython3u', false, ARRAY['search_path=pg_catalog, pg_temp'])$$,
    'arguments with their defaults, languages, not SECURITY DEFINER, a fixed search_path');
SELECT ok(NOT has_function_privilege('public', 'public.pause_follow(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'public.resume_follow(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'public.wait_for_catchup(text, interval)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'pgfollower.set_paused(text, boolean)', 'EXECUTE'),
          'PUBLIC cannot execute pause_follow, resume_follow, wait_for_catchup, set_paused');

------------------------------------------------------------------------------
-- Catalog
------------------------------------------------------------------------------
SELECT col_type_is('pgfollower', 'subscription', 'paused', 'boolean', 'subscription.paused is boolean');
SELECT col_not_null('pgfollower', 'subscription', 'paused', 'subscription.paused is NOT NULL');
SELECT col_default_is('pgfollower', 'subscription', 'paused', 'false',
                      'subscription.paused defaults to false');
SELECT set_has(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod)
        FROM pg_attribute
       WHERE attrelid = 'public.follow_status'::regclass AND attnum > 0 AND NOT attisdropped$$,
    $$VALUES ('flushed_lsn', 'pg_lsn'), ('transactions_applied', 'bigint'),
             ('rows_applied', 'bigint'), ('counters_since', 'timestamp with time zone')$$,
    'follow_status has flushed_lsn and the counters');
SELECT lives_ok($$SELECT start_follow('host=/nonexistent port=1 dbname=up', 'p', false)$$,
                'a subscription to pause');
SELECT results_eq(
    $$SELECT transactions_applied, rows_applied, counters_since IS NOT NULL, flushed_lsn
        FROM follow_status WHERE name = 'p'$$,
    $$VALUES (0::bigint, 0::bigint, true, NULL::pg_lsn)$$,
    'a new subscription has counted nothing since now, and flushed nothing');
SELECT lives_ok($$UPDATE pgfollower.subscription_status SET state = 'paused'$$,
                'subscription_status accepts the state paused');
SELECT throws_ok($$UPDATE pgfollower.subscription_status SET state = 'sleeping'$$, '23514', NULL,
                 'subscription_status refuses an unknown state');
UPDATE pgfollower.subscription_status SET state = 'starting';

------------------------------------------------------------------------------
-- pause_follow / resume_follow
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT pause_follow('nope')$$, '42704',
    'pg_follower_py: there is no subscription named ''nope''',
    'pause_follow of an unknown name is refused');
SELECT throws_ok($$SELECT resume_follow('nope')$$, '42704',
    'pg_follower_py: there is no subscription named ''nope''',
    'resume_follow of an unknown name is refused');
SELECT lives_ok($$SELECT pause_follow('p')$$, 'pause_follow(name) works');
SELECT is((SELECT paused FROM pgfollower.subscription WHERE name = 'p'), true,
          'pause_follow set the flag');
SELECT is((SELECT state FROM follow_status WHERE name = 'p'), 'paused',
          'with no worker, follow_status shows paused');
SELECT lives_ok($$SELECT pause_follow('p')$$, 'pausing a paused subscription is a NOTICE only');
SELECT throws_ok($$SELECT wait_for_catchup('p', '30s')$$, NULL,
    'plpy.Error: subscription "p" is paused: it does not catch up until it is resumed',
    'wait_for_catchup refuses a paused subscription at once');
SELECT lives_ok($$SELECT resume_follow('p')$$, 'resume_follow(name) works');
SELECT is((SELECT paused FROM pgfollower.subscription WHERE name = 'p'), false,
          'resume_follow cleared the flag');
SELECT is((SELECT state FROM follow_status WHERE name = 'p'), 'starting',
          'resumed, a young subscription with no worker shows starting again');
SELECT lives_ok($$SELECT resume_follow('p')$$, 'resuming a running subscription is a NOTICE only');

------------------------------------------------------------------------------
-- wait_for_catchup refusals
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT wait_for_catchup('nope')$$, NULL,
    'plpy.Error: subscription "nope" does not exist',
    'wait_for_catchup of an unknown name is refused');
SELECT throws_ok($$SELECT wait_for_catchup('p', '-1s')$$, NULL,
    'plpy.Error: invalid timeout ''-00:00:01'' for wait_for_catchup',
    'a negative timeout is refused');
SELECT throws_like($$SELECT wait_for_catchup('p', '1s')$$,
    'plpy.Error: cannot read the WAL position of the upstream (dbname=up host=/nonexistent port=1): %',
    'an unreachable upstream is an error naming it');

CREATE ROLE pgf_tap_ops_user;
SET LOCAL ROLE pgf_tap_ops_user;
SELECT throws_ok($$SELECT wait_for_catchup('p')$$, '42501',
    'permission denied for function wait_for_catchup',
    'a non-superuser cannot call wait_for_catchup');
SELECT throws_ok($$SELECT pause_follow('p')$$, '42501',
    'permission denied for function pause_follow',
    'a non-superuser cannot call pause_follow');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
