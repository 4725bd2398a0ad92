"""pg_follower.conninfo against libpq's own parser (through psycopg)."""

from __future__ import annotations

import random

import psycopg
import pytest
from psycopg.pq import pq_ctypes as pq  # the system's libpq, not a wheel's newer one

from pg_follower.errors import ConfigError
from pg_follower.source import conninfo

LIBPQ_15 = pq.version() // 10000 == 15

VALID = [
    "",
    "   ",
    "host=localhost",
    "host=a port=5432 dbname=db user=u password=secret",
    "host = a  port= 5432\tdbname =db\nuser=u\r\vsslmode=disable\f",
    "password='it\\'s'",
    "password='a\\\\b'",
    "password='with space' host=h",
    "host=''",
    "host=",
    "host= port=5432",  # libpq skips blanks after "=": host is "port=5432"
    "host='a'port=5432",  # no blank needed after a closing quote
    "host=a\\ b",  # unquoted values take backslash escapes
    "host=a\\",
    "host=it's",
    "options='-c search_path=x'",
    "application_name='héllo wörld'",
    "host=a host=b",
    "requiressl=1",
    "requiressl=0",
    "requiressl=",
    "sslmode=require requiressl=0",
    "replication=database dbname=postgres",
    "dbname='host=x password=y'",
    "sslmode=verify-full sslrootcert=/x sslpassword=s",
    "host=/var/run/postgresql,h2 port=5432,5433 target_session_attrs=read-write",
    "postgresql://",
    "postgres://",
    "postgresql://localhost",
    "postgresql://localhost:5433",
    "postgresql://localhost/mydb",
    "postgresql://user@localhost",
    "postgresql://user:secret@localhost",
    "postgres://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
    "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
    "postgresql://h1:5432,h2",
    "postgresql://h1,h2:5433",
    "postgresql://[::1]:5432/db",
    "postgresql://[2001:db8::1234]/database",
    "postgresql://[::1],[fe80::1]:5433",
    "postgresql://[::1]?sslmode=require",
    "postgresql:///mydb?host=/var/run/postgresql",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/dbname",
    "postgresql://us%40er:p%40ss%3Aw@h/d%20b",
    "postgresql://u:@h",
    "postgresql://:pw@h",
    "postgresql://@h",
    "postgresql://u:p:q@h",
    "postgresql://h:/db",
    "postgresql://h/",
    "postgresql://h?",
    "postgresql://h/db?",
    "postgresql://h?host=",
    "postgresql://h?ssl=true",
    "postgresql://h?requiressl=1",
    "postgresql://h?sslmode=require&sslmode=disable",
    "postgresql://a@h?user=b",
    "postgresql://h?a%70plication_name=x",
    "postgresql://h?options=-c%20x%3Dy",
    "postgresql://h?application_name=a%26b",
    "postgresql://h?replication=database&dbname=x",
    "postgresql://h?password=s%20t",
    "postgresql://host?x=a@b",  # the "@" look-ahead does not stop at "?"
    "postgresql://u:p/w@h/db",  # ... but stops at "/"
    "postgresql://,",
    "postgresql://h%2Ch2",
    "postgresql://h/db%3Fx",
    "postgresql://h/d+b",
    "postgresql://h/caf%C3%A9",
    "postgresql://h/café",
    "postgresql://h/db?application_name=",
    "postgresql://h?sslmode=require&",
]

INVALID = [
    "hots=a",
    "host",
    "host port=1",
    "host=a port",
    "password='it''s'",  # doubled quotes are not an escape in conninfo
    "host='abc",
    "host='abc\\",
    "host='abc\\'",
    "=x",
    "'host'=x",
    "requiressl",
    "POSTGRESQL://h",
    " postgresql://u:secret@h",
    "postgresql:/h",
    "tty=x",  # removed in PostgreSQL 14
    "authtype=x",
    "load_balance_hosts=disable",  # added in PostgreSQL 16
    "require_auth=password",
    "sslcertmode=allow",
    "gssdelegation=1",
    "postgresql://[::1",
    "postgresql://[]",
    "postgresql://[::1]x",
    "postgresql://h?a",
    "postgresql://h?sslmode=a=b",
    "postgresql://h?ssl=false",
    "postgresql://h?x=1",
    "postgresql://h?&",
    "postgresql://h/%zz",
    "postgresql://h/%0",
    "postgresql://h/%",
    "postgresql://h/%00",
    "postgresql://u:%zz@h",
    "postgresql://%zz",
    "postgresql://h:%zz",
    "postgresql://h?%zz=1",
    "postgresql://h?sslmode=%zz",
    "postgresql://h?host=%00",
]

