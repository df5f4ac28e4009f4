"""benchmarks.mcp in a tiny configuration, end to end, so that it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.mcp import report

ROOT = Path(__file__).resolve().parents[1]
ROWS = ("direct", "gateway call", "stdio call", "http call", "gateway list", "stdio list",
        "http list")  # fmt: skip


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_every_measure_runs_in_a_tiny_configuration(tmp_path: Path) -> None:
    out = tmp_path / "mcp.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.mcp", "--seconds", "0.3", "--ops", "4",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads(out.read_text())
    for row in ROWS:
        assert results[row]["n"] > 0, row
        assert results[row]["p50_ms"] <= results[row]["p99_ms"]
    assert results["tools"] >= 5 + 4  # the service's 5 endpoints and the built-ins
    assert "gateway adds to a call, own work" in done.stdout


def test_the_report_tells_met_from_not_met() -> None:
    fast = {"p50_ms": 0.1, "p99_ms": 0.2, "per_s": 1000.0, "n": 10}
    slow = {"p50_ms": 3.0, "p99_ms": 9.0, "per_s": 300.0, "n": 10}
    results = dict.fromkeys(ROWS, fast) | {"stdio call": slow, "http list": slow, "tools": 7}
    text = report(results)
    assert "stdio with the SDK client: +2.900 ms (goal < 1 ms: not met)" in text
    assert "http with the SDK client: +0.000 ms (goal < 1 ms: met)" in text
    assert "http list of 100 tools: 3.000 ms (goal < 1 ms: not met)" in text
