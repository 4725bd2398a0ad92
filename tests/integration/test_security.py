"""Nobody gains rights through the follower (issue 12), on real clusters.

An upstream role with LOGIN and little else tries every way in: forged logical
messages, the capture's queue and functions, its own objects, triggers,
defaults and search_path; it must gain nothing downstream, while its
legitimate DDL and rows still replicate, with the same owners on both sides.

Functions and triggers are not replicated yet (CREATE FUNCTION is refused while
followed), so the tests that need them create them on both sides before
following, as the role itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import Node, Pair, wait_until


def _role(pair: Pair, prefix: str, attributes: str = "LOGIN", down: bool = True) -> str:
    """A role unique to this test (roles are cluster-wide), on both clusters."""
    name = f"{prefix}_{pair.up.dbname[2:]}"
    for node in (pair.up, pair.down) if down else (pair.up,):
        node.execute(f"CREATE ROLE {name} {attributes}")
    return name


def _grant_create(pair: Pair, role: str) -> None:
    """What the role needs to make objects (before following: GRANT is not replicated)."""
    for node in (pair.up, pair.down):
        node.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        node.execute(f"GRANT CREATE ON DATABASE {node.dbname} TO {role}")


def _as(node: Node, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(node.cluster.dsn(node.dbname, user=role), autocommit=True)


def _superuser(node: Node, role: str) -> bool:
    return bool(node.scalar("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [role]))


def _owner(node: Node, relname: str) -> str | None:
    return node.scalar(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = %s", [relname]
    )


def _worker_log(pair: Pair) -> str:
    path = Path(pair.down.cluster.datadir) / "pg_follower_py.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _healthy(pair: Pair) -> None:
    status = pair.status()
    assert status["state"] == "streaming", status
    assert status["last_error"] is None, status


@pytest.fixture
def secret(pair: Pair) -> Iterator[None]:
    """A table only superusers may read, the same on both sides."""
    for node in (pair.up, pair.down):
        node.execute("CREATE TABLE secret (v text)")
        node.execute("INSERT INTO secret VALUES ('the crown jewels')")
        node.execute("REVOKE ALL ON secret FROM PUBLIC")
    yield


# -- forged DDL --------------------------------------------------------------


def test_forged_messages_change_nothing_and_replication_goes_on(pair: Pair) -> None:
    mallory = _role(pair, "mallory")
    for node in (pair.up, pair.down):
        node.execute("CREATE TABLE t (id int PRIMARY KEY)")
    pair.up.execute(f"GRANT INSERT ON t TO {mallory}")
    pair.follow()
    takeover = f"ALTER ROLE {mallory} SUPERUSER"
    v1 = json.dumps(
        {"v": 1, "sql": takeover, "search_path": "", "tag": "ALTER ROLE", "identity": "x"}
    )
    v2 = json.dumps(
        {
            "v": 2,
            "kind": "alter_table",
            "tag": "ALTER ROLE",
            "identity": "x",
            "search_path": "",
            "role_name": "postgres",
            "statement": takeover,
            "sql": takeover,
        }
    )
    with _as(pair.up, mallory) as conn:
        emit = "SELECT pg_logical_emit_message(%s, %s, %s)"
        conn.execute(emit, [True, "pg_follower_py", v1])  # the exact attack
        conn.execute(emit, [False, "pg_follower_py", v1])  # non-transactional
        conn.execute(emit, [True, "pg_follower_py.pad", v1])
        conn.execute(emit, [True, "pg_follower_py", "{not json"])
        conn.execute(emit, [True, "pg_follower_py", v2])  # today's format, a superuser's role
        conn.execute(emit, [True, "pg_follower_py_x", v1])  # a near-miss prefix
        with conn.transaction():  # amid rows of its own
            conn.execute("INSERT INTO t VALUES (1)")
            conn.execute(emit, [True, "pg_follower_py", v1])
            conn.execute("INSERT INTO t VALUES (2)")
    pair.up.execute("INSERT INTO t VALUES (3)")
    pair.caught_up()

    assert not _superuser(pair.down, mallory)
    assert pair.down.rows("SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
    _healthy(pair)
    log = _worker_log(pair)
    assert "ignored a logical message with prefix 'pg_follower_py'" in log
    assert "ignored a logical message with prefix 'pg_follower_py.pad'" in log
    assert "pg_follower_py_x" not in log  # not ours: not even a warning
    assert "upstream transaction committed at" in log  # names the transaction


def test_the_queue_and_its_writers_are_closed(pair: Pair) -> None:
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    pair.follow()
    takeover = f"ALTER ROLE {mallory} SUPERUSER"
    attempts = [
        (
            "INSERT INTO pgfollower.ddl_queue"
            " (v, kind, tag, identity, search_path, role_name, statement)"
            f" VALUES (2, 'x', 'ALTER ROLE', 'x', '', 'postgres', '{takeover}')",
            "42501",
        ),
        ("DELETE FROM pgfollower.ddl_queue", "42501"),
        (
            f"SELECT pgfollower.capture_ddl('ALTER ROLE', '{takeover}', '[]', '', '', true)",
            "42501",
        ),
        (
            f"SELECT pgfollower.capture_drop('DROP ROLE', '{takeover}', '[]', '', '', true)",
            "42501",
        ),
        ("SELECT pgfollower.trigger_frames('', '', '')", "42501"),
        ("SELECT pgfollower.not_called_by_trigger('', '')", "42501"),
        (
            f"""SELECT pgfollower.enqueue(ARRAY['{{"v": 2, "sql": "{takeover}"}}'], 'postgres')""",
            "42501",
        ),
        # the writers PUBLIC may call work only inside an event trigger
        ("CALL pgfollower.queue_ddl('ALTER ROLE', 'postgres', '', true)", "39P03"),
        ("CALL pgfollower.queue_drop('DROP TABLE', 'postgres', '', true)", "39P03"),
    ]
    with _as(pair.up, mallory) as conn:
        for query, sqlstate in attempts:
            with pytest.raises(psycopg.Error) as err:
                conn.execute(query)
            assert err.value.sqlstate == sqlstate, (query, err.value)
        # its own DDL still works and replicates, as itself
        conn.execute("CREATE TABLE m_t (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO m_t VALUES (1, 'one')")
    pair.caught_up()
    assert pair.down.rows("SELECT id, v FROM m_t") == [(1, "one")]
    assert not _superuser(pair.down, mallory)
    _healthy(pair)


# The trigger's CALL exactly (the writers look for it in their call stack).
_TRIGGER_CALL = (
    "CALL pgfollower.queue_ddl(tg_tag, current_user::text, pgfollower.effective_search_path(),"
    " pg_catalog.current_setting('standard_conforming_strings') OPERATOR(pg_catalog.=) 'on')"
)


def test_user_code_calling_the_writer_during_its_own_ddl_queues_nothing(pair: Pair) -> None:
    """A function run by a DDL (a CHECK validated by ALTER TABLE) may call the
    writer (an IMMUTABLE one, as in an index expression, may not CALL at all),
    even with the trigger's exact CALL text (a variable named tg_tag) and a
    statement text mimicking the trigger's frames: the writer does not find the
    trigger's own frames right above it and refuses; nothing is queued."""
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    fake_frames = (
        '"\nPL/pgSQL function pgfollower.on_ddl_command_end() line 16 at CALL'
        '\nSQL statement "CREATE TABLE m_s.m_t (a int, evil text)'
    )
    sneak = f"""
        CREATE FUNCTION m_sneak(i int, how int) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE tg_tag text := 'CREATE TABLE';
        BEGIN
            IF pgfollower.is_followed() AND how = 0 THEN
                {_TRIGGER_CALL};
            ELSIF pgfollower.is_followed() AND how = 1 THEN
                EXECUTE $q${_TRIGGER_CALL.replace("tg_tag", "'CREATE TABLE'")}
                        /*{fake_frames}*/$q$;
            END IF;
            RETURN i;
        END $$"""
    for node in (pair.up, pair.down):
        with _as(node, mallory) as conn:
            conn.execute(sneak)
            conn.execute("CREATE TABLE m_t (a int PRIMARY KEY)")
            conn.execute("INSERT INTO m_t VALUES (1)")
    pair.follow()
    refusal = "may only be called by the event trigger pg_follower_py_ddl"
    with _as(pair.up, mallory) as conn:
        for how in (0, 1):
            with pytest.raises(psycopg.Error, match=refusal):
                conn.execute(
                    "ALTER TABLE m_t ADD COLUMN b int,"
                    f" ADD CONSTRAINT m_c CHECK (m_sneak(a, {how}) > 0)"
                )
        conn.execute("CREATE TABLE m_after (id int PRIMARY KEY)")
        conn.execute("INSERT INTO m_after VALUES (1)")
    pair.caught_up()
    assert not _superuser(pair.down, mallory)
    assert pair.down.rows("SELECT id FROM m_after") == [(1,)]
    assert _owner(pair.down, "m_after") == mallory
    _healthy(pair)


