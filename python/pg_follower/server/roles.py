"""The upstream's roles, brought to the downstream (``copy_roles()``).

Roles, like databases and tablespaces, belong to the cluster, not to a
database: event triggers never see ``CREATE/ALTER/DROP ROLE`` or ``GRANT
role TO role``, so they are not replicated. The objects copied and replicated
keep their owners and privileges, which need those roles downstream. This
reads the upstream's roles and memberships and makes the statements that
create the missing ones downstream; roles there already are left as they
are, but for memberships they lack. Passwords only when asked (reading them
needs a superuser upstream).

Stdlib only: the server side (PL/Python) builds the statements.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

# Predefined roles (pg_*) exist everywhere; memberships in them are copied.
ROLES_QUERY = (
    "SELECT r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb,"
    " r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,"
    " r.rolvaliduntil::text, {password}"
    " FROM {catalog} r WHERE r.rolname !~ '^pg_' ORDER BY 1"
)
MEMBERSHIPS_QUERY = (
    "SELECT g.rolname::text, m.rolname::text, a.admin_option"
    "  FROM pg_catalog.pg_auth_members a"
    "  JOIN pg_catalog.pg_roles g ON g.oid = a.roleid"
    "  JOIN pg_catalog.pg_roles m ON m.oid = a.member"
    " WHERE m.rolname !~ '^pg_' ORDER BY 1, 2"
)


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    superuser: bool = False
    inherit: bool = True
    createrole: bool = False
    createdb: bool = False
    login: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    password: str | None = None  # the stored hash (SCRAM or md5), if asked for


@dataclass(frozen=True, slots=True)
class Membership:
    role: str
    member: str
    admin_option: bool = False


def roles_query(with_passwords: bool) -> str:
    if with_passwords:  # pg_authid: superusers only
        return ROLES_QUERY.format(password="r.rolpassword", catalog="pg_catalog.pg_authid")
    return ROLES_QUERY.format(password="NULL::text", catalog="pg_catalog.pg_roles")


def to_json(roles: list[Role], memberships: list[Membership]) -> str:
    return json.dumps(
        {"roles": [asdict(r) for r in roles], "memberships": [asdict(m) for m in memberships]}
    )


def from_json(text: str) -> tuple[list[Role], list[Membership]]:
    data: dict[str, Any] = json.loads(text)
    return (
        [Role(**r) for r in data["roles"]],
        [Membership(**m) for m in data["memberships"]],
    )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    if "\\" in value:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def create_role(role: Role) -> str:
    """The CREATE ROLE that makes ``role`` as it is upstream."""
    flags = [
        ("SUPERUSER", role.superuser),
        ("INHERIT", role.inherit),
        ("CREATEROLE", role.createrole),
        ("CREATEDB", role.createdb),
        ("LOGIN", role.login),
        ("REPLICATION", role.replication),
        ("BYPASSRLS", role.bypassrls),
    ]
    parts = [f"CREATE ROLE {quote_ident(role.name)} WITH"]
    parts += [name if on else "NO" + name for name, on in flags]
    if role.connection_limit != -1:
        parts.append(f"CONNECTION LIMIT {int(role.connection_limit)}")
    if role.valid_until is not None:
        parts.append(f"VALID UNTIL {quote_literal(role.valid_until)}")
    if role.password is not None:
        parts.append(f"PASSWORD {quote_literal(role.password)}")
    return " ".join(parts)


def grant_membership(m: Membership) -> str:
    admin = " WITH ADMIN OPTION" if m.admin_option else ""
    return f"GRANT {quote_ident(m.role)} TO {quote_ident(m.member)}{admin}"


def statements(
    roles: list[Role],
    memberships: list[Membership],
    existing: set[str],
    existing_memberships: set[tuple[str, str]],
) -> list[str]:
    """What brings the upstream's roles to a downstream that has ``existing``
    roles and ``existing_memberships`` (role, member): the missing roles, then
    the missing memberships (of roles there or made here, and predefined ones)."""
    out = [create_role(r) for r in roles if r.name not in existing]
    known = existing | {r.name for r in roles}
    for m in memberships:
        there = m.role in known or m.role.startswith("pg_")
        if there and m.member in known and (m.role, m.member) not in existing_memberships:
            out.append(grant_membership(m))
    return out


def redacted(statement: str) -> str:
    """The statement as shown: a password hash is not for display."""
    head, sep, _rest = statement.partition(" PASSWORD ")
    return head + (" PASSWORD '...'" if sep else "")
