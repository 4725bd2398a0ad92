"""The worker's log formats: JSON lines with subscription and LSN, no passwords."""

from __future__ import annotations

import json
import logging
import threading

from pg_follower.ops.daemon import JsonFormatter, TextFormatter, scrub


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "pg_follower.pipeline", logging.ERROR, __file__, 1, message, args, None
    )
    record.__dict__.update(extra)
    return record


def test_json_line_has_the_fields_and_extras() -> None:
    line = JsonFormatter().format(_record("subscription %s: failed", "default", lsn="0/16B3748"))
    event = json.loads(line)
    assert event["level"] == "error"
    assert event["logger"] == "pg_follower.pipeline"
    assert event["message"] == "subscription default: failed"
    assert event["lsn"] == "0/16B3748"
    assert event["time"].endswith("+00:00")
    assert "\n" not in line


def test_subscription_from_the_pipeline_thread_name() -> None:
    events: list[dict[str, object]] = []

    def log() -> None:
        events.append(json.loads(JsonFormatter().format(_record("applied"))))

    thread = threading.Thread(target=log, name="sub-orders")
    thread.start()
    thread.join()
    assert events[0]["subscription"] == "orders"


def test_passwords_are_scrubbed_in_both_formats() -> None:
    secret = "S3cret-Pw-l0g"
    message = f"cannot connect: host=h password={secret} user=u; postgresql://u:{secret}@h/db"
    text = TextFormatter("%(message)s").format(_record(message))
    line = JsonFormatter().format(_record(message, conninfo=f"password='{secret}'"))
    assert secret not in text
    assert secret not in line
    assert "password=***" in scrub(f"password = '{secret} x'").replace(" = ", "=")