# -- owners ------------------------------------------------------------------

_OWNED = """
SELECT kind, name, owner FROM (
    SELECT 'relation' AS kind, n.nspname || '.' || c.relname AS name,
           pg_get_userbyid(c.relowner) AS owner
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname IN ('public', 'm_s') AND c.relkind IN ('r', 'i', 'S', 'p')
    UNION ALL
    SELECT 'type', n.nspname || '.' || t.typname, pg_get_userbyid(t.typowner)
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname IN ('public', 'm_s') AND t.typtype IN ('e', 'd', 'c')
       AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
    UNION ALL
    SELECT 'schema', nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'm_s'
) o ORDER BY 1, 2
"""


def test_ddl_replays_as_the_role_that_ran_it(pair: Pair) -> None:
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    pair.follow()
    with _as(pair.up, mallory) as conn:
        conn.execute("CREATE SCHEMA m_s")
        conn.execute("CREATE TABLE m_s.things (id serial PRIMARY KEY, v text)")
        conn.execute("CREATE INDEX things_v ON m_s.things (v)")
        conn.execute("CREATE SEQUENCE m_s.counter")
        conn.execute("CREATE TYPE m_s.mood AS ENUM ('ok', 'meh')")
        conn.execute("CREATE DOMAIN m_s.positive AS int CHECK (VALUE > 0)")
        conn.execute("CREATE TYPE m_s.pair AS (a int, b int)")
        conn.execute("CREATE TABLE public.m_keyless (a int, b m_s.mood)")
        conn.execute("INSERT INTO m_s.things (v) VALUES ('x'), ('y')")
        conn.execute("INSERT INTO public.m_keyless VALUES (1, 'ok')")
        conn.execute("ALTER TABLE m_s.things ADD COLUMN n m_s.positive")
        conn.execute("UPDATE m_s.things SET n = id")
        conn.execute("DELETE FROM public.m_keyless")
    pair.up.execute("CREATE TABLE public.admin_t (id int PRIMARY KEY)")  # a superuser's
    pair.caught_up()
    up_owned, down_owned = pair.up.rows(_OWNED), pair.down.rows(_OWNED)
    assert up_owned == down_owned
    owners = {name: owner for _kind, name, owner in down_owned}
    assert owners["public.admin_t"] == "postgres"
    assert all(o == mallory for n, o in owners.items() if not n.startswith("public.admin_t"))
    assert {
        "m_s.things",
        "m_s.things_v",
        "m_s.counter",
        "m_s.mood",
        "m_s.positive",
        "m_s.pair",
        "m_s",
        "public.m_keyless",
    } <= owners.keys()
    assert pair.down.rows("SELECT id, v, n FROM m_s.things ORDER BY id") == [
        (1, "x", 1),
        (2, "y", 2),
    ]
    _healthy(pair)


