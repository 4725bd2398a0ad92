"""Declared dependencies say what the code uses: each is imported somewhere, and
the server-side install (Makefile) carries what a launched worker imports."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# distribution -> the module it provides, where they differ
MODULES = {"prometheus-client": "prometheus_client", "pyyaml": "yaml"}
# tools run as commands, not imported
TOOLS = {"ruff", "mypy", "pytest-xdist"}  # pytest-xdist: a plugin, loaded by pytest


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _imported(module: str, where: list[Path]) -> bool:
    pattern = re.compile(rf"^\s*(?:import|from)\s+{re.escape(module)}\b", re.M)
    return any(pattern.search(p.read_text()) for d in where for p in d.rglob("*.py"))


def test_every_declared_dependency_is_imported() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    main = [_name(r) for r in project["dependencies"]]
    extras = project["optional-dependencies"]
    dev = [_name(r) for r in extras["dev"] if not r.startswith(project["name"])]
    # the dev extra takes other extras of this project ("pg_follower_py[duckdb]")
    for requirement in extras["dev"]:
        if requirement.startswith(project["name"] + "["):
            for extra in requirement.split("[", 1)[1].rstrip("]").split(","):
                dev += [_name(r) for r in extras[extra.strip()]]
    for dist in main:
        assert _imported(MODULES.get(dist, dist), [ROOT / "python"]), f"{dist} is not used"
    for dist in dev:
        if dist not in TOOLS:
            module = MODULES.get(dist, dist)
            assert _imported(module, [ROOT / "python", ROOT / "tests"]), f"{dist} is not used"


def test_server_side_install_has_the_workers_imports() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for dist in ("psycopg", "psycopg-binary", "setproctitle", "prometheus-client"):
        assert dist in makefile, f"{dist} missing from the server-side pip install"
    # rich is for the status screen only: the worker never imports it
    package = ROOT / "python" / "pg_follower"
    for path in package.rglob("*.py"):
        if path.relative_to(package).as_posix() == "ops/screen.py":
            continue
        text = path.read_text()
        assert not re.search(r"^\s*(?:import|from)\s+rich\b", text, re.M), path
