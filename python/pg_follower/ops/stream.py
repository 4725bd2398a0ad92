"""``pg-follower stream``: an upstream's changes as JSON lines on stdout.

Stdout carries only the lines; progress and errors go to stderr. SIGTERM and
SIGINT end it after the transaction being written (a second one at once), a
reader that goes away (closed pipe) ends it quietly: exit 0 either way.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

from pg_follower.destinations.jsonl import JsonLinesDestination
from pg_follower.pipeline import Pipeline
from pg_follower.source.decode import lsn_to_str
from pg_follower.source.postgres import PostgresSource

logger = logging.getLogger("pg_follower.stream")


def run_stream(
    upstream: str,
    slot: str,
    publication: str | None,
    snapshot: bool,
    start: int | None,
) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="pg-follower stream: %(message)s"
    )
    source = PostgresSource(upstream, slot=slot, publication=publication)
    destination = JsonLinesDestination(sys.stdout.buffer, start=start)
    pipeline = Pipeline(source, destination, snapshot=snapshot)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("%s: stopping after the current transaction", signal.Signals(signum).name)
        pipeline.stop()
        # a second signal ends it at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        pipeline.run()
    except BrokenPipeError:
        # the reader went away: nothing more can reach it, and Python must
        # not complain at exit when it flushes stdout again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        logger.info("stdout closed: stopping")
    last = destination.durable_lsn()
    logger.info(
        "%d transactions written; last end_lsn %s",
        destination.transactions,
        lsn_to_str(last) if last is not None else "none",
    )
    return 0
