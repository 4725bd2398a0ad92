"""copy_roles(): the statements that bring the upstream's roles downstream."""

from __future__ import annotations

from pg_follower.server.roles import (
    Membership,
    Role,
    create_role,
    from_json,
    redacted,
    statements,
    to_json,
)


def test_create_role_states_every_attribute() -> None:
    role = Role(
        "App User",
        login=True,
        createdb=True,
        connection_limit=5,
        valid_until="2030-01-01 00:00:00+00",
    )
    assert create_role(role) == (
        'CREATE ROLE "App User" WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN'
        " NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 VALID UNTIL '2030-01-01 00:00:00+00'"
    )
    assert create_role(Role('we"ird', inherit=False)).startswith(
        'CREATE ROLE "we""ird" WITH NOSUPERUSER NOINHERIT'
    )


def test_passwords_are_quoted_and_never_shown() -> None:
    statement = create_role(Role("a", password="SCRAM-SHA-256$4096:x'y\\z"))
    assert statement.endswith("PASSWORD E'SCRAM-SHA-256$4096:x''y\\\\z'")
    assert redacted(statement) == (
        'CREATE ROLE "a" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN'
        " NOREPLICATION NOBYPASSRLS PASSWORD '...'"
    )


def test_only_missing_roles_and_memberships() -> None:
    roles = [Role("app"), Role("reader"), Role("postgres", superuser=True)]
    memberships = [
        Membership("reader", "app"),
        Membership("pg_read_all_data", "reader", admin_option=True),
        Membership("app", "postgres"),  # there already
        Membership("ghost", "app"),  # a role neither side has
    ]
    out = statements(roles, memberships, {"postgres", "reader"}, {("app", "postgres")})
    assert out == [
        create_role(Role("app")),
        'GRANT "reader" TO "app"',
        'GRANT "pg_read_all_data" TO "reader" WITH ADMIN OPTION',
    ]


def test_json_round_trip() -> None:
    roles, memberships = [Role("a", login=True)], [Membership("a", "b", True)]
    assert from_json(to_json(roles, memberships)) == (roles, memberships)
