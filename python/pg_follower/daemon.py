"""Process plumbing for the worker: detaching, process title, logging."""

from __future__ import annotations

import logging
import os
import signal
import sys

from . import APPLICATION_NAME

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


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
