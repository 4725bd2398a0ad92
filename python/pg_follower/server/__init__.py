"""The extension's PL/Python entry points; runs inside the server (stdlib only).

Every function takes the ``plpy`` module PL/Python provides. Errors are raised
with ``plpy.error(message, hint=...)`` so the user sees a normal ERROR.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any, NoReturn

from pg_follower.errors import ConfigError
from pg_follower.server import ddl
from pg_follower.source import conninfo as conninfo_mod

Plpy = Any  # the plpy module has no type stubs

_plans: dict[str, Any] = {}


def _plan(plpy: Plpy, sql: str, types: list[str]) -> Any:
    plan = _plans.get(sql)
    if plan is None:
        plan = _plans[sql] = plpy.prepare(sql, types)
    return plan


def _fail(plpy: Plpy, message: str, hint: str) -> NoReturn:
    """Raise an ERROR with a hint (plpy.error raises; this tells the type checker)."""
    plpy.error(message, hint=hint)
    raise AssertionError("plpy.error returned")


def _setting(plpy: Plpy, name: str) -> str | None:
    rows = plpy.execute(_plan(plpy, "SELECT current_setting($1, true) AS v", ["text"]), [name])
    value = rows[0]["v"]
    return value if value else None


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- start_follow / stop_follow ---------------------------------------------


def start_follow(plpy: Plpy, conninfo: str | None, name: str | None, copy_data: bool) -> None:
    """Validate, register the subscription and make sure a worker serves it."""
    if conninfo and "password" in conninfo.lower():
        # On error the server logs the failing statement, password and all;
        # not for the rest of this transaction.
        plpy.execute("SELECT set_config('log_min_error_statement', 'panic', true)")
    if name is None or not name.strip():
        _fail(
            plpy,
            "subscription name must not be empty",
            hint="Pass a name such as 'default' as the second argument of start_follow.",
        )
    if len(name) > 63:
        _fail(
            plpy,
            f'subscription name "{name[:20]}..." is longer than 63 characters',
            hint="Choose a shorter name.",
        )
    if conninfo is None or not conninfo.strip():
        _fail(
            plpy,
            "the upstream conninfo must not be empty",
            hint="Pass a libpq connection string, e.g. 'host=upstream dbname=app user=postgres'.",
        )
    try:
        params = conninfo_mod.parse(conninfo)
    except ConfigError as exc:
        _fail(
            plpy,
            f"invalid upstream conninfo: {exc}",
            hint="Pass a libpq connection string (key=value pairs or a postgresql:// URI).",
        )
    if "replication" in params:
        _fail(
            plpy,
            'the upstream conninfo must not set "replication"',
            hint="The worker opens its replication connection itself; remove replication=...",
        )
    if copy_data is None:
        copy_data = True
    exists = plpy.execute(
        _plan(plpy, "SELECT 1 FROM pgfollower.subscription WHERE name = $1", ["text"]), [name]
    )
    if exists:
        _fail(
            plpy,
            f'subscription "{name}" already exists',
            hint=f"Call stop_follow({_quote_literal(name)}) first, or choose another name.",
        )
    ids = plpy.execute(
        "SELECT nextval('pgfollower.subscription_id_seq') AS id,"
        " (SELECT system_identifier FROM pg_control_system()) AS sysid,"
        " (SELECT oid FROM pg_database WHERE datname = current_database()) AS dboid"
    )[0]
    sub_id = ids["id"]
    # Unique per downstream cluster, database and subscription, so several
    # downstreams can follow one upstream.
    slot_name = f"pgf_{ids['sysid']}_{ids['dboid']}_{sub_id}"
    origin_name = f"pgf_{ids['dboid']}_{sub_id}"
    plpy.execute(
        _plan(
            plpy,
            "INSERT INTO pgfollower.subscription"
            " (id, name, conninfo, upstream, slot_name, origin_name, copy_data)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)",
            ["int4", "text", "text", "text", "text", "text", "bool"],
        ),
        [sub_id, name, conninfo, conninfo_mod.redact(conninfo), slot_name, origin_name, copy_data],
    )
    plpy.execute(
        _plan(plpy, "INSERT INTO pgfollower.subscription_status (sub_id) VALUES ($1)", ["int4"]),
        [sub_id],
    )
    # A leftover origin of the same name (a subscription whose extension was
    # dropped) would carry a stale position: start from nothing.
    _drop_origin(plpy, origin_name, wait_seconds=0)
    plpy.execute(_plan(plpy, "SELECT pg_replication_origin_create($1)", ["text"]), [origin_name])
    plpy.execute(_plan(plpy, "SELECT pg_notify('pg_follower_py', $1)", ["text"]), [name])
    ensure_worker(plpy, wait=False)


def stop_follow(plpy: Plpy, name: str | None) -> None:
    """Remove the subscription, its origin and its upstream slot."""
    rows = plpy.execute(
        _plan(
            plpy,
            "DELETE FROM pgfollower.subscription WHERE name = $1"
            " RETURNING conninfo, upstream, slot_name, origin_name",
            ["text"],
        ),
        [name],
    )
    if not rows:
        _no_such_subscription(plpy, name)
    row = rows[0]
    # The worker notices the row locked by our DELETE within a second and lets
    # go of the origin and the slot; a signal makes it look at once.
    pid = plpy.execute("SELECT pgfollower.worker_pid() AS pid")[0]["pid"]
    # Not ours to signal (another OS user)? It polls every second anyway.
    if pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGUSR1)
    plpy.execute(_plan(plpy, "SELECT pg_notify('pg_follower_py', $1)", ["text"]), [name])
    _drop_origin(plpy, row["origin_name"], wait_seconds=20)
    error = _drop_upstream_slot(plpy, row["conninfo"], row["slot_name"])
    if error:
        plpy.warning(
            f'could not drop replication slot "{row["slot_name"]}" on the upstream'
            f" ({row['upstream']}): {error}",
            hint=f"Drop it on the upstream with SELECT pg_drop_replication_slot("
            f"{_quote_literal(row['slot_name'])}); until then the upstream keeps WAL for it.",
        )


def _drop_origin(plpy: Plpy, origin_name: str, wait_seconds: float) -> None:
    exists = _plan(plpy, "SELECT 1 FROM pg_replication_origin WHERE roname = $1", ["text"])
    drop = _plan(plpy, "SELECT pg_replication_origin_drop($1)", ["text"])
    deadline = time.monotonic() + wait_seconds
    while plpy.execute(exists, [origin_name]):
        try:
            with plpy.subtransaction():
                plpy.execute(drop, [origin_name])
            return
        except plpy.SPIError as exc:
            # 55006 object_in_use: the worker has not let go of it yet.
            if getattr(exc, "sqlstate", None) != "55006" or time.monotonic() > deadline:
                _fail(
                    plpy,
                    f'cannot drop replication origin "{origin_name}": {exc}',
                    hint="Stop the pg_follower worker of this database, then try again.",
                )
            time.sleep(0.2)


def _worker_python() -> str:
    """The interpreter the server embeds: same version, so the same packages work."""
    major, minor = sys.version_info[:2]
    for candidate in (f"python{major}.{minor}", f"python{major}"):
        path = os.path.join(sys.base_prefix, "bin", candidate)
        if os.access(path, os.X_OK):
            return path
    return "/usr/bin/python3"


def _python_env(plpy: Plpy) -> dict[str, str]:
    """Environment of the worker and helpers: the installed package first,
    unless ``pg_follower_py.worker_pythonpath`` (superuser-only, for running a
    development checkout's worker) puts other directories before it."""
    # this file is pg_follower/server/__init__.py: three levels up is the install dir
    pydir = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    extra = _setting(plpy, "pg_follower_py.worker_pythonpath")
    path = f"{extra}:{pydir}" if extra else pydir
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONPATH": path, "LC_ALL": "C.UTF-8"}
    spool = _setting(plpy, "pg_follower_py.spool_dir")
    if spool:  # where big streamed transactions wait for their commit
        env["PG_FOLLOWER_SPOOL_DIR"] = spool
    return env


def _drop_upstream_slot(plpy: Plpy, conninfo: str, slot_name: str) -> str | None:
    """Drop the slot through a helper process; return an error text or None."""
    res = _helper(plpy, conninfo, ["drop-slot", "--slot", slot_name])
    if isinstance(res, str):
        return res
    if res.returncode != 0:
        lines = (res.stderr.strip() or "unknown error").splitlines()
        return lines[-1]
    return None


def _no_such_subscription(plpy: Plpy, name: str | None) -> NoReturn:
    _fail(
        plpy,
        f'subscription "{name}" does not exist',
        hint="SELECT name FROM follow_status lists the subscriptions of this database.",
    )


def sync_sequences(plpy: Plpy, name: str | None) -> int:
    """Set every downstream sequence to its upstream value; how many were set."""
    sub = _subscription_upstream(plpy, name)
    out = _read_upstream(plpy, sub, ["upstream-sequences"], "the sequences")
    setval = _plan(
        plpy,
        "SELECT pg_catalog.setval(c.oid, $3, $4) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'S'",
        ["text", "text", "bigint", "boolean"],
    )
    done = 0
    for schema, seq, last_value, is_called in json.loads(out):
        if plpy.execute(setval, [schema, seq, last_value, is_called]):
            done += 1
        else:
            plpy.notice(f'pg_follower_py: sequence "{schema}"."{seq}" is not on the downstream')
    return done


# -- wait_for_catchup --------------------------------------------------------

CATCHUP_POLL = 0.1  # seconds between looks at the worker's status


def wait_for_catchup(plpy: Plpy, name: str | None, timeout: str | None) -> str:
    """Wait until subscription ``name`` has durably applied the upstream's WAL
    position as of now; return that position (text), or raise at ``timeout``.

    The criterion is the worker's ``flushed_lsn``: commits are counted once
    flushed downstream, and while nothing is in flight it follows the
    upstream's keepalives, so WAL of other databases (or of nothing
    replicated) does not keep it waiting.
    """
    isolation = plpy.execute("SELECT current_setting('transaction_isolation') AS i")[0]["i"]
    if isolation != "read committed":
        _fail(
            plpy,
            f"wait_for_catchup cannot wait in a {isolation.upper()} transaction:"
            " it would never see the worker's progress",
            hint="Call it outside an explicit transaction, or in a READ COMMITTED one.",
        )
    seconds = plpy.execute(
        _plan(plpy, "SELECT extract(epoch FROM $1::interval)::float8 AS s", ["interval"]),
        [timeout],
    )[0]["s"]
    if seconds is None or seconds < 0:
        _fail(
            plpy,
            f"invalid timeout {timeout!r} for wait_for_catchup",
            hint="Pass a non-negative interval such as '60s'.",
        )
    sub = _catchup_row(plpy, name)
    if sub is None:
        _no_such_subscription(plpy, name)
    _refuse_if_paused(plpy, name, sub)
    target = _read_upstream(plpy, sub, ["upstream-wal-lsn"], "the WAL position").strip()
    deadline = time.monotonic() + seconds
    while True:
        sub = _catchup_row(plpy, name, target)
        if sub is None:
            _fail(
                plpy,
                f'subscription "{name}" was removed while wait_for_catchup waited',
                hint="SELECT name FROM follow_status lists the subscriptions.",
            )
        if sub["done"]:
            return target
        _refuse_if_paused(plpy, name, sub)
        if time.monotonic() >= deadline:
            break
        # pg_sleep, not time.sleep: a cancel request ends the wait
        plpy.execute(
            _plan(plpy, "SELECT pg_catalog.pg_sleep($1)", ["float8"]),
            [min(CATCHUP_POLL, max(0.0, deadline - time.monotonic()))],
        )
    flushed = sub["flushed_lsn"]
    where = (
        f"it has applied up to {flushed}, {sub['behind']} bytes behind"
        if flushed
        else "it has applied nothing yet"
    )
    state = sub["state"]
    if not sub["worker"]:
        state = "stopped: no worker is running for this database"
    error = f"; last error: {sub['last_error']}" if sub["last_error"] else ""
    _fail(
        plpy,
        f'subscription "{name}" did not catch up with the upstream within {seconds:g} s:'
        f" the target was {target}, the upstream's WAL position at the call; {where}"
        f" (state {state}{error})",
        hint="See follow_status; wait longer with wait_for_catchup(name, timeout => '5min').",
    )


def _catchup_row(plpy: Plpy, name: str | None, target: str | None = None) -> Any:
    rows = plpy.execute(
        _plan(
            plpy,
            "SELECT s.conninfo, s.upstream, s.paused, st.state, st.last_error,"
            " st.flushed_lsn::text AS flushed_lsn,"
            " coalesce(st.flushed_lsn >= $2::pg_lsn, false) AS done,"
            " pg_catalog.pg_wal_lsn_diff($2::pg_lsn, st.flushed_lsn)::bigint AS behind,"
            " pgfollower.worker_pid() IS NOT NULL AS worker"
            " FROM pgfollower.subscription s"
            " LEFT JOIN pgfollower.subscription_status st ON st.sub_id = s.id"
            " WHERE s.name = $1",
            ["text", "text"],
        ),
        [name, target or "0/0"],
    )
    return rows[0] if rows else None


def _refuse_if_paused(plpy: Plpy, name: str | None, sub: Any) -> None:
    if sub["paused"]:
        _fail(
            plpy,
            f'subscription "{name}" is paused: it does not catch up until it is resumed',
            hint=f"SELECT resume_follow({_quote_literal(name or '')}); then wait again.",
        )


def copy_roles(plpy: Plpy, name: str | None, with_passwords: bool) -> list[str]:
    """Create the upstream's roles this cluster lacks, and their memberships;
    the statements run (passwords not shown)."""
    from pg_follower.server import roles

    sub = _subscription_upstream(plpy, name)
    args = ["upstream-roles", *(["--with-passwords"] if with_passwords else [])]
    out = _read_upstream(
        plpy,
        sub,
        args,
        "the roles",
        " (with_passwords needs a superuser in the conninfo)" if with_passwords else "",
    )
    upstream_roles, memberships = roles.from_json(out)
    existing = {r["rolname"] for r in plpy.execute("SELECT rolname::text FROM pg_roles")}
    existing_memberships = {
        (r["g"], r["m"])
        for r in plpy.execute(
            "SELECT g.rolname::text AS g, m.rolname::text AS m FROM pg_auth_members a"
            " JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member"
        )
    }
    if with_passwords:
        # a failing statement is logged with its text: not a password hash
        plpy.execute("SELECT set_config('log_min_error_statement', 'panic', true)")
    done: list[str] = []
    for statement in roles.statements(upstream_roles, memberships, existing, existing_memberships):
        try:
            with plpy.subtransaction():
                plpy.execute(statement)
        except plpy.SPIError as exc:
            _fail(
                plpy,
                f"copy_roles: {exc} in: {roles.redacted(statement)}",
                hint="Creating roles needs CREATEROLE (SUPERUSER for superusers, REPLICATION"
                " and BYPASSRLS roles); nothing was created.",
            )
        done.append(roles.redacted(statement))
    return done


def _subscription_upstream(plpy: Plpy, name: str | None) -> Any:
    """Subscription ``name``'s conninfo and upstream (for messages); an error if none."""
    rows = plpy.execute(
        _plan(
            plpy, "SELECT conninfo, upstream FROM pgfollower.subscription WHERE name = $1", ["text"]
        ),
        [name],
    )
    if not rows:
        _no_such_subscription(plpy, name)
    return rows[0]


def _read_upstream(plpy: Plpy, sub: Any, args: list[str], what: str, hint_extra: str = "") -> str:
    """What a helper reading the upstream of ``sub`` (a row with conninfo and
    upstream) printed; an error naming ``what`` it could not read."""
    res = _helper(plpy, sub["conninfo"], args)
    if isinstance(res, str) or res.returncode != 0:
        error = res if isinstance(res, str) else (res.stderr.strip() or "unknown error")
        _fail(
            plpy,
            f"cannot read {what} of the upstream ({sub['upstream']}): {error}",
            hint=f"Check that the upstream is reachable, then try again{hint_extra}.",
        )
    return res.stdout


def _helper(plpy: Plpy, conninfo: str, args: list[str]) -> subprocess.CompletedProcess[str] | str:
    """Run ``python -m pg_follower <args>`` with the conninfo on its stdin (not
    its command line); its result, or an error text if it could not run."""
    argv = [_worker_python(), "-m", "pg_follower", *args]
    try:
        res = subprocess.run(
            argv,
            input=conninfo,
            capture_output=True,
            text=True,
            env=_python_env(plpy),
            timeout=60,
            close_fds=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the {args[0]} helper failed: {exc}"
    return res


def ensure_worker(plpy: Plpy, wait: bool) -> int | None:
    """Launch the worker unless a live one holds this database's lock."""
    pid = plpy.execute("SELECT pgfollower.worker_pid() AS pid")[0]["pid"]
    if pid:
        return int(pid)
    launch = (_setting(plpy, "pg_follower_py.launch_worker") or "on").lower()
    if launch in ("off", "false", "0", "no"):
        plpy.notice(
            "pg_follower_py: no worker is running for this database",
            hint="pg_follower_py.launch_worker is off:"
            ' run "pg-follower worker --dsn ..." yourself.',
        )
        return None
    info = plpy.execute(
        "SELECT current_setting('unix_socket_directories') AS sockdirs,"
        " current_setting('port') AS port, current_database() AS db,"
        " current_user AS usr, current_setting('data_directory') AS datadir"
    )[0]
    sockdirs = [d.strip() for d in info["sockdirs"].split(",") if d.strip()]
    dsn = conninfo_mod.make_conninfo(
        {
            "host": sockdirs[0] if sockdirs else "localhost",
            "port": info["port"],
            "dbname": info["db"],
            "user": info["usr"],
        }
    )
    log_file = _setting(plpy, "pg_follower_py.log_file") or os.path.join(
        info["datadir"], "pg_follower_py.log"
    )
    env = _python_env(plpy)
    env["PG_FOLLOWER_DSN"] = dsn  # not on the command line: ps shows that
    argv = [_worker_python(), "-m", "pg_follower", "worker", "--detach", "--log-file", log_file]
    try:
        res = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
            close_fds=True,
            start_new_session=True,
            cwd="/",
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        plpy.warning(
            f"pg_follower_py: could not launch the worker: {exc}",
            hint='Run "pg-follower worker --dsn ..." yourself, or check the installation.',
        )
        return None
    if res.returncode != 0:
        plpy.warning(
            f"pg_follower_py: the worker failed to start: {res.stderr.strip()[-500:]}",
            hint=f"See {log_file}.",
        )
        return None
    if not wait:
        return None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = plpy.execute("SELECT pgfollower.worker_pid() AS pid")[0]["pid"]
        if pid:
            return int(pid)
        time.sleep(0.1)
    return None


# -- DDL capture -------------------------------------------------------------


def _frames_of_0_1_0(plpy: Plpy, frames: str | bool) -> str | None:
    """The 0.1.0 SQL, still in place until ALTER EXTENSION ... UPDATE, passes
    whether the DDL ran nested (a boolean) instead of the call stack: it
    refused nested DDL, and so does this until the update (None: refused
    with a WARNING under unsupported_ddl = 'warn', nothing to queue)."""
    if frames is True:
        _refuse(
            plpy,
            ddl.Unsupported(
                "DDL inside a function or a DO block needs the extension's 0.2.0 SQL,"
                " and this database still has 0.1.0",
                "run ALTER EXTENSION pg_follower_py UPDATE on this node",
            ),
        )
        return None
    return "" if frames is False else str(frames)


def capture_ddl(
    plpy: Plpy,
    tag: str,
    query: str,
    commands_json: str,
    search_path: str,
    frames: str,
    standard_strings: bool,
) -> list[str]:
    """The records (JSON) that replay one ddl_command_end firing; PL/pgSQL queues them.

    ``frames``: the event trigger's call stack below its own frame, "" when the
    DDL is a top-level statement (see ddl.statement_source).
    """
    commands = [ddl.Command(**c) for c in json.loads(commands_json)]
    frames_text = _frames_of_0_1_0(plpy, frames)
    if frames_text is None:
        return []
    frames = frames_text
    try:
        messages = ddl.capture_command(
            tag,
            query,
            commands,
            search_path,
            frames=frames,
            standard_conforming_strings=standard_strings,
            ordinal=_next_ordinal(plpy, query, tag) if not frames else None,
            sql_functions=lambda: _sql_functions(plpy, frames),
        )
    except ddl.Unsupported as exc:
        _refuse(plpy, exc)
        return []
    # the tables an ALTER TABLE changed (a RENAME COLUMN names the column)
    altered = [
        c.object_identity
        for c in commands
        if c.command_tag == "ALTER TABLE" and c.object_type == "table" and c.object_identity
    ]
    out: list[dict[str, object]] = []
    for message in messages:
        if message.get("kind") in ("grant", "revoke"):
            temporary, named = _temporary_relations(plpy, str(message["sql"]))
            if temporary and temporary == named:
                continue  # only temporary tables: never replicated
            if temporary:
                _refuse(
                    plpy,
                    ddl.Unsupported(
                        f"the {tag} statement names temporary tables, which are not"
                        " replicated, beside others",
                        "Grant or revoke on the temporary tables in a statement of its own.",
                    ),
                )
                return []
        if message.get("kind") == "alter_table":
            for table in altered:
                problem = _rewritten_with_volatile_values(plpy, str(message["sql"]), table)
                if problem is not None:
                    _refuse(plpy, problem)
                    return []
        out.append(message)
        if message.get("tag") in ("CREATE MATERIALIZED VIEW", "REFRESH MATERIALIZED VIEW"):
            for view in ddl.populated_matviews(tag, commands):
                digest = _matview_digest(plpy, view)
                if digest is not None:
                    out.append(ddl.matview_digest(tag, view, search_path, digest))
        if message.get("kind") == "create_table":
            out.extend(_replica_identity(plpy, str(message["identity"]), search_path))
        elif message.get("kind") == "alter_table":
            for table in altered:
                out.extend(_replica_identity(plpy, table, search_path))
    return [_encode(m) for m in out]


def _sql_functions(plpy: Plpy, frames: str) -> list[tuple[str, str]]:
    """(name, body) of the SQL-language functions whose frame can start
    ``frames`` (the frame names the function by its bare name only)."""
    rows = plpy.execute(
        _plan(
            plpy,
            "SELECT p.proname::text AS name, p.prosrc AS body FROM pg_catalog.pg_proc p"
            " JOIN pg_catalog.pg_language l ON l.oid = p.prolang"
            " WHERE l.lanname = 'sql' AND p.prosqlbody IS NULL"
            "   AND starts_with($1, 'SQL function \"' || p.proname || '\" statement ')",
            ["text"],
        ),
        [frames],
    )
    return [(r["name"], r["body"]) for r in rows]


# Firings so far of each tag for the query being run: (query, its receipt time) -> counts.
_firings: dict[tuple[str, str], dict[str, int]] = {}


def _next_ordinal(plpy: Plpy, query: str, tag: str) -> int:
    """How many earlier firings with ``tag`` the current client query had.

    All statements of one simple-protocol query share statement_timestamp()
    (the receipt of the client's message), and run in order.
    """
    ts = plpy.execute("SELECT pg_catalog.statement_timestamp()::text AS ts")[0]["ts"]
    key = (query, ts)
    counts = _firings.get(key)
    if counts is None:
        _firings.clear()  # only the current query matters
        counts = _firings[key] = {}
    n = counts.get(tag, 0)
    counts[tag] = n + 1
    return n


def _temporary_relations(plpy: Plpy, statement: str) -> tuple[int, int]:
    """How many of the tables a GRANT or REVOKE names one by one are temporary,
    and how many it names."""
    names = ddl.granted_relations(statement)
    temporary = 0
    for parts in names:
        if len(parts) > 1:
            temporary += str(parts[-2]).startswith("pg_temp")
            continue
        rows = plpy.execute(
            _plan(
                plpy,
                "SELECT EXISTS (SELECT 1 FROM pg_class WHERE relname = $1"
                " AND relnamespace = pg_my_temp_schema()) AS temp",
                ["text"],
            ),
            [parts[0]],
        )
        temporary += bool(rows[0]["temp"])
    return temporary, len(names)


def _matview_digest(plpy: Plpy, identity: str) -> str | None:
    """``rows:md5`` of a materialized view's rows (None: not populated), their
    text form under the worker's output settings, restored afterwards."""
    populated = plpy.execute(
        _plan(plpy, "SELECT relispopulated FROM pg_class WHERE oid = $1::regclass", ["text"]),
        [identity],
    )
    if not populated or not populated[0]["relispopulated"]:
        return None
    names = list(ddl.DIGEST_SETTINGS)
    saved = [_setting(plpy, name) or "" for name in names]
    setter = _plan(plpy, "SELECT set_config($1, $2, true)", ["text", "text"])
    try:
        for name in names:
            plpy.execute(setter, [name, ddl.DIGEST_SETTINGS[name]])
        return str(plpy.execute(ddl.matview_digest_query(identity))[0]["digest"])
    finally:
        for name, value in zip(names, saved, strict=True):
            plpy.execute(setter, [name, value])


def _rewritten_with_volatile_values(
    plpy: Plpy, statement: str, identity: str
) -> ddl.Unsupported | None:
    """ADD COLUMN with a volatile default (random(), now(), serial, identity...)
    computes a value for each existing row; the downstream would compute others.

    A non-volatile default is stored once as the column's missing value
    (atthasmissing); a volatile one is not, and existing rows get their own.
    """
    columns = ddl.added_columns(statement)
    if not columns:
        return None
    rows = plpy.execute(
        _plan(
            plpy,
            "SELECT a.attname FROM pg_attribute a"
            " WHERE a.attrelid = $1::regclass AND a.attname = ANY($2)"
            "   AND (a.atthasdef OR a.attidentity <> '') AND NOT a.atthasmissing"
            "   AND NOT a.attisdropped AND a.attgenerated = ''",
            ["text", "text[]"],
        ),
        [identity, columns],
    )
    if not rows:
        return None
    filled = plpy.execute(f"SELECT EXISTS (SELECT 1 FROM {identity}) AS filled")[0]["filled"]
    if not filled:
        return None
    names = ", ".join(r["attname"] for r in rows)
    return ddl.Unsupported(
        f"ALTER TABLE {identity} adds {names} with a volatile default or identity,"
        " which gives the existing rows values the downstream would compute differently",
        "Add the column without a default, fill it with UPDATE, then ALTER COLUMN"
        " ... SET DEFAULT (or ADD GENERATED ... AS IDENTITY).",
    )


def capture_drop(
    plpy: Plpy,
    tag: str,
    query: str,
    dropped_json: str,
    search_path: str,
    frames: str,
    standard_strings: bool,
) -> list[str]:
    """The records (JSON) that replay the DROP an sql_drop firing reports."""
    dropped = [ddl.DroppedObject(**d) for d in json.loads(dropped_json)]
    frames_text = _frames_of_0_1_0(plpy, frames)
    if frames_text is None:
        return []
    frames = frames_text
    try:
        messages = ddl.capture_drop(
            tag,
            query,
            dropped,
            search_path,
            frames=frames,
            standard_conforming_strings=standard_strings,
            sql_functions=lambda: _sql_functions(plpy, frames),
        )
    except ddl.Unsupported as exc:
        _refuse(plpy, exc)
        return []
    return [_encode(m) for m in messages]


def _encode(message: dict[str, object]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _replica_identity(plpy: Plpy, identity: str, search_path: str) -> list[dict[str, object]]:
    """Replay the REPLICA IDENTITY FULL our trigger gave a table without a key,
    or the DEFAULT it gave back once the table had a primary key (in this
    transaction: sql/35_replica_identity.sql lists those tables' OIDs)."""
    rows = plpy.execute(
        _plan(
            plpy,
            "SELECT relreplident, oid::text = ANY (string_to_array("
            " current_setting('pg_follower_py.replica_identity_default', true), ',')) AS back"
            " FROM pg_class WHERE oid = $1::regclass",
            ["text"],
        ),
        [identity],
    )
    if not rows:
        return []
    if rows[0]["relreplident"] == "f":
        setting = "FULL"
    elif rows[0]["relreplident"] == "d" and rows[0]["back"]:
        setting = "DEFAULT"
    else:
        return []
    return [
        {
            "v": ddl.FORMAT_VERSION,
            "kind": "replica_identity",
            "tag": "ALTER TABLE",
            "identity": identity,
            "search_path": search_path,
            "sql": f"ALTER TABLE {identity} REPLICA IDENTITY {setting}",
        }
    ]


def _refuse(plpy: Plpy, exc: ddl.Unsupported) -> None:
    policy = (_setting(plpy, "pg_follower_py.unsupported_ddl") or "error").lower()
    if policy not in ("error", "warn"):
        _fail(
            plpy,
            f'invalid value for pg_follower_py.unsupported_ddl: "{policy}"',
            hint="Use 'error' (the default) or 'warn'.",
        )
    if policy == "warn":
        plpy.warning(
            f"pg_follower_py: {exc.message}; it is NOT replicated to the followers",
            hint=exc.hint,
        )
        return
    _fail(
        plpy,
        f"pg_follower_py: {exc.message}",
        hint=f"{exc.hint} To run it here without replicating it, SET"
        " pg_follower_py.unsupported_ddl = 'warn'.",
    )
