-- pgTAP tests of pg_follower_py's SQL API, run by tests/integration/test_pgtap.py
-- (pg_prove) in a fresh database with pgtap and pg_follower_py installed.
--
-- Covered:
--   * start_follow(conninfo text, name text DEFAULT 'default', copy_data boolean
--     DEFAULT true), stop_follow(name text DEFAULT 'default') and
--     start_follow_worker() exist in the extension schema (public) with these
--     signatures, defaults, return types and language, run with a fixed
--     search_path, are not executable by PUBLIC, and are callable unqualified;
--   * the follow_status view has the SPEC columns with their types (applied_lsn
--     and received_lsn are pg_lsn), is readable by pg_monitor but not by PUBLIC,
--     and shows 'starting' for a new subscription, then 'stopped' with a hint
--     in last_error once it is 15 s old with no worker;
--   * the pgfollower schema, its tables and start_follow/stop_follow are not
--     usable by a non-superuser (42501); nor are pgfollower.ddl_queue, the
--     deparser (capture_ddl/capture_drop) and enqueue(); the SECURITY DEFINER
--     writers queue_ddl/queue_drop (procedures, CALLed by the triggers), which
--     PUBLIC may execute, refuse to work outside an event trigger; nor are
--     trigger_frames() and not_called_by_trigger(); there is no emit() (no DDL
--     messages);
--   * start_follow refuses, with its exact message and before storing or
--     numbering anything: malformed conninfos (key/value and URI), an empty or
--     NULL conninfo, an empty, blank, NULL or too long name, a conninfo that sets
--     replication (key/value and URI), a duplicate name;
--   * a successful start_follow stores the subscription, its status row, its
--     slot and origin names and creates its replication origin; passwords
--     (password, sslpassword, key/value or URI) are absent from
--     follow_status.upstream but kept in the superuser-only conninfo;
--   * stop_follow of an unknown name refuses with its exact message; stop_follow()
--     removes the subscription, its status and its origin (the upstream slot
--     cannot be dropped here: that is only a WARNING);
--   * pgfollower.subscription and its sequence, and nothing else, are
--     registered with pg_extension_config_dump.
--
-- Known bug, as a TODO test (it fails without failing the run): a pg_monitor
-- member cannot SELECT * FROM follow_status once a subscription exists, since
-- the view calls pgfollower.worker_pid(), which reads the pgfollower schema
-- with the caller's rights.
--
-- pg_follower_py.launch_worker is off for the whole transaction: a successful
-- start_follow would otherwise launch a worker process that outlives it. The
-- replication origins start_follow creates are transactional and rolled back.
-- PL/Python reports plpy.error(msg) as "plpy.Error: msg" (SQLSTATE XX000); the
-- messages below are what a client sees.
\set ON_ERROR_STOP true

BEGIN;
SELECT plan(81);

SET LOCAL pg_follower_py.launch_worker = off;
SET LOCAL client_min_messages = warning;

-- The sequence must not move when start_follow refuses: it numbers nothing
-- before validating.
SELECT (last_value, is_called)::text AS seq_before FROM pgfollower.subscription_id_seq \gset

------------------------------------------------------------------------------
-- Functions: existence, signatures, defaults, privileges
------------------------------------------------------------------------------
SELECT has_function('public', 'start_follow', ARRAY['text', 'text', 'boolean'],
                    'start_follow(text, text, boolean) is in public');
SELECT function_returns('public', 'start_follow', ARRAY['text', 'text', 'boolean'], 'void',
                        'start_follow returns void');
SELECT is(pg_get_function_arguments('public.start_follow(text, text, boolean)'::regprocedure),
          $$conninfo text, name text DEFAULT 'default'::text, copy_data boolean DEFAULT true$$,
          'start_follow arguments: conninfo, name DEFAULT ''default'', copy_data DEFAULT true');
SELECT has_function('public', 'stop_follow', ARRAY['text'], 'stop_follow(text) is in public');
SELECT function_returns('public', 'stop_follow', ARRAY['text'], 'void', 'stop_follow returns void');
SELECT is(pg_get_function_arguments('public.stop_follow(text)'::regprocedure),
          $$name text DEFAULT 'default'::text$$,
          'stop_follow argument: name DEFAULT ''default''');
