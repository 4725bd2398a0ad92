"""Parse, quote and redact libpq connection strings, the way PostgreSQL 15's libpq does."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pg_follower.errors import ConfigError

# PostgreSQL 15 libpq's keywords, in the order of PQconninfoOptions (the order
# PQconninfoParse, and so psycopg's conninfo_to_dict, reports them in).
_KEYWORD_ORDER = (
    "service",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "replication",
    "target_session_attrs",
)
_RANK = {keyword: rank for rank, keyword in enumerate(_KEYWORD_ORDER)}

KEYWORDS: frozenset[str] = frozenset(_KEYWORD_ORDER)
"""Every keyword PostgreSQL 15's libpq accepts (plus the alias ``requiressl``, not listed)."""

SECRET_KEYWORDS: frozenset[str] = frozenset({"password", "sslpassword"})
"""Keywords whose values must never be shown."""

INVALID = "<invalid conninfo>"
"""What redact() returns for a string libpq would reject."""

_URI_PREFIXES = ("postgresql://", "postgres://")
# libpq uses C isspace(), not Unicode whitespace.
_SPACE = frozenset(" \t\n\r\v\f")
_HEX = "0123456789abcdefABCDEF"
_WORDLIKE = re.compile(r"[A-Za-z0-9_]{0,63}")


def parse(conninfo: str) -> dict[str, str]:
    """Parse a keyword/value string or a URI like PQconninfoParse, without defaults.

    Raises ConfigError, whose message never shows a password.
    """
    if not isinstance(conninfo, str):
        raise ConfigError("connection info string must be text")
    # libpq stops at a NUL; accepting one would make us and libpq disagree.
    if "\0" in conninfo:
        raise ConfigError("connection info string contains a NUL character")
    for prefix in _URI_PREFIXES:
        if conninfo.startswith(prefix):
            params = _parse_uri(conninfo, len(prefix))
            break
    else:
        params = _parse_keyword_value(conninfo)
    return dict(sorted(params.items(), key=lambda item: _RANK[item[0]]))


def is_uri(conninfo: str) -> bool:
    """Whether libpq would read conninfo as a URI rather than keyword/value pairs."""
    return conninfo.startswith(_URI_PREFIXES)


def make_conninfo(params: Mapping[str, str]) -> str:
    """Build a keyword/value string from params, quoting values as libpq needs."""
    parts = []
    for keyword, value in params.items():
        if keyword not in KEYWORDS:
            shown = _quoted(keyword, known_only=False) or "(not shown)"
            raise ConfigError(f"invalid connection option {shown}")
        if "\0" in value:
            raise ConfigError(f'the value of "{keyword}" contains a NUL character')
        parts.append(f"{keyword}={quote(value)}")
    return " ".join(parts)