def test_a_missing_role_is_an_apply_error_naming_it_then_retried(pair: Pair) -> None:
    ghost = _role(pair, "ghost", down=False)
    pair.up.execute(f"GRANT CREATE ON SCHEMA public TO {ghost}")
    pair.follow()
    with _as(pair.up, ghost) as conn:
        conn.execute("CREATE TABLE g_t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO g_t VALUES (1)")
    wait_until(
        lambda: ghost in (pair.status().get("last_error") or ""), 30, lambda: str(pair.status())
    )
    error = pair.status()["last_error"]
    assert "does not exist downstream" in error and f'CREATE ROLE "{ghost}"' in error, error
    assert pair.status()["error_lsn"] is not None
    pair.down.execute(f"CREATE ROLE {ghost}")
    pair.down.execute(f"GRANT CREATE ON SCHEMA public TO {ghost}")
    pair.caught_up(60)
    assert pair.down.rows("SELECT id FROM g_t") == [(1,)]
    assert _owner(pair.down, "g_t") == ghost
    assert pair.status()["state"] == "streaming"


# -- user code during apply ---------------------------------------------------------


def _escalation_kit(role: str) -> list[str]:
    """Objects an ordinary role makes to run code when rows are applied: every
    function tries to become superuser and to read ``secret``, and logs who it
    ran as and what it got. Names are schema-qualified: the apply session's
    search_path is not the role's (as in native replication)."""
    grab = f"""
        CREATE FUNCTION m_grab(what text) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE got text := 'denied';
        BEGIN
            BEGIN
                EXECUTE 'ALTER ROLE {role} SUPERUSER';
            EXCEPTION WHEN others THEN NULL;
            END;
            BEGIN
                SELECT v INTO got FROM public.secret LIMIT 1;
            EXCEPTION WHEN others THEN NULL;
            END;
            INSERT INTO public.m_log (what, who, got) VALUES (what, current_user, got);
            RETURN what;
        END $$"""
    return [
        "CREATE TABLE m_log (what text, who text, got text)",
        grab,
        # SECURITY DEFINER, owned by the role itself on both sides
        "CREATE FUNCTION m_definer() RETURNS text LANGUAGE sql SECURITY DEFINER"
        " AS $$ SELECT public.m_grab('definer') $$",
        "CREATE FUNCTION m_trigger() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM public.m_grab(TG_ARGV[0]); PERFORM public.m_definer();"
        " RETURN coalesce(NEW, OLD); END $$",
        # the search_path trick: its own = and set_config in a schema it owns,
        # put first in the search_path its DDL runs with
        "CREATE SCHEMA m_s",
        "CREATE FUNCTION m_s.m_eq(name, text) RETURNS boolean LANGUAGE sql"
        " AS $$ SELECT public.m_grab('operator') IS NOT NULL AND $1::text = $2 $$",
        "CREATE OPERATOR m_s.= (LEFTARG = name, RIGHTARG = text, FUNCTION = m_s.m_eq)",
        "CREATE FUNCTION m_s.set_config(text, text, boolean) RETURNS text LANGUAGE sql"
        " AS $$ SELECT public.m_grab('set_config') $$",
        "CREATE FUNCTION m_s.current_setting(text) RETURNS text LANGUAGE sql"
        " AS $$ SELECT public.m_grab('current_setting') $$",
    ]