SELECT has_function('public', 'start_follow_worker', ARRAY[]::name[],
                    'start_follow_worker() is in public');
SELECT function_returns('public', 'start_follow_worker', ARRAY[]::name[], 'integer',
                        'start_follow_worker returns integer (the worker''s pid)');
SELECT is((SELECT count(*)::int FROM pg_proc
            WHERE proname IN ('start_follow', 'stop_follow', 'start_follow_worker')),
          3, 'one overload of each API function, nowhere else');
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", l.lanname::text COLLATE "default", p.prosecdef, p.proconfig COLLATE "default"
        FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace = 'public'::regnamespace
         AND p.proname IN ('start_follow', 'stop_follow', 'start_follow_worker')
       ORDER BY 1$$,
    $$VALUES ('start_follow', 'plpython3u', false, ARRAY['search_path=pg_catalog, pg_temp']),
             ('start_follow_worker', 'plpython3u', false, ARRAY['search_path=pg_catalog, pg_temp']),
             ('stop_follow', 'plpython3u', false, ARRAY['search_path=pg_catalog, pg_temp'])$$,
    'the API functions are PL/Python, not SECURITY DEFINER, with a fixed search_path');
SELECT ok(NOT has_function_privilege('public', 'public.start_follow(text, text, boolean)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'public.stop_follow(text)', 'EXECUTE')
          AND NOT has_function_privilege('public', 'public.start_follow_worker()', 'EXECUTE'),
          'PUBLIC cannot execute start_follow, stop_follow or start_follow_worker');
SELECT function_returns('pgfollower', 'is_followed', ARRAY[]::name[], 'boolean',
                        'pgfollower.is_followed() returns boolean');
SELECT function_returns('pgfollower', 'queue_ddl', ARRAY['text', 'text', 'text', 'boolean'],
                        'void', 'pgfollower.queue_ddl(text, text, text, boolean) is a procedure');
SELECT hasnt_function('pgfollower', 'emit', 'there is no pgfollower.emit(): DDL is not sent as messages');
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", p.prosecdef, p.proconfig COLLATE "default",
             has_function_privilege('public', p.oid, 'EXECUTE')
        FROM pg_proc p WHERE p.pronamespace = 'pgfollower'::regnamespace
         AND p.proname IN ('queue_ddl', 'queue_drop', 'capture_ddl', 'capture_drop', 'enqueue',
                           'trigger_frames', 'not_called_by_trigger')
       ORDER BY 1$$,
    $$VALUES ('capture_ddl', false, ARRAY['search_path=pg_catalog, pg_temp'], false),
             ('capture_drop', false, ARRAY['search_path=pg_catalog, pg_temp'], false),
             ('enqueue', false, ARRAY['search_path=pg_catalog, pg_temp'], false),
             ('not_called_by_trigger', false, ARRAY['search_path=pg_catalog, pg_temp'], false),
             ('queue_ddl', true, ARRAY['search_path=pg_catalog, pg_temp'], true),
             ('queue_drop', true, ARRAY['search_path=pg_catalog, pg_temp'], true),
             ('trigger_frames', false, ARRAY['search_path=pg_catalog, pg_temp'], false)$$,
    'only the SECURITY DEFINER writers (pinned search_path) are executable by PUBLIC;'
    ' the deparser and enqueue() are not');
SELECT ok(NOT has_table_privilege('public', 'pgfollower.ddl_queue', 'INSERT')
          AND NOT has_table_privilege('public', 'pgfollower.ddl_queue', 'UPDATE')
          AND NOT has_table_privilege('public', 'pgfollower.ddl_queue', 'DELETE')
          AND NOT has_table_privilege('public', 'pgfollower.ddl_queue', 'SELECT')
          AND NOT has_table_privilege('public', 'pgfollower.ddl_queue', 'TRUNCATE'),
          'PUBLIC has no privilege on pgfollower.ddl_queue');
