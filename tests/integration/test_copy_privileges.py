"""The initial copy carries owners, privileges, default privileges, comments and
policies (issue 9, point 4); a missing role is an error naming every role the
downstream lacks, with two ways out: copy_roles(), or copy_privileges = off."""

from __future__ import annotations

from typing import Any

import psycopg

from conftest import Pair, wait_until

# Everything a stand-in needs to let an application role in as upstream.
SCHEMA = """
CREATE SCHEMA app AUTHORIZATION {owner};
SET ROLE {owner};
CREATE TABLE app.item (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text,
                       secret text, tenant text NOT NULL DEFAULT current_user);
CREATE SEQUENCE app.ticket;
CREATE FUNCTION app.visible(t text) RETURNS boolean LANGUAGE sql STABLE
    AS $$ SELECT t = current_user $$;
CREATE VIEW app.names AS SELECT id, name FROM app.item;
COMMENT ON SCHEMA app IS 'the application';
COMMENT ON TABLE app.item IS 'things';
COMMENT ON COLUMN app.item.secret IS 'not for readers';
COMMENT ON FUNCTION app.visible(text) IS 'row filter';
GRANT USAGE ON SCHEMA app TO {reader};
GRANT SELECT (id, name, tenant) ON app.item TO {reader};
GRANT SELECT ON app.names TO {reader};
GRANT USAGE ON SEQUENCE app.ticket TO {reader};
REVOKE EXECUTE ON FUNCTION app.visible(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.visible(text) TO {reader};
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {reader};
ALTER TABLE app.item ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON app.item FOR SELECT TO {reader} USING (app.visible(tenant));
INSERT INTO app.item (name, secret, tenant) VALUES ('a', 's1', '{reader}'), ('b', 's2', 'x');
RESET ROLE;
"""

CATALOG = [
    "SELECT c.relname::text, pg_get_userbyid(c.relowner), c.relacl::text,"
    "       c.relrowsecurity, obj_description(c.oid, 'pg_class')"
    "  FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace ORDER BY 1",
    "SELECT a.attname::text, a.attacl::text, col_description(a.attrelid, a.attnum)"
    "  FROM pg_attribute a WHERE a.attrelid = 'app.item'::regclass AND a.attnum > 0 ORDER BY 1",
    "SELECT p.proname::text, pg_get_userbyid(p.proowner), p.proacl::text,"
    "       obj_description(p.oid, 'pg_proc')"
    "  FROM pg_proc p WHERE p.pronamespace = 'app'::regnamespace ORDER BY 1",
    "SELECT nspname::text, pg_get_userbyid(nspowner), nspacl::text,"
    "       obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'app'",
    "SELECT pg_get_userbyid(defaclrole), defaclnamespace::regnamespace::text, defaclobjtype,"
    "       defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3",
    "SELECT polname::text, polcmd, polroles::regrole[]::text, pg_get_expr(polqual, polrelid)"
    "  FROM pg_policy ORDER BY 1",
]


def _roles(pair: Pair, down: bool) -> tuple[str, str]:
    suffix = pair.up.dbname[2:]
    owner, reader = f"owner_{suffix}", f"reader_{suffix}"
    for node in (pair.up, pair.down) if down else (pair.up,):
        node.execute(f"CREATE ROLE {owner}")
        node.execute(f"CREATE ROLE {reader} LOGIN PASSWORD 'reader-secret'")
    pair.up.execute(f"GRANT {reader} TO {owner}")
    return owner, reader


def _same(pair: Pair, queries: list[str]) -> None:
    for query in queries:
        assert pair.down.rows(query) == pair.up.rows(query), query


