"""Service files: the systemd template unit is valid and runs the worker as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pg_follower.ops.cli import build_parser

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


DOCKER = UNIT.parents[1] / "docker"
ROOT = UNIT.parents[2]


def test_compose_file_two_nodes_walkthrough_and_pgtap() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"upstream", "downstream", "walkthrough", "pgtap"} <= services.keys()
    assert services["downstream"]["environment"]["UPSTREAM_HOST"] == "upstream"
    for name, service in services.items():
        env = service.get("environment", {})
        # passwords only through secret files, never as values
        assert not any("PASSWORD" in k and not k.endswith("_FILE") for k in env), name
        assert "POSTGRES_HOST_AUTH_METHOD" not in env, name
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], name
        command = service.get("command")
        if command:
            assert (ROOT / command[-1]).is_file(), command
    assert (DOCKER / "follower-role.sql").is_file()


def test_dockerfile_uses_the_bootstrap_and_makes_no_trusting_cluster() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "RUN bash scripts/bootstrap.sh" in dockerfile
    assert "initdb" not in dockerfile  # the cluster is made at first start, with a password
    assert 'CMD ["bash", "scripts/docker-entrypoint.sh"]' in dockerfile
    entrypoint = (ROOT / "scripts" / "docker-entrypoint.sh").read_text()
    assert "--auth-local=trust --auth-host=scram-sha-256" in entrypoint
    hba = entrypoint.split("<<'HBA'")[1].split("HBA")[0]
    rules = [line.split() for line in hba.splitlines() if line.strip()]
    assert all(r[-1] == "scram-sha-256" for r in rules if r[0] == "host"), rules
    assert [r for r in rules if r[-1] == "trust"] == [["local", "all", "all", "trust"]]


@pytest.mark.parametrize(
    "script",
    [
        "scripts/docker-entrypoint.sh",
        "packaging/docker/walkthrough.sh",
        "packaging/docker/pgtap.sh",
    ],
)
def test_shell_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(ROOT / script)], check=True)


def test_image_entrypoint_refuses_to_start_without_a_password(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PGDATA": str(tmp_path / "data")}
    res = subprocess.run(
        ["bash", str(ROOT / "scripts" / "docker-entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1
    assert "POSTGRES_PASSWORD" in res.stderr
    assert not (tmp_path / "data").exists()
