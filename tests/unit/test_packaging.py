"""Service files: the systemd template unit is valid and runs the worker as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pg_follower.cli import build_parser

UNIT = Path(__file__).resolve().parents[2] / "packaging" / "systemd" / "pg-follower@.service"
INSTALLED_AT = "/opt/pg_follower_py/.venv/bin/pg-follower"


def _exec_start() -> list[str]:
    lines = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("ExecStart=")]
    assert len(lines) == 1
    return lines[0].removeprefix("ExecStart=").split()


def test_unit_runs_the_worker_with_the_dsn_from_its_environment_file() -> None:
    text = UNIT.read_text()
    assert "EnvironmentFile=/etc/pg-follower/%i.env" in text
    argv = _exec_start()
    assert argv[0] == INSTALLED_AT
    # the options it passes are the worker's
    args = build_parser().parse_args(argv[1:])
    assert args.command == "worker"
    assert args.log_format == "json"


def _verify(unit_dir: Path, text: str) -> subprocess.CompletedProcess[str]:
    instance = unit_dir / "pg-follower@app.service"
    instance.write_text(text)
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: point it at this environment's
    executable = Path(sys.executable).with_name("pg-follower")
    if not executable.exists():
        executable = Path(sys.executable)
    text = UNIT.read_text().replace(INSTALLED_AT, str(executable))
    res = _verify(tmp_path, text)
    assert res.returncode == 0, res.stderr
    assert "pg-follower@app.service" not in res.stderr, res.stderr
    # and the check is real: a broken unit fails it
    broken = _verify(tmp_path, text.replace("ExecStart=/", "ExecStart=relative/"))
    assert broken.returncode != 0
