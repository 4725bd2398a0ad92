"""The package's layers import only what docs/architecture.md says they may."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "python" / "pg_follower"

# layer -> the pg_follower modules (prefixes) it may import
# (pg_follower.errors and the package's constants are for everyone)
ALLOWED = {
    "source": ("pg_follower.source",),
    # the follower replays the DDL records its server side writes
    "destinations": ("pg_follower.destinations", "pg_follower.source", "pg_follower.server.ddl"),
    "pipeline": ("pg_follower.pipeline", "pg_follower.source", "pg_follower.destinations"),
    "server": ("pg_follower.server", "pg_follower.source.conninfo"),
}
THIRD_PARTY_FORBIDDEN = {"server": ("psycopg",)}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in ("pg_follower", "pg_follower.source"):
                # "from pg_follower.source import conninfo" imports a module
                names.update(f"{node.module}.{a.name}" for a in node.names)
            else:
                names.add(node.module)
    return names


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    if name.count(".") == 1 and not (PACKAGE / name.split(".")[1]).is_dir():
        return True  # pg_follower.errors, or a constant of the package
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_layers_import_only_what_they_may() -> None:
    wrong = []
    for layer, prefixes in ALLOWED.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for name in _imports(path):
                if name.startswith("pg_follower") and not _allowed(name, prefixes):
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
                for banned in THIRD_PARTY_FORBIDDEN.get(layer, ()):
                    if name == banned or name.startswith(banned + "."):
                        wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_only_the_subscription_pipeline_knows_the_postgres_destination() -> None:
    for path in (PACKAGE / "pipeline").rglob("*.py"):
        if path.name == "subscription.py":
            continue
        assert not any(n.startswith("pg_follower.destinations.postgres") for n in _imports(path))
