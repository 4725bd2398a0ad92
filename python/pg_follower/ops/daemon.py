"""Process plumbing for the worker: detaching, process title, logging."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from datetime import UTC, datetime

from pg_follower import APPLICATION_NAME

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def set_title() -> None:
    """Show as ``pg_follower worker`` in ps, top and pg_activity."""
    try:
        import setproctitle
    except ImportError:  # the title is a courtesy, not a requirement
        return
    setproctitle.setproctitle(APPLICATION_NAME)


def reset_signals() -> None:
    """A worker launched by a backend inherits its signal mask: start clean."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)


def detach(log_file: str) -> None:
    """Double fork into a new session with no inherited descriptors.

    The launching process (a backend's helper) exits at once and is reaped
    by its parent; the worker is adopted by init and never becomes a zombie
    of the server.
    """
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0o077)
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)


# Belt and braces: messages are written without passwords, but a library's
# message quoting a conninfo or URI must not leak one either.
_SECRETS = (
    (re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.I), r"\1***"),
    (re.compile(r"(postgres(?:ql)?://[^:/@\s]*:)[^@\s]*@", re.I), r"\1***@"),
)
# Attributes of every LogRecord: anything else came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_THREAD_PREFIXES = ("sub-", "reader-")  # pipeline and stream reader threads are named so


def scrub(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, pid, then the
    subscription (from ``extra=`` or the thread's name), lsn and other extras."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "pid": record.process,
        }
        thread = record.threadName or ""
        for prefix in _THREAD_PREFIXES:
            if thread.startswith(prefix):
                event["subscription"] = thread[len(prefix) :]
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                event[key] = value if isinstance(value, int | float | bool) else scrub(str(value))
        if record.exc_info:
            event["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(event, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