# Inputs where our message is exactly libpq's (nothing in them needs hiding).
SAME_MESSAGE = [
    "hots=a",
    "host",
    "host port=1",
    "host='abc",
    "=x",
    "tty=x",
    "postgresql://h?sslmode",
    "postgresql://h?sslmode=a=b",
    "postgresql://h?ssl=false",
    "postgresql://h?x=1",
    "postgresql://h?&",
]

# (input, secret): the secret must appear in no redact() output nor error message.
SECRETS = [
    ("host=h password=hunter2 port=5432", "hunter2"),
    ("password='hunter 2' host=h", "hunter 2"),
    ("sslpassword=hunter2 host=h", "hunter2"),
    ("postgresql://u:hunter2@h/db", "hunter2"),
    ("postgresql://u:hunter%32@h/db", "hunter"),
    ("postgresql://u@h/db?password=hunter2", "hunter2"),
    ("postgresql://u@h/db?sslpassword=hunter2", "hunter2"),
    ("dbname='host=h password=hunter2'", "hunter2"),
    ("dbname=postgresql://u:hunter2@h/db", "hunter2"),
    # Malformed ones.
    ("password=hun ter2secret", "ter2secret"),
    ("password=hun ter2secret=1 host=h", "ter2secret"),
    ("password=hun host", "hun"),
    ("password='hunter2", "hunter2"),
    ("password='a'hunter2", "hunter2"),
    ("password='a'hunter2=x", "hunter2"),
    ("password='it''hunter2'", "hunter2"),
    ("user=bob hunter2 host=h", "hunter2"),
    ("hunter2", "hunter2"),
    (" postgresql://u:hunter2@h/db", "hunter2"),
    (" postgresql://u:hunter2@h/db?sslmode=require", "hunter2"),
    ("postgresql:/u:hunter2@h", "hunter2"),
    ("postgresql://u:hunter2@[::1", "hunter2"),
    ("postgresql://u:hunter2@[]", "hunter2"),
    ("postgresql://u:hunter2@[::1]x", "hunter2"),
    ("postgresql://u:hunter2%zz@h", "hunter2"),
    ("postgresql://u:hunter2%00@h", "hunter2"),
    ("postgresql://u:hunter2%ff@h", "hunter2"),
    ("postgresql://u:hunter2@h/%zz", "hunter2"),
    ("postgresql://h?password=hun&ter2secret", "ter2secret"),
    ("postgresql://h?password=hun&ter2secret=1", "ter2secret"),
    ("postgresql://h?password=hunter2=x", "hunter2"),
    ("postgresql://h?password=hunter2%zz", "hunter2"),
    ("postgresql://h?password=hunter2&x=1&y", "hunter2"),
    ("postgresql://h?hunter2", "hunter2"),
    ("host=h\0password=hunter2", "hunter2"),
]


def libpq_parse(s: str) -> dict[str, str]:
    """What the system libpq's PQconninfoParse says (psycopg's binary wheel
    bundles a newer libpq, which knows more keywords than PostgreSQL 15's)."""
    try:
        options = pq.Conninfo.parse(s.encode())
    except psycopg.OperationalError as exc:
        raise psycopg.ProgrammingError(str(exc)) from None
    return {o.keyword.decode(): o.val.decode() for o in options if o.val is not None}


@pytest.mark.parametrize("s", VALID)
def test_parse_matches_libpq(s: str) -> None:
    expected = libpq_parse(s)
    got = conninfo.parse(s)
    assert got == expected
    assert list(got) == list(expected)  # same (libpq's) key order too


@pytest.mark.parametrize("s", INVALID)
def test_both_reject(s: str) -> None:
    with pytest.raises(psycopg.ProgrammingError):
        libpq_parse(s)
    with pytest.raises(ConfigError):
        conninfo.parse(s)


@pytest.mark.parametrize("s", SAME_MESSAGE)
def test_libpq_wording(s: str) -> None:
    with pytest.raises(psycopg.ProgrammingError) as libpq_err:
        libpq_parse(s)
    with pytest.raises(ConfigError) as our_err:
        conninfo.parse(s)
    assert str(our_err.value) == str(libpq_err.value).strip()