def test_user_code_run_by_apply_has_only_its_owners_rights(pair: Pair, secret: None) -> None:
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    for node in (pair.up, pair.down):
        with _as(node, mallory) as conn:
            for statement in _escalation_kit(mallory):
                conn.execute(statement)
            table = "CREATE TABLE m_t (id int PRIMARY KEY, v text"
            # downstream only: a column the upstream does not send, filled by
            # its default, a call of the role's own function
            extra = ", d text DEFAULT m_grab('default'))" if node is pair.down else ")"
            conn.execute(table + extra)
            conn.execute(
                "CREATE TRIGGER m_replica BEFORE INSERT ON m_t FOR EACH ROW"
                " EXECUTE FUNCTION m_trigger('replica')"
            )
            conn.execute("ALTER TABLE m_t ENABLE REPLICA TRIGGER m_replica")
            conn.execute(
                "CREATE TRIGGER m_always BEFORE UPDATE OR DELETE ON m_t FOR EACH ROW"
                " EXECUTE FUNCTION m_trigger('always')"
            )
            conn.execute("ALTER TABLE m_t ENABLE ALWAYS TRIGGER m_always")
    pair.follow()
    with _as(pair.up, mallory) as conn:
        conn.execute("INSERT INTO m_t VALUES (1, 'one'), (2, 'two')")
        conn.execute("UPDATE m_t SET v = 'uno' WHERE id = 1")
        conn.execute("DELETE FROM m_t WHERE id = 2")
        # DDL under a search_path that puts its own schema first
        conn.execute("SET search_path = m_s, pg_catalog, public")
        conn.execute("CREATE TABLE public.m_more (id int PRIMARY KEY)")
        conn.execute("ALTER TABLE public.m_more ADD COLUMN v text")
        conn.execute("INSERT INTO public.m_more VALUES (1, 'x')")
    pair.caught_up()

    assert not _superuser(pair.down, mallory)
    assert pair.down.rows("SELECT id, v, d FROM m_t ORDER BY id") == [(1, "uno", "default")]
    assert pair.down.rows("SELECT id, v FROM public.m_more") == [(1, "x")]
    logged = pair.down.rows("SELECT DISTINCT what, who, got FROM m_log ORDER BY 1")
    whats = {w for w, _who, _got in logged}
    # the code did run downstream (the REPLICA trigger only there), as the role
    assert {"replica", "always", "default", "definer"} <= whats, logged
    assert all(who == mallory and got == "denied" for _w, who, got in logged), logged
    _healthy(pair)