SELECT function_returns('pgfollower', 'ensure_publication', ARRAY[]::name[], 'void',
                        'pgfollower.ensure_publication() returns void');
SELECT function_returns('pgfollower', 'ensure_replica_identity', ARRAY['oid'], 'boolean',
                        'pgfollower.ensure_replica_identity(oid) returns boolean');
SELECT results_eq(
    $$SELECT evtname::text COLLATE "default", evtevent::text COLLATE "default", evtenabled::text, evtfoid::regproc::text
        FROM pg_event_trigger WHERE evtname LIKE 'pg\_follower\_py%' ORDER BY 1$$,
    $$VALUES ('pg_follower_py_ddl', 'ddl_command_end', 'O', 'pgfollower.on_ddl_command_end'),
             ('pg_follower_py_drop', 'sql_drop', 'O', 'pgfollower.on_sql_drop')$$,
    'the event triggers are enabled, on ddl_command_end and sql_drop');

------------------------------------------------------------------------------
-- follow_status: columns and grants
------------------------------------------------------------------------------
SELECT has_view('public', 'follow_status', 'follow_status is a view in public');
SELECT set_has(
    $$SELECT attname::text COLLATE "default", format_type(atttypid, atttypmod)
        FROM pg_attribute
       WHERE attrelid = 'public.follow_status'::regclass AND attnum > 0 AND NOT attisdropped$$,
    $$VALUES ('name', 'text'), ('upstream', 'text'), ('slot_name', 'text'), ('state', 'text'),
             ('worker_pid', 'integer'), ('received_lsn', 'pg_lsn'), ('applied_lsn', 'pg_lsn'),
             ('lag_bytes', 'bigint'), ('lag_seconds', 'double precision'),
             ('last_error', 'text'), ('last_error_at', 'timestamp with time zone'),
             ('tables_copied', 'integer'), ('tables_total', 'integer'),
             ('rows_copied', 'bigint')$$,
    'follow_status has the SPEC columns with their types');
SELECT col_type_is('public', 'follow_status', 'applied_lsn', 'pg_lsn', 'applied_lsn is a pg_lsn');
SELECT col_type_is('public', 'follow_status', 'received_lsn', 'pg_lsn', 'received_lsn is a pg_lsn');
SELECT table_privs_are('public', 'follow_status', 'pg_monitor', ARRAY['SELECT'],
                       'pg_monitor may SELECT from follow_status, nothing else');
SELECT ok(NOT has_table_privilege('public', 'public.follow_status', 'SELECT'),
          'PUBLIC cannot SELECT from follow_status');

------------------------------------------------------------------------------
-- pg_extension_config_dump
------------------------------------------------------------------------------
SELECT results_eq(
    $$SELECT c::regclass::text, cond COLLATE "default"
        FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS t(c, cond)
       WHERE e.extname = 'pg_follower_py' ORDER BY 1$$,
    $$VALUES ('pgfollower.subscription', ''), ('pgfollower.subscription_id_seq', '')$$,
    'pgfollower.subscription (all rows) and its sequence, and only they, are dumped');

------------------------------------------------------------------------------
-- start_follow: refusals. Each is raised before anything is stored.
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT start_follow('host=/nonexistent dbname')$$, NULL,
    'plpy.Error: invalid upstream conninfo: missing "=" after "dbname" in connection info string',
    'a key/value conninfo with a keyword but no "=" is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent bogus=1')$$, NULL,
    'plpy.Error: invalid upstream conninfo: invalid connection option "bogus"',
    'a conninfo with an unknown keyword is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent password=my secret')$$, NULL,
    'plpy.Error: invalid upstream conninfo: missing "=" after the word at position 31'
    ' in connection info string (quote a value that contains spaces)',
    'a malformed conninfo is refused without showing the password in the message');
SELECT throws_ok($$SELECT start_follow('postgresql://h/d?sslmode')$$, NULL,
    'plpy.Error: invalid upstream conninfo: missing key/value separator "=" in URI query parameter: "sslmode"',
    'a malformed URI is refused');