def _as(pair: Pair, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(pair.down.cluster.dsn(pair.down.dbname, user=role), autocommit=True)


def _state(pair: Pair, state: str, timeout: float = 60) -> dict[str, Any]:
    wait_until(lambda: pair.status().get("state") == state, timeout, lambda: str(pair.status()))
    return pair.status()


def test_the_copy_carries_owners_privileges_comments_and_policies(pair: Pair) -> None:
    owner, reader = _roles(pair, down=True)
    pair.down.execute(f"GRANT {reader} TO {owner}")
    pair.up.execute(SCHEMA.format(owner=owner, reader=reader))
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    _state(pair, "streaming")
    _same(pair, CATALOG)
    assert pair.down.scalar("SELECT relacl IS NOT NULL FROM pg_class WHERE relname = 'names'")
    # the application role reads downstream what it reads upstream, no more
    with _as(pair, reader) as conn:
        assert conn.execute("SELECT id, name FROM app.item").fetchall() == [(1, "a")]
        assert conn.execute("SELECT count(*) FROM app.names").fetchone() == (2,)
        try:
            conn.execute("SELECT secret FROM app.item")
            raise AssertionError("the reader may read app.item.secret downstream")
        except psycopg.errors.InsufficientPrivilege:
            pass
    # default privileges hold for a table made later (replicated DDL)
    pair.up.execute(f"SET ROLE {owner}; CREATE TABLE app.later (id int PRIMARY KEY); RESET ROLE")
    pair.caught_up()
    _same(pair, CATALOG)


def test_a_missing_role_names_them_all_and_copy_roles_brings_them(pair: Pair) -> None:
    owner, reader = _roles(pair, down=False)
    pair.up.execute(SCHEMA.format(owner=owner, reader=reader))
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    status = _state(pair, "error")
    error = status["last_error"]
    assert "does not exist" in error, error
    assert f'lacks the upstream\'s roles "{owner}", "{reader}"' in error, error
    assert "copy_roles()" in error and "pg_follower_py.copy_privileges = off" in error, error
    # nothing of the failed copy is downstream
    assert pair.down.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app'") == 0

    made = [r[0] for r in pair.down.rows("SELECT * FROM copy_roles()")]
    assert f'CREATE ROLE "{owner}" WITH NOSUPERUSER INHERIT' in " ".join(made), made
    assert f'GRANT "{reader}" TO "{owner}"' in made, made
    assert not any("PASSWORD" in m for m in made), made
    assert pair.down.rows("SELECT * FROM copy_roles()") == []  # nothing left to do
    # no password without with_passwords
    assert (
        pair.down.scalar("SELECT rolpassword FROM pg_authid WHERE rolname = %s", [reader]) is None
    )
    assert pair.down.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [reader])

    pair.down.execute("SELECT start_follow_worker()")
    wait_until(lambda: pair.status().get("state") == "streaming", 90, lambda: str(pair.status()))
    _same(pair, CATALOG)


def test_copy_roles_with_passwords(pair: Pair) -> None:
    suffix = pair.up.dbname[2:]
    role = f"pw_{suffix}"
    pair.up.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-secret' CONNECTION LIMIT 3")
    pair.follow()
    made = [r[0] for r in pair.down.rows("SELECT * FROM copy_roles(with_passwords => true)")]
    mine = [m for m in made if f'"{role}"' in m]
    assert mine == [
        f'CREATE ROLE "{role}" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN'
        " NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 PASSWORD '...'"
    ], made
    password = "SELECT rolpassword FROM pg_authid WHERE rolname = %s"
    assert pair.down.scalar(password, [role]) == pair.up.scalar(password, [role])
    assert pair.down.scalar(password, [role]).startswith("SCRAM-SHA-256$")


def test_copy_without_owners_and_privileges(pair: Pair) -> None:
    owner, reader = _roles(pair, down=False)
    schema = SCHEMA.format(owner=owner, reader=reader)
    schema = schema.replace(
        f"CREATE POLICY own_rows ON app.item FOR SELECT TO {reader} USING (app.visible(tenant));",
        "",
    )
    pair.up.execute(schema)
    pair.down.execute(f"ALTER DATABASE {pair.down.dbname} SET pg_follower_py.copy_privileges = off")
    pair.down.execute("SELECT start_follow(%s)", [pair.up.dsn])
    _state(pair, "streaming")
    rows = "SELECT id, name, secret, tenant FROM app.item ORDER BY id"
    assert pair.down.rows(rows) == pair.up.rows(rows)
    owners = pair.down.rows(
        "SELECT DISTINCT pg_get_userbyid(relowner), relacl IS NULL FROM pg_class"
        " WHERE relnamespace = 'app'::regnamespace"
    )
    assert owners == [("postgres", True)], owners
    comment = "SELECT obj_description('app.item'::regclass, 'pg_class')"
    assert pair.down.scalar(comment) == "things"
    assert pair.down.scalar(f"SELECT count(*) FROM pg_roles WHERE rolname = '{reader}'") == 0