def test_truncate_runs_as_the_tables_owner(pair: Pair, secret: None) -> None:
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    for node in (pair.up, pair.down):
        with _as(node, mallory) as conn:
            for statement in _escalation_kit(mallory)[:4]:
                conn.execute(statement)
            conn.execute("CREATE TABLE m_t (id int PRIMARY KEY)")
            conn.execute(
                "CREATE TRIGGER m_trunc BEFORE TRUNCATE ON m_t"
                " FOR EACH STATEMENT EXECUTE FUNCTION m_trigger('truncate')"
            )
            conn.execute("ALTER TABLE m_t ENABLE REPLICA TRIGGER m_trunc")
    pair.follow()
    with _as(pair.up, mallory) as conn:
        conn.execute("INSERT INTO m_t VALUES (1)")
        conn.execute("TRUNCATE m_t")
    pair.caught_up()
    assert not _superuser(pair.down, mallory)
    assert pair.down.scalar("SELECT count(*) FROM m_t") == 0
    assert pair.down.rows("SELECT DISTINCT who, got FROM m_log WHERE what = 'truncate'") == [
        (mallory, "denied")
    ]
    _healthy(pair)


# -- least privilege -----------------------------------------------------------


def test_an_upstream_role_with_only_replication_and_select_can_be_followed(pair: Pair) -> None:
    follower = _role(pair, "follower", "LOGIN REPLICATION", down=False)
    pair.up.execute("CREATE TABLE early (id int PRIMARY KEY, v text)")
    pair.up.execute("CREATE SEQUENCE early_seq")
    pair.up.execute("INSERT INTO early VALUES (1, 'before')")
    pair.up.execute("SELECT nextval('early_seq')")
    pair.up.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {follower}")
    pair.up.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {follower}")
    pair.up.execute(
        "GRANT EXECUTE ON FUNCTION pgfollower.ensure_publication(),"
        f" pgfollower.drop_publication() TO {follower}"
    )
    assert not _superuser(pair.up, follower)
    conninfo = pair.up.cluster.dsn(pair.up.dbname, user=follower)
    pair.down.execute("SELECT start_follow(%s, 'default', true)", [conninfo])
    wait_until(lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status()))
    pair.up.execute("INSERT INTO early VALUES (2, 'after')")
    pair.up.execute("ALTER TABLE early ADD COLUMN n int")
    pair.up.execute("UPDATE early SET n = id")
    pair.caught_up()
    assert pair.down.rows("SELECT id, v, n FROM early ORDER BY id") == [
        (1, "before", 1),
        (2, "after", 2),
    ]
    assert pair.down.scalar("SELECT last_value FROM early_seq") == 1
    slots = pair.up.rows(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
    )
    assert len(slots) == 1
    pair.down.execute("SELECT stop_follow()")
    assert not pair.up.rows(
        "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
    )
    assert not pair.up.scalar(
        "SELECT count(*) FROM pg_publication WHERE pubname = 'pg_follower_py'"
    )


