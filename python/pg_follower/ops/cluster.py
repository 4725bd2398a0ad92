"""Throwaway PostgreSQL clusters made with initdb and pg_ctl (demo, tests, bench).

initdb refuses to run as root, so as root every server command runs as the
``postgres`` OS user in directories that user owns; as anyone else it runs as
that user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pg_follower.errors import FollowerError

SERVER_USER = "postgres"
SUPERUSER = "postgres"


def bindir() -> Path:
    """Directory of the server binaries: $PG_BINDIR, else what pg_config says."""
    env = os.environ.get("PG_BINDIR")
    if env:
        return Path(env)
    pg_config = os.environ.get("PG_CONFIG", "pg_config")
    try:
        out = subprocess.run([pg_config, "--bindir"], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FollowerError(
            f"cannot run {pg_config!r} to find the PostgreSQL binaries;"
            " install postgresql-15 or set PG_BINDIR"
        ) from exc
    return Path(out.stdout.strip())


def _as_root() -> bool:
    return os.geteuid() == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_base_dir(prefix: str = "pgf-") -> Path:
    """A short temp dir (unix socket paths are limited to ~107 bytes)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    if _as_root():
        shutil.chown(base, SERVER_USER, SERVER_USER)
    return base


DEFAULT_SETTINGS: Mapping[str, str] = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_worker_processes": "16",
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "shared_buffers": "64MB",
    "log_min_messages": "warning",
    "log_line_prefix": "'%m [%p] %q%a '",
    "logging_collector": "off",
}


class Cluster:
    """One throwaway cluster: data dir, unix socket and log under ``base/name``."""

    def __init__(self, base: Path, name: str, port: int | None = None):
        self.base = base
        self.name = name
        self.dir = base / name
        self.datadir = self.dir / "data"
        self.sockdir = self.dir
        self.logfile = self.dir / "server.log"
        self.port = port or free_port()

    # -- running server commands ------------------------------------------
    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if _as_root():
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        return subprocess.run(
            argv, check=check, capture_output=True, text=True, env=_clean_env(), cwd="/"
        )

    def init(self, settings: Mapping[str, str] | None = None) -> Cluster:
        self.dir.mkdir(parents=True, exist_ok=True)
        if _as_root():
            shutil.chown(self.dir, SERVER_USER, SERVER_USER)
        initdb = str(bindir() / "initdb")
        try:
            self._run(
                [
                    initdb,
                    "-D",
                    str(self.datadir),
                    "-U",
                    SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise FollowerError(f"initdb failed for {self.datadir}: {exc.stderr}") from exc
        conf = dict(DEFAULT_SETTINGS)
        conf.update(
            {
                "port": str(self.port),
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{self.sockdir}'",
            }
        )
        conf.update(settings or {})
        self.write_conf(conf)
        return self

    def write_conf(self, settings: Mapping[str, str]) -> None:
        """Append settings to postgresql.auto.conf-like include (last one wins)."""
        lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
        self._append(self.datadir / "postgresql.conf", lines)

    def prepend_hba(self, line: str) -> None:
        """Put an hba rule first (first match wins), then reload if running."""
        hba = self.datadir / "pg_hba.conf"
        text = self._read(hba)
        self._write(hba, line.rstrip("\n") + "\n" + text)
        if self.running():
            self.reload()

    def _read(self, path: Path) -> str:
        if _as_root():
            return self._run(["cat", str(path)]).stdout
        return path.read_text()

    def _write(self, path: Path, text: str) -> None:
        if _as_root():
            subprocess.run(
                ["runuser", "-u", SERVER_USER, "--", "tee", str(path)],
                input=text,
                check=True,
                capture_output=True,
                text=True,
            )
        else:
            path.write_text(text)

    def _append(self, path: Path, text: str) -> None:
        self._write(path, self._read(path) + text)

    def start(self) -> Cluster:
        pg_ctl = str(bindir() / "pg_ctl")
        try:
            self._run(
                [
                    pg_ctl,
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.logfile),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise FollowerError(
                f"cannot start the cluster in {self.datadir}: {exc.stdout}{exc.stderr}\n"
                f"{self.log_tail()}"
            ) from exc
        return self

    def stop(self, mode: str = "fast") -> None:
        pg_ctl = str(bindir() / "pg_ctl")
        self._run(
            [pg_ctl, "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop"], check=False
        )

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        pg_ctl = str(bindir() / "pg_ctl")
        self._run([pg_ctl, "-D", str(self.datadir), "reload"])

    def running(self) -> bool:
        pg_ctl = str(bindir() / "pg_ctl")
        return self._run([pg_ctl, "-D", str(self.datadir), "status"], check=False).returncode == 0

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self._read(self.logfile)
        except (OSError, subprocess.CalledProcessError):
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- connecting -------------------------------------------------------
    def dsn(self, dbname: str = "postgres", **params: str) -> str:
        parts = {
            "host": str(self.sockdir),
            "port": str(self.port),
            "user": SUPERUSER,
            "dbname": dbname,
            **params,
        }
        return " ".join(f"{k}={_quote(v)}" for k, v in parts.items())

    def psql(self, sql: str, dbname: str = "postgres", notices: bool = False) -> str:
        """Run SQL through psql (as a user would); return its output, raise on error.

        With ``notices``, the server's NOTICE and WARNING lines come first, as
        psql shows them.
        """
        argv = [
            str(bindir() / "psql"),
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.dsn(dbname),
            "-c",
            sql,
        ]
        res = subprocess.run(argv, capture_output=True, text=True, env=_clean_env())
        if res.returncode != 0:
            raise FollowerError(f"psql failed: {res.stderr.strip()}")
        return (res.stderr if notices else "") + res.stdout


def _quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _clean_env() -> dict[str, str]:
    """Environment for server commands, without PG* variables that would redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env