@pytest.mark.parametrize(
    ("s", "message"),
    [
        ("hots=a", 'invalid connection option "hots"'),
        ("port 5432", 'missing "=" after "port" in connection info string'),
        ("host='x", "unterminated quoted string in connection info string"),
        ("postgresql://h?x=1", 'invalid URI query parameter: "x"'),
        (
            "password=a b",
            'missing "=" after the word at position 12 in connection info string'
            " (quote a value that contains spaces)",
        ),
        (
            "postgresql://[::1]x",
            'unexpected character "x" at position 19 in URI (expected ":" or "/")',
        ),
        ("postgresql://h/%zz", 'invalid percent-encoded token in the value of "dbname"'),
    ],
)
def test_messages(s: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        conninfo.parse(s)
    assert str(err.value) == message


def test_percent_encoded_non_utf8_is_rejected() -> None:
    # libpq takes any bytes here; psycopg then fails to decode them.
    with pytest.raises(UnicodeDecodeError):
        libpq_parse("postgresql://h/%ff")
    with pytest.raises(ConfigError):
        conninfo.parse("postgresql://h/%ff")


def test_non_text_is_rejected() -> None:
    with pytest.raises(ConfigError):
        conninfo.parse(None)  # type: ignore[arg-type]


@pytest.mark.skipif(not LIBPQ_15, reason="the keyword list is PostgreSQL 15's")
def test_keywords_are_libpq_15s() -> None:
    libpq_keywords = {opt.keyword.decode() for opt in pq.Conninfo.get_defaults()}
    assert libpq_keywords == conninfo.KEYWORDS
    secret = {opt.keyword.decode() for opt in pq.Conninfo.get_defaults() if opt.dispchar == b"*"}
    assert secret == conninfo.SECRET_KEYWORDS


def test_every_keyword_accepted() -> None:
    s = " ".join(f"{k}=v{i}" for i, k in enumerate(sorted(conninfo.KEYWORDS)))
    assert conninfo.parse(s) == libpq_parse(s)


@pytest.mark.parametrize("s", VALID)
def test_make_conninfo_round_trips(s: str) -> None:
    params = conninfo.parse(s)
    built = conninfo.make_conninfo(params)
    assert libpq_parse(built) == params
    assert conninfo.parse(built) == params


@pytest.mark.parametrize(
    "value",
    ["", " ", "it's", "a\\b", "\\'", "tab\there", "new\nline", "-c x=y", "é ü", "'", "x\\", "="],
)
def test_make_conninfo_quoting(value: str) -> None:
    built = conninfo.make_conninfo({"password": value, "host": "h"})
    assert libpq_parse(built) == {"password": value, "host": "h"}


def test_make_conninfo_quotes_only_when_needed() -> None:
    assert conninfo.make_conninfo({"host": "h", "port": "5432"}) == "host=h port=5432"
    assert conninfo.make_conninfo({"host": ""}) == "host=''"
    assert conninfo.make_conninfo({"password": "it's a"}) == "password='it\\'s a'"


def test_make_conninfo_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match='invalid connection option "hots"'):
        conninfo.make_conninfo({"hots": "a"})
    with pytest.raises(ConfigError):
        conninfo.make_conninfo({"host": "a\0b"})


@pytest.mark.parametrize("s", VALID)
def test_redact_keeps_the_rest(s: str) -> None:
    redacted = conninfo.redact(s)
    params = conninfo.parse(s)
    expected = {k: v for k, v in params.items() if k not in conninfo.SECRET_KEYWORDS}
    if "dbname" in expected and "password" in expected["dbname"]:
        expected["dbname"] = conninfo.redact(expected["dbname"])
    assert libpq_parse(redacted) == expected


@pytest.mark.parametrize("s", INVALID)
def test_redact_invalid(s: str) -> None:
    assert conninfo.redact(s) == conninfo.INVALID


@pytest.mark.parametrize(("s", "secret"), SECRETS)
def test_secret_never_shown(s: str, secret: str) -> None:
    assert secret in s or "%" in s
    assert secret not in conninfo.redact(s)
    try:
        conninfo.parse(s)
    except ConfigError as err:
        assert secret not in str(err)


def test_redact_examples() -> None:
    assert conninfo.redact("host=h password=x port=5432") == "host=h port=5432"
    assert conninfo.redact("postgresql://u:x@h:5433/db?sslmode=require") == (
        "user=u dbname=db host=h port=5433 sslmode=require"
    )
    assert conninfo.redact("dbname='host=h password=x'") == "dbname=host=h"
    assert conninfo.redact("host='abc") == "<invalid conninfo>"


def test_has_password() -> None:
    assert conninfo.has_password("host=h password=x")
    assert conninfo.has_password("postgresql://u:x@h")
    assert conninfo.has_password("postgresql://h?password=x")
    assert not conninfo.has_password("host=h")
    assert not conninfo.has_password("host=h password=")
    assert not conninfo.has_password("postgresql://u:@h")
    assert not conninfo.has_password("sslpassword=x")
    with pytest.raises(ConfigError):
        conninfo.has_password("host='x")


def test_is_uri() -> None:
    assert conninfo.is_uri("postgresql://h")
    assert conninfo.is_uri("postgres://")
    assert not conninfo.is_uri(" postgresql://h")
    assert not conninfo.is_uri("host=h")


