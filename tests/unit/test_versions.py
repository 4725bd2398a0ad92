"""Release versions agree, and every earlier release has an upgrade path."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pg_follower
from pg_follower.ops.supervise import PAUSE_AND_COUNTERS, version_tuple

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "extension" / "sql"


def _default_version() -> str:
    control = (ROOT / "extension" / "pg_follower_py.control").read_text()
    match = re.search(r"^default_version = '([^']+)'$", control, re.MULTILINE)
    assert match, "no default_version in the control file"
    return match.group(1)


def test_the_package_and_the_extension_have_one_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == pg_follower.__version__ == _default_version()


def test_every_frozen_release_upgrades_to_the_default_version() -> None:
    scripts = [p.name for p in VERSIONS.glob("pg_follower_py--*.sql")]
    frozen = {
        m.group(1) for s in scripts if (m := re.fullmatch(r"pg_follower_py--([^-]+)\.sql", s))
    }
    steps = dict(
        m.groups() for s in scripts if (m := re.fullmatch(r"pg_follower_py--(.+)--(.+)\.sql", s))
    )
    assert "0.1.0" in frozen
    assert _default_version() not in frozen, "the current version is built from sql/, not frozen"
    for version in frozen:
        seen = [version]
        while seen[-1] != _default_version():
            assert seen[-1] in steps, f"no upgrade script from {seen[-1]} (path {seen})"
            seen.append(steps[seen[-1]])


def test_the_frozen_scripts_are_extension_scripts() -> None:
    for script in VERSIONS.glob("pg_follower_py--*.sql"):
        first = script.read_text().splitlines()[:2]
        assert any(line.startswith("\\echo Use ") for line in first), script.name


def test_version_order() -> None:
    assert version_tuple("0.2.0") == PAUSE_AND_COUNTERS
    assert version_tuple("0.10.0") > version_tuple("0.2.0") > version_tuple("0.1.0")
    assert version_tuple("1.0beta") < version_tuple("0.1.0")
