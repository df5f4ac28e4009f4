"""benchmarks.web in a tiny configuration, end to end, so that it cannot rot: its own etcd,
``micro web``, the web app, Debian's Chromium and the load generator, every phase measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.web import _pct, report

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("load", ["wrk", "asyncio"])
def test_every_phase_runs_in_a_tiny_configuration(tmp_path: Path, load: str) -> None:
    out = tmp_path / "web.json"
    args = [
        "--services", "5", "--nodes", "2", "--data-runs", "2", "--page-loads", "1",
        "--changes", "3", "--seconds", "1", "--connections", "4", "--json", str(out),
    ]  # fmt: skip
    if load == "asyncio":
        args += ["--no-wrk", "--no-browser"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.web", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=200, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["config"]["services"] == 5
    assert result["data"]["services"] == 6  # and the web app
    assert 0 < result["data"]["median_ms"] < 5000
    proxy = result["proxy"]
    assert proxy["tool"] == ("wrk -t1" if load == "wrk" else "asyncio aiohttp")
    assert proxy["direct_rps"] > 0
    assert proxy["proxied_rps"] > 0
    if load == "wrk":
        assert result["page"]["rows"] == 6
        assert 0 < result["page"]["painted_ms"] < 30_000
        assert result["live"]["changes"] == 3
        assert 0 < result["live"]["p99_ms"] < 30_000
    else:
        assert "page" not in result
    assert "proxied / direct throughput" in done.stdout
    assert "registering nodes: 10/10" in done.stderr


def test_percentiles_and_the_report_of_a_failed_phase() -> None:
    assert _pct([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert _pct([float(v) for v in range(1, 101)], 0.99) == 99.0
    assert _pct([7.0], 0.99) == 7.0
    config = {"services": 1, "nodes": 1, "cpus": 2, "pin": False, "data_runs": 1}
    text = report({"config": config, "proxy": {"error": "RuntimeError: boom"}})
    assert "| proxy | failed: RuntimeError: boom | |" in text
