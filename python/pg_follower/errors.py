"""The project's exceptions: one root, small subclasses that say what failed."""

from __future__ import annotations


class FollowerError(Exception):
    """Root of every error raised by pg_follower_py."""


class ConfigError(FollowerError):
    """Bad input from the user: a conninfo, an option, a setting."""


class UpstreamError(FollowerError):
    """The upstream cannot be used as asked (unreachable, misconfigured)."""


class ProtocolError(FollowerError):
    """The replication stream holds something we cannot decode."""


class ApplyError(FollowerError):
    """A change could not be applied downstream; the subscription stops there."""

    def __init__(self, message: str, *, lsn: str | None = None, statement: str | None = None):
        super().__init__(message)
        self.lsn = lsn
        self.statement = statement
        # Not reported, but retried at once: raised in a downstream
        # transaction holding several upstream ones (which failed is not
        # known yet), or beside a streamed transaction applied while open.
        self.retry_now = False


def first_line(exc: BaseException) -> str:
    """The first line of an error's text (libpq errors run on), or its type name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
