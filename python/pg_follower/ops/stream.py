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
import time
from types import FrameType

from pg_follower.destinations.jsonl import JsonLinesDestination
from pg_follower.errors import UpstreamError
from pg_follower.pipeline import Pipeline
from pg_follower.source.decode import lsn_to_str
from pg_follower.source.postgres import PostgresSource

logger = logging.getLogger("pg_follower.stream")

# A consumer restarted at once after a kill: the upstream may not have seen
# the old session go yet, and holds the slot for it a moment longer.
SLOT_BUSY_WAIT = 15.0


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
    destination = JsonLinesDestination(sys.stdout.buffer, start=start)
    pipeline: Pipeline | None = None
    stopped = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopped
        logger.info("%s: stopping after the current transaction", signal.Signals(signum).name)
        stopped = True
        if pipeline is not None:
            pipeline.stop()
        # a second signal ends it at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    deadline = time.monotonic() + SLOT_BUSY_WAIT
    try:
        while not stopped:
            source = PostgresSource(upstream, slot=slot, publication=publication)
            pipeline = Pipeline(source, destination, snapshot=snapshot)
            try:
                pipeline.run()
                break
            except UpstreamError as exc:
                # nothing written yet, so starting over is safe
                if "is active for PID" not in str(exc) or time.monotonic() > deadline:
                    raise
                if destination.transactions or destination.durable_lsn() is not None:
                    raise
                logger.info("slot %s is still held by an ended session: waiting", slot)
                time.sleep(0.5)
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