SELECT throws_ok($$SELECT start_follow('')$$, NULL,
    'plpy.Error: the upstream conninfo must not be empty',
    'an empty conninfo is refused');
SELECT throws_ok($$SELECT start_follow(NULL)$$, NULL,
    'plpy.Error: the upstream conninfo must not be empty',
    'a NULL conninfo is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent', '')$$, NULL,
    'plpy.Error: subscription name must not be empty',
    'an empty name is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent', '   ')$$, NULL,
    'plpy.Error: subscription name must not be empty',
    'a blank name is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent', NULL)$$, NULL,
    'plpy.Error: subscription name must not be empty',
    'a NULL name is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent', repeat('n', 64))$$, NULL,
    'plpy.Error: subscription name "nnnnnnnnnnnnnnnnnnnn..." is longer than 63 characters',
    'a name longer than 63 characters is refused');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent replication=database')$$, NULL,
    'plpy.Error: the upstream conninfo must not set "replication"',
    'a key/value conninfo with replication=database is refused');
SELECT throws_ok($$SELECT start_follow('postgresql:///up?host=/nonexistent&replication=database')$$,
    NULL, 'plpy.Error: the upstream conninfo must not set "replication"',
    'a URI with replication=database is refused');
SELECT is((SELECT (last_value, is_called)::text FROM pgfollower.subscription_id_seq),
          :'seq_before', 'refused calls did not take a subscription id');
SELECT is((SELECT count(*)::int FROM pgfollower.subscription), 0,
          'refused calls stored no subscription');
SELECT is((SELECT count(*)::int FROM pg_replication_origin WHERE roname LIKE 'pgf\_%'), 0,
          'refused calls created no replication origin');

------------------------------------------------------------------------------
-- start_follow: success (no worker is launched: launch_worker is off)
------------------------------------------------------------------------------
SELECT lives_ok(
    $$SELECT start_follow('host=/nonexistent port=1 dbname=up user=u password=s3cret')$$,
    'start_follow(conninfo) works, called unqualified');
SELECT results_eq(
    $$SELECT name, copy_data, conninfo FROM pgfollower.subscription$$,
    $$VALUES ('default', true, 'host=/nonexistent port=1 dbname=up user=u password=s3cret')$$,
    'the defaults apply (name ''default'', copy_data true); the conninfo is kept as given');
SELECT is((SELECT upstream FROM follow_status WHERE name = 'default'),
          'user=u dbname=up host=/nonexistent port=1',
          'follow_status.upstream is the conninfo without its password');
SELECT is((SELECT s.slot_name FROM pgfollower.subscription s),
          (SELECT format('pgf_%s_%s_%s', c.system_identifier, d.oid, s.id)
             FROM pg_control_system() c, pg_database d, pgfollower.subscription s
            WHERE d.datname = current_database()),
          'the slot name is pgf_<system id>_<database oid>_<subscription id>');
SELECT is((SELECT s.origin_name FROM pgfollower.subscription s),
          (SELECT format('pgf_%s_%s', d.oid, s.id)
             FROM pg_database d, pgfollower.subscription s
            WHERE d.datname = current_database()),
          'the origin name is pgf_<database oid>_<subscription id>');
SELECT ok(EXISTS (SELECT 1 FROM pg_replication_origin o JOIN pgfollower.subscription s
                     ON s.origin_name = o.roname),
          'start_follow created the replication origin');
SELECT results_eq(
    $$SELECT st.state, st.tables_copied, st.rows_copied
        FROM pgfollower.subscription_status st JOIN pgfollower.subscription s ON s.id = st.sub_id$$,
    $$VALUES ('starting', 0, 0::bigint)$$,
    'start_follow created the status row, in state starting');
SELECT results_eq(
    $$SELECT state, worker_pid, last_error, slot_name = (SELECT slot_name FROM pgfollower.subscription)
        FROM follow_status$$,
    $$VALUES ('starting', NULL::int, NULL::text, true)$$,
    'a new subscription with no worker shows starting, no worker pid and no error');