def quote(value: str) -> str:
    """Quote one value for a keyword/value string (only when libpq needs it)."""
    if value and not any(c.isspace() or c in "'\\" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def redact(conninfo: str) -> str:
    """Return conninfo as keyword/value pairs without its passwords, or INVALID."""
    try:
        params = parse(conninfo)
    except ConfigError:
        return INVALID
    safe = {k: v for k, v in params.items() if k not in SECRET_KEYWORDS}
    # Programs that expand dbname (walreceiver, psql -d) would read a
    # connection string there, so a password could hide in it too.
    dbname = safe.get("dbname")
    if dbname is not None and (is_uri(dbname) or "=" in dbname):
        inner = redact(dbname)
        if inner != INVALID:
            safe["dbname"] = inner
    return make_conninfo(safe)


def has_password(conninfo: str) -> bool:
    """Whether conninfo sets a non-empty password (libpq ignores an empty one)."""
    return bool(parse(conninfo).get("password"))


def _quoted(token: str, *, known_only: bool, after_secret: bool = False) -> str | None:
    """Return token quoted for an error message, or None if it may be a secret.

    A token right after a password is likely the rest of an unquoted password
    with a space in it; anything not word-like may be a whole URI (a leading
    space makes libpq read one as keyword/value).
    """
    if after_secret:
        return None
    if known_only and token and token not in KEYWORDS:
        return None
    if _WORDLIKE.fullmatch(token) is None:
        return None
    return f'"{token}"'


def _hint(token: str, after_secret: bool) -> str:
    """Guess at the mistake behind a bad keyword/value token."""
    if "://" in token:
        return " (a URI must start with postgresql:// or postgres://, without spaces)"
    if after_secret:
        return " (quote a value that contains spaces)"
    return ""


def _store(params: dict[str, str], keyword: str, value: str) -> bool:
    """Store like libpq's conninfo_storeval; False if keyword is unknown."""
    if keyword == "requiressl":
        keyword, value = "sslmode", "require" if value.startswith("1") else "prefer"
    if keyword not in KEYWORDS:
        return False
    params[keyword] = value
    return True


def _parse_keyword_value(conninfo: str) -> dict[str, str]:
    """Parse ``keyword = value`` pairs (libpq's conninfo_parse)."""
    params: dict[str, str] = {}
    after_secret = False
    i, n = 0, len(conninfo)
    while i < n:
        if conninfo[i] in _SPACE:
            i += 1
            continue
        start = i
        while i < n and conninfo[i] != "=" and conninfo[i] not in _SPACE:
            i += 1
        name = conninfo[start:i]
        while i < n and conninfo[i] in _SPACE:
            i += 1
        if i == n or conninfo[i] != "=":
            shown = _quoted(name, known_only=True, after_secret=after_secret)
            where = shown or f"the word at position {start + 1}"
            hint = _hint(name, after_secret)
            raise ConfigError(f'missing "=" after {where} in connection info string{hint}')
        i += 1
        while i < n and conninfo[i] in _SPACE:
            i += 1
        value: list[str] = []
        if i < n and conninfo[i] == "'":
            i += 1
            while True:
                if i == n:
                    raise ConfigError("unterminated quoted string in connection info string")
                c = conninfo[i]
                if c == "\\":
                    i += 1
                    if i < n:
                        value.append(conninfo[i])
                        i += 1
                    continue
                i += 1
                if c == "'":
                    break
                value.append(c)
        else:
            # Unquoted values take backslash escapes too.
            while i < n:
                c = conninfo[i]
                i += 1
                if c in _SPACE:
                    break
                if c == "\\":
                    if i < n:
                        value.append(conninfo[i])
                        i += 1
                else:
                    value.append(c)
        if not _store(params, name, "".join(value)):
            shown = _quoted(name, known_only=False, after_secret=after_secret)
            where = shown or f"at position {start + 1}"
            hint = _hint(name, after_secret)
            raise ConfigError(f"invalid connection option {where}{hint}")
        after_secret = name in SECRET_KEYWORDS
    return params


def _parse_uri(uri: str, prefix_len: int) -> dict[str, str]:
    """Parse a postgresql:// URI (libpq's conninfo_uri_parse_options)."""
    params: dict[str, str] = {}
    n = len(uri)
    p = prefix_len
    # Credentials: an "@" before any "/" (a "?" does not stop the look-ahead).
    at = p
    while at < n and uri[at] not in "@/":
        at += 1
    if at < n and uri[at] == "@":
        user, colon, password = uri[p:at].partition(":")
        if user:
            params["user"] = _uri_decode(user, 'the value of "user"')
        if colon and password:
            params["password"] = _uri_decode(password, 'the value of "password"')
        p = at + 1

    hosts: list[str] = []
    ports: list[str] = []
    sep = ""
    while True:
        if p < n and uri[p] == "[":
            start = p + 1
            p = uri.find("]", start)
            if p < 0:
                raise ConfigError(
                    'end of string reached when looking for matching "]" '
                    "in IPv6 host address in URI"
                )
            if p == start:
                raise ConfigError("IPv6 host address may not be empty in URI")
            host = uri[start:p]
            p += 1
            if p < n and uri[p] not in ":/?,":
                raise ConfigError(
                    f'unexpected character "{uri[p]}" at position {p + 1} in URI '
                    '(expected ":" or "/")'
                )
        else:
            start = p
            while p < n and uri[p] not in ":/?,":
                p += 1
            host = uri[start:p]
        sep = uri[p] if p < n else ""
        hosts.append(host)
        port = ""
        if sep == ":":
            start = p = p + 1
            while p < n and uri[p] not in "/?,":
                p += 1
            port = uri[start:p]
            sep = uri[p] if p < n else ""
        ports.append(port)
        if sep != ",":
            break
        p += 1
    # libpq joins the lists before decoding, so "%2C" splits a host in two.
    # libpq sets a list if its text is non-empty, even when it is only commas.
    for keyword, items in (("host", hosts), ("port", ports)):
        if joined := ",".join(items):
            params[keyword] = _uri_decode(joined, f'the value of "{keyword}"')

    if sep == "/":
        start = p = p + 1
        while p < n and uri[p] != "?":
            p += 1
        # An empty dbname is left unset, as libpq does.
        if p > start:
            params["dbname"] = _uri_decode(uri[start:p], 'the value of "dbname"')
        sep = uri[p] if p < n else ""
    if sep == "?":
        _parse_uri_query(uri, p + 1, params)
    return params


def _parse_uri_query(uri: str, p: int, params: dict[str, str]) -> None:
    """Parse the ``key=value&...`` part of a URI into params."""
    n = len(uri)
    after_secret = False
    while p < n:
        start = p
        eq = -1
        while True:
            if p < n and uri[p] == "=":
                if eq >= 0:
                    shown = _quoted(uri[start:eq], known_only=False, after_secret=after_secret)
                    raise ConfigError(
                        'extra key/value separator "=" in URI query parameter'
                        + (f": {shown}" if shown else f" at position {start + 1}")
                    )
                eq = p
                p += 1
            elif p == n or uri[p] == "&":
                end = p
                p = min(p + 1, n)
                if eq < 0:
                    shown = _quoted(uri[start:end], known_only=True, after_secret=after_secret)
                    raise ConfigError(
                        'missing key/value separator "=" in URI query parameter'
                        + (f": {shown}" if shown else f" at position {start + 1}")
                    )
                break
            else:
                p += 1
        where = f"URI query parameter at position {start + 1}"
        keyword = _uri_decode(uri[start:eq], where)
        value = _uri_decode(uri[eq + 1 : end], f"the value of {where}")
        # libpq's JDBC compatibility: ssl=true means sslmode=require.
        if keyword == "ssl" and value == "true":
            keyword, value = "sslmode", "require"
        if not _store(params, keyword, value):
            shown = _quoted(keyword, known_only=False, after_secret=after_secret)
            raise ConfigError(
                "invalid URI query parameter"
                + (f": {shown}" if shown else f" at position {start + 1}")
            )
        after_secret = keyword in SECRET_KEYWORDS


def _uri_decode(text: str, what: str) -> str:
    """Percent-decode text; what names it in errors, since text may be a password."""
    if "%" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "%":
            out += c.encode()
            i += 1
            continue
        digits = text[i + 1 : i + 3]
        if len(digits) != 2 or digits[0] not in _HEX or digits[1] not in _HEX:
            raise ConfigError(f"invalid percent-encoded token in {what}")
        byte = int(digits, 16)
        if byte == 0:
            raise ConfigError(f"forbidden value %00 in {what}")
        out.append(byte)
        i += 3
    try:
        return out.decode()
    except UnicodeDecodeError:
        # libpq takes any bytes; a conninfo we store and show must be text.
        raise ConfigError(f"percent-encoded bytes are not valid UTF-8 in {what}") from None


# libpq's environment variable for each keyword that has one.
_ENVIRONMENT = {
    "service": "PGSERVICE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "passfile": "PGPASSFILE",
    "channel_binding": "PGCHANNELBINDING",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "dbname": "PGDATABASE",
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "client_encoding": "PGCLIENTENCODING",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "sslmode": "PGSSLMODE",
    "sslcompression": "PGSSLCOMPRESSION",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslcrldir": "PGSSLCRLDIR",
    "sslsni": "PGSSLSNI",
    "requirepeer": "PGREQUIREPEER",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "gssencmode": "PGGSSENCMODE",
    "krbsrvname": "PGKRBSRVNAME",
    "gsslib": "PGGSSLIB",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
# Tuning keywords a client program can do without.
_ENVIRONMENT_OPTIONAL = frozenset(
    {
        "fallback_application_name",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
    }
)


def to_environment(conninfo: str) -> dict[str, str]:
    """libpq environment variables equivalent to ``conninfo``.

    For running client programs (pg_dump) without putting a password on their
    command line, where ``ps`` would show it.
    """
    env: dict[str, str] = {}
    for keyword, value in parse(conninfo).items():
        name = _ENVIRONMENT.get(keyword)
        if name is not None:
            env[name] = value
        elif keyword not in _ENVIRONMENT_OPTIONAL:
            raise ConfigError(
                f"connection option {keyword!r} cannot be passed to pg_dump for the initial"
                " copy: remove it from the conninfo, or follow with copy_data => false"
            )
    return env
