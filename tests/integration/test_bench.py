"""`pg-follower bench` end to end at a tiny scale: figures for both systems, a plot.

Timings are not asserted (the CPU is shared): only that each system was
measured, on the rows asked for, and that the files are complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pg_follower.ops.cli import main


def test_bench_measures_both_systems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    status = main(
        [
            "bench",
            "--scale",
            "0.01",
            "--only",
            "insert,update",
            "--json",
            str(figures),
            "--plot",
            str(plot),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    doc = json.loads(figures.read_text())
    assert [r["workload"] for r in doc["results"]] == ["insert", "update"]
    for result in doc["results"]:
        assert result["size"] == 10_000
        for system in ("native", "ours"):
            measured = result[system]
            assert measured["seconds"] > 0, result
            assert measured["count"] == 10_000
            assert measured["rate_per_second"] > 0
            assert len(measured["runs"]) == 1
        assert result["ratio"] > 0
    assert doc["machine"]["cpu_count"] >= 1
    assert doc["machine"]["postgresql"].startswith("postgres (PostgreSQL)")
    assert doc["settings"]["both_clusters"]["wal_level"] == "logical"
    assert plot.read_bytes().startswith(b"\x89PNG")
    table = out[out.index("workload") :]
    assert "insert" in table and "update" in table and "native/ours" in table


def test_bench_refuses_an_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "insert,nosuch"]) == 1
    err = capsys.readouterr().err
    assert "unknown workload 'nosuch'" in err and "small-txns" in err