SELECT lives_ok(
    $$SELECT start_follow('postgresql://u:s3cret@/up?host=/nonexistent&sslpassword=k3y', 'uri', false)$$,
    'start_follow(conninfo, name, copy_data) works with a URI');
SELECT results_eq(
    $$SELECT f.upstream, s.copy_data
        FROM follow_status f JOIN pgfollower.subscription s USING (name)
       WHERE name = 'uri'$$,
    $$VALUES ('user=u dbname=up host=/nonexistent', false)$$,
    'a URI''s password and sslpassword are absent from follow_status.upstream');
SELECT lives_ok(
    $$SELECT start_follow('host=/nonexistent password=''pa ss'' dbname=''password=s3cret user=v''', 'inner')$$,
    'start_follow accepts a conninfo in dbname');
SELECT is((SELECT upstream FROM follow_status WHERE name = 'inner'),
          'dbname=user=v host=/nonexistent',
          'a password inside dbname (a conninfo itself) is absent from follow_status.upstream');
SELECT is((SELECT count(*)::int FROM follow_status
            WHERE upstream LIKE '%s3cret%' OR upstream LIKE '%k3y%' OR upstream LIKE '%pa ss%'),
          0, 'no password shows in follow_status');
SELECT throws_ok($$SELECT start_follow('host=/elsewhere', 'default')$$, NULL,
    'plpy.Error: subscription "default" already exists',
    'a duplicate name is refused');
SELECT is((SELECT conninfo FROM pgfollower.subscription WHERE name = 'default'),
          'host=/nonexistent port=1 dbname=up user=u password=s3cret',
          'the refused duplicate left the existing subscription alone');
SELECT is((SELECT max(id) FROM pgfollower.subscription),
          (SELECT last_value::int FROM pgfollower.subscription_id_seq),
          'the refused duplicate did not take a subscription id');

-- 15 seconds later, with still no worker: stopped, and last_error says why.
UPDATE pgfollower.subscription SET created_at = now() - interval '16 seconds'
 WHERE name = 'default';
SELECT results_eq(
    $$SELECT state, last_error FROM follow_status WHERE name = 'default'$$,
    $$VALUES ('stopped', 'no worker is running for this database: run SELECT start_follow_worker()'
                         ' or start "pg-follower worker"')$$,
    'a subscription with no worker for 15 s shows stopped and how to start one');
SELECT is((SELECT state FROM follow_status WHERE name = 'uri'), 'starting',
          'a younger subscription with no worker still shows starting');

------------------------------------------------------------------------------
-- stop_follow
------------------------------------------------------------------------------
SELECT throws_ok($$SELECT stop_follow('nope')$$, NULL,
    'plpy.Error: subscription "nope" does not exist',
    'stop_follow of an unknown name is refused');
-- The upstream is unreachable: dropping its slot fails with a WARNING only.
SET LOCAL client_min_messages = error;
SELECT lives_ok($$SELECT stop_follow()$$, 'stop_follow() stops the subscription named default');
SET LOCAL client_min_messages = warning;
SELECT is((SELECT array_agg(name ORDER BY name) FROM follow_status), ARRAY['inner', 'uri'],
          'stop_follow() removed the default subscription only');
SELECT is((SELECT count(*)::int FROM pgfollower.subscription_status), 2,
          'stop_follow removed the status row');
SELECT is((SELECT array_agg(roname::text ORDER BY roname) FROM pg_replication_origin
            WHERE roname LIKE 'pgf\_%'),
          (SELECT array_agg(origin_name ORDER BY origin_name) FROM pgfollower.subscription),
          'stop_follow dropped the origin; the others remain');

------------------------------------------------------------------------------
-- Privileges: a non-superuser cannot see or change subscriptions
------------------------------------------------------------------------------
CREATE ROLE pgf_tap_user;
CREATE ROLE pgf_tap_monitor IN ROLE pg_monitor;
SET LOCAL ROLE pgf_tap_user;
SELECT throws_ok('SELECT * FROM pgfollower.subscription', '42501',
    'permission denied for table subscription', 'a non-superuser cannot read the subscriptions');