_PIECES = [
    "host",
    "port",
    "password",
    "sslmode",
    "hots",
    "=",
    " ",
    "\t",
    "'",
    "\\",
    "a",
    "5432",
    "é",
    "postgresql://",
    "postgres://",
    "@",
    ":",
    "/",
    "?",
    "&",
    "[",
    "]",
    "[::1]",
    ",",
    "%",
    "%2",
    "%41",
    "%00",
    "%C3%A9",
    "ssl",
    "true",
    "requiressl",
    "1",
]


def test_generated_inputs_agree_with_libpq() -> None:
    rng = random.Random(15)
    for _ in range(20000):
        s = "".join(rng.choices(_PIECES, k=rng.randint(1, 9)))
        try:
            expected: dict[str, str] | None = libpq_parse(s)
        except (psycopg.ProgrammingError, UnicodeDecodeError):
            expected = None
        try:
            got: dict[str, str] | None = conninfo.parse(s)
        except ConfigError:
            got = None
        assert got == expected, s


def _secret_value(rng: random.Random, separators: list[str]) -> str:
    chunks = [f"Sk{i}" for i in range(rng.randint(1, 4))]
    return "".join(c + rng.choice(separators) for c in chunks)


def test_generated_secrets_never_shown() -> None:
    rng = random.Random(16)
    prefixes = ["", "host=h ", "user=u dbname=d "]
    kv_separators = ["", " ", "\t", "'", "\\", "=", " = ", "' '"]
    uri_separators = ["", ":", "?", "&", "=", "%41", "%zz", "%00", "%", "%ff"]
    query_separators = [*uri_separators, "/", "@", "&x", "&=", "&password="]
    for _ in range(5000):
        cases = [
            rng.choice(prefixes)
            + "password="
            + rng.choice(["", " ", "'"])
            + _secret_value(rng, kv_separators)
            + rng.choice(["", " port=5432", " host", " 'x"]),
            "postgresql://u:" + _secret_value(rng, uri_separators) + "@h/db?sslmode=require",
            "postgresql://h/db?sslmode=require&"
            + rng.choice(["password=", "sslpassword="])
            + _secret_value(rng, query_separators),
        ]
        for s in cases:
            assert "Sk" not in conninfo.redact(s), s
            try:
                conninfo.parse(s)
            except ConfigError as err:
                assert "Sk" not in str(err), s


_VALUE_CHARS = ["a", "Z", "5", " ", "\t", "'", "\\", "=", "é", "/", ":", ",", "%", "&", "?", "@"]
_URI_CHARS = ["a", "5", "é", "%20", "%41", "%2C", "%3D", "%26", "%40", "%2F", ":", "=", "-", "."]


def _random_text(rng: random.Random, chars: list[str]) -> str:
    return "".join(rng.choices(chars, k=rng.randint(0, 6)))


def _random_keyword_value(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 5)):
        keyword = rng.choice([*sorted(conninfo.KEYWORDS), "requiressl", "hots"])
        value = _random_text(rng, _VALUE_CHARS)
        if rng.random() < 0.5:
            value = conninfo.quote(value)
        parts.append(keyword + rng.choice(["=", " = ", "=\t"]) + value)
    return rng.choice([" ", "  ", "\n"]).join(parts)


def _random_uri(rng: random.Random) -> str:
    uri = rng.choice(["postgresql://", "postgres://"])
    if rng.random() < 0.5:
        uri += _random_text(rng, _URI_CHARS) + rng.choice(["", ":"]) + "@"
    hosts = []
    for _ in range(rng.randint(0, 3)):
        host = rng.choice(["h", "[::1]", "", "10.0.0.1", "%2Ftmp"])
        if rng.random() < 0.5:
            host += ":" + rng.choice(["5432", "", "x"])
        hosts.append(host)
    uri += ",".join(hosts)
    if rng.random() < 0.5:
        uri += "/" + _random_text(rng, _URI_CHARS)
    if rng.random() < 0.5:
        keywords = ["sslmode", "host", "password", "ssl", "requiressl", "application_name", "x"]
        uri += "?" + "&".join(
            rng.choice(keywords) + "=" + _random_text(rng, _URI_CHARS)
            for _ in range(rng.randint(0, 3))
        )
    return uri


def test_generated_well_formed_inputs_agree_with_libpq() -> None:
    rng = random.Random(17)
    accepted = 0
    for _ in range(5000):
        for s in (_random_keyword_value(rng), _random_uri(rng)):
            try:
                expected: dict[str, str] | None = libpq_parse(s)
            except psycopg.ProgrammingError:
                expected = None
            try:
                got: dict[str, str] | None = conninfo.parse(s)
            except ConfigError:
                got = None
            assert got == expected, s
            if got is not None:
                accepted += 1
                assert libpq_parse(conninfo.make_conninfo(got)) == got, s
    assert accepted > 2000  # the generators must mostly make valid strings