def test_the_initial_copy_keeps_owners_and_copies_as_the_owner(pair: Pair) -> None:
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    pair.up.execute("CREATE TABLE secret (v text)")  # copied, with no grant to others
    pair.up.execute("INSERT INTO secret VALUES ('the crown jewels')")
    with _as(pair.up, mallory) as conn:
        for statement in _escalation_kit(mallory)[:3]:
            conn.execute(statement)
        conn.execute(
            "CREATE FUNCTION m_check(v text) RETURNS boolean LANGUAGE sql"
            " AS $$ SELECT public.m_grab('check') IS NOT NULL $$"
        )
        # a CHECK runs while COPY writes the rows downstream
        conn.execute("CREATE TABLE m_t (id int PRIMARY KEY, v text CHECK (public.m_check(v)))")
        conn.execute("INSERT INTO m_t VALUES (1, 'one')")
        conn.execute("DELETE FROM m_log")
    pair.down.execute("SELECT start_follow(%s, 'default', true)", [pair.up.dsn])
    wait_until(lambda: pair.status().get("state") == "streaming", 60, lambda: str(pair.status()))
    assert not _superuser(pair.down, mallory)
    assert pair.down.rows("SELECT id, v FROM m_t") == [(1, "one")]
    assert pair.down.rows("SELECT DISTINCT what, who, got FROM m_log") == [
        ("check", mallory, "denied")
    ]
    owned = (
        "SELECT p.proname::text, pg_get_userbyid(p.proowner) FROM pg_proc p"
        " WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'm\\_%%'"
        " UNION ALL SELECT relname::text, pg_get_userbyid(relowner) FROM pg_class"
        " WHERE relname LIKE 'm\\_%%' ORDER BY 1"
    )
    assert pair.down.rows(owned) == pair.up.rows(owned)
    assert {owner for _name, owner in pair.down.rows(owned)} == {mallory}


# -- ordering ------------------------------------------------------------------


def test_queued_ddl_keeps_its_place_among_rows_in_subtransactions(pair: Pair) -> None:
    """DDL rows travel in the row stream: decoding merges subtransactions by
    LSN, so each statement stays between the rows written before and after it."""
    pair.up.execute("CREATE TABLE t (id int PRIMARY KEY, a int)")
    pair.down.execute("CREATE TABLE t (id int PRIMARY KEY, a int)")
    pair.follow()
    with pair.up.conn.transaction():
        up = pair.up
        up.execute("INSERT INTO t VALUES (1, 1)")
        up.execute("SAVEPOINT s1")
        up.execute("ALTER TABLE t ADD COLUMN b int DEFAULT 7")
        up.execute("INSERT INTO t VALUES (2, 2, 20)")
        up.execute("RELEASE SAVEPOINT s1")
        up.execute("INSERT INTO t VALUES (3, 3, 30)")
        up.execute("SAVEPOINT s2")
        up.execute("ALTER TABLE t ADD COLUMN c int")
        up.execute("INSERT INTO t VALUES (4, 4, 40, 400)")
        up.execute("ROLLBACK TO SAVEPOINT s2")
        up.execute("SAVEPOINT s3")
        up.execute("ALTER TABLE t RENAME COLUMN a TO a2")
        up.execute("UPDATE t SET a2 = a2 * 10 WHERE id = 1")
        up.execute("SAVEPOINT s4")
        up.execute("CREATE TABLE u (id int PRIMARY KEY, t_id int REFERENCES t)")
        up.execute("INSERT INTO u VALUES (1, 3)")
        up.execute("RELEASE SAVEPOINT s4")
        up.execute("RELEASE SAVEPOINT s3")
        up.execute("INSERT INTO t (id, a2) VALUES (5, 5)")
    pair.caught_up()
    for query in ("SELECT * FROM t ORDER BY id", "SELECT * FROM u ORDER BY id"):
        assert pair.down.rows(query) == pair.up.rows(query)
    assert pair.down.rows("SELECT id, a2, b FROM t ORDER BY id") == [
        (1, 10, 7),
        (2, 2, 20),
        (3, 3, 30),
        (5, 5, 7),
    ]
    _healthy(pair)