SELECT throws_ok('SELECT * FROM follow_status', '42501',
    'permission denied for view follow_status', 'a non-superuser cannot read follow_status');
SELECT throws_ok($$SELECT start_follow('host=/nonexistent', 'evil')$$, '42501',
    'permission denied for function start_follow', 'a non-superuser cannot call start_follow');
SELECT throws_ok($$SELECT stop_follow('uri')$$, '42501',
    'permission denied for function stop_follow', 'a non-superuser cannot call stop_follow');
SELECT throws_ok('SELECT start_follow_worker()', '42501',
    'permission denied for function start_follow_worker',
    'a non-superuser cannot call start_follow_worker');
RESET ROLE;
-- Even with USAGE on the schema, the tables themselves are superuser-only.
GRANT USAGE ON SCHEMA pgfollower TO pgf_tap_user;
SET LOCAL ROLE pgf_tap_user;
SELECT throws_ok('SELECT conninfo FROM pgfollower.subscription', '42501',
    'permission denied for table subscription',
    'a non-superuser cannot read pgfollower.subscription (it holds passwords)');
SELECT throws_ok('SELECT * FROM pgfollower.subscription_status', '42501',
    'permission denied for table subscription_status',
    'a non-superuser cannot read pgfollower.subscription_status');
SELECT throws_ok('SELECT * FROM pgfollower.worker', '42501',
    'permission denied for table worker', 'a non-superuser cannot read pgfollower.worker');
SELECT throws_ok($$UPDATE pgfollower.subscription SET conninfo = 'host=evil'$$, '42501',
    'permission denied for table subscription',
    'a non-superuser cannot change pgfollower.subscription');
SELECT throws_ok($$INSERT INTO pgfollower.ddl_queue (v, kind, tag, identity, search_path,
                       role_name, statement)
                   VALUES (2, 'x', 'ALTER ROLE', 'x', '', 'postgres', 'ALTER ROLE pgf_tap_user SUPERUSER')$$,
    '42501', 'permission denied for table ddl_queue',
    'a non-superuser cannot queue DDL by inserting into pgfollower.ddl_queue');
SELECT throws_ok($$SELECT pgfollower.capture_ddl('ALTER ROLE', 'ALTER ROLE pgf_tap_user SUPERUSER',
                       '[]', '', '', true)$$,
    '42501', 'permission denied for function capture_ddl',
    'a non-superuser cannot call the deparser');
SELECT throws_ok($$SELECT pgfollower.enqueue(ARRAY['{"v": 2, "sql": "ALTER ROLE pgf_tap_user SUPERUSER"}'],
                       'postgres')$$,
    '42501', 'permission denied for function enqueue',
    'a non-superuser cannot call enqueue()');
SELECT throws_ok($$CALL pgfollower.queue_ddl('ALTER TABLE', 'postgres', '', true)$$,
    '39P03', 'pg_event_trigger_ddl_commands() can only be called in an event trigger function',
    'queue_ddl() refuses to work outside an event trigger');
SELECT throws_ok($$CALL pgfollower.queue_drop('DROP TABLE', 'postgres', '', true)$$,
    '39P03', 'pg_event_trigger_dropped_objects() can only be called in a sql_drop event trigger function',
    'queue_drop() refuses to work outside an event trigger');
RESET ROLE;
SET LOCAL ROLE pgf_tap_monitor;
SELECT throws_ok('SELECT * FROM pgfollower.subscription', '42501',
    'permission denied for table subscription',
    'pg_monitor cannot read pgfollower.subscription');
SELECT results_eq('SELECT name, upstream FROM follow_status ORDER BY name',
    $$VALUES ('inner', 'dbname=user=v host=/nonexistent'),
             ('uri', 'user=u dbname=up host=/nonexistent')$$,
    'pg_monitor can read names and upstreams from follow_status');
SELECT todo('follow_status calls pgfollower.worker_pid() as the caller, who has no USAGE on the pgfollower schema', 1);
SELECT lives_ok('SELECT * FROM follow_status',
    'pg_monitor can read every column of follow_status');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