# -- DDL inside functions ---------------------------------------------------------


def test_ddl_in_a_security_definer_function_replays_as_its_owner(pair: Pair) -> None:
    """current_user at the DDL is the function's owner: the session's role
    could not become it, and need not: the writer knows its trigger called it."""
    owner = _role(pair, "owner")
    caller = _role(pair, "caller")
    _grant_create(pair, owner)
    make = (
        "CREATE FUNCTION o_make(p text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER"
        " SET search_path = public AS $$"
        " BEGIN EXECUTE format('CREATE TABLE %I (id int PRIMARY KEY, v text)', p); END $$"
    )
    for node in (pair.up, pair.down):
        with _as(node, owner) as conn:
            conn.execute(make)
            conn.execute(f"GRANT EXECUTE ON FUNCTION o_make(text) TO {caller}")
    pair.follow()
    with _as(pair.up, caller) as conn:
        conn.execute("SELECT o_make('o_made')")
    pair.up.execute("INSERT INTO o_made VALUES (1, 'x')")
    pair.caught_up()
    assert _owner(pair.down, "o_made") == owner == _owner(pair.up, "o_made")
    assert pair.down.rows("SELECT id, v FROM o_made") == [(1, "x")]
    _healthy(pair)


def test_statement_text_mimicking_call_stack_frames_replays_exactly(pair: Pair) -> None:
    """The call stack shows a statement's text with its quotes and newlines
    unescaped; text that mimics the next frame inside a comment, a string or a
    quoted name does not cut the statement short."""
    mallory = _role(pair, "mallory")
    _grant_create(pair, mallory)
    pair.follow()
    frame = '"\nPL/pgSQL function inline_code_block line 1 at SQL statement\nSQL statement "'
    name = '"c' + frame.replace('"', '""') + '"'
    with _as(pair.up, mallory) as conn:
        conn.execute(
            "DO $do$ BEGIN EXECUTE $q$CREATE TABLE m_t (id int PRIMARY KEY,"
            f" a int /* {frame} */, b text DEFAULT '{frame}', {name} int)$q$; END $do$"
        )
        conn.execute(
            f"DO $do$ BEGIN ALTER TABLE m_t ADD COLUMN d text DEFAULT $s${frame}$s$; END $do$"
        )
        conn.execute("INSERT INTO m_t (id) VALUES (1)")
    pair.caught_up()
    columns = (
        "SELECT attname, format_type(atttypid, atttypmod), pg_get_expr(adbin, adrelid)"
        " FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum"
        " WHERE attrelid = 'm_t'::regclass AND attnum > 0 ORDER BY attnum"
    )
    assert pair.down.rows(columns) == pair.up.rows(columns)
    assert len(pair.up.rows(columns)) == 5
    assert pair.down.rows("SELECT * FROM m_t") == pair.up.rows("SELECT * FROM m_t")
    _healthy(pair)
