"""benchmarks.proxy in a tiny configuration, end to end, so that it cannot rot: the greeter,
``micro proxy`` and every kind of load; and its report's arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.proxy import KINDS, report

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
@pytest.mark.slow
def test_every_kind_runs_in_a_tiny_configuration(tmp_path: Path) -> None:
    out = tmp_path / "proxy.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.proxy", "--seconds", "0.3", "--connections", "1,4",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["target"], r["connections"]) for r in rows] == [
        (kind, c) for c in (1, 4) for kind in KINDS
    ]
    for row in rows:
        assert row["requests"] > 0
        assert row["p50_ms"] <= row["p99_ms"]
        assert row["client_cpu_us"] > 0
        # the proxy's CPU per call: its work for calls through it, next to nothing otherwise
        assert (row["proxy_cpu_us"] > 20) is (row["target"] != "direct"), row
    assert "goal (under 1 ms added at p50" in done.stdout


def row(target: str, connections: int, rps: float, p50: float) -> dict[str, Any]:
    cpu = {"client_cpu_us": 20.0, "proxy_cpu_us": 90.0, "greeter_cpu_us": 20.0}
    return {"target": target, "connections": connections, "pin": "split", "rps": rps,
            "p50_ms": p50, "p99_ms": 2 * p50, "requests": 1, **cpu}  # fmt: skip


@pytest.mark.parametrize(
    ("proxy_p50", "proxy_rps", "verdict"),
    [(0.9, 5000.0, "met (+0.800 ms, 0.50x)"), (1.2, 9000.0, "missed (+1.100 ms, 0.90x)"),
     (0.5, 4000.0, "missed (+0.400 ms, 0.40x)")],
)  # fmt: skip
def test_the_report_compares_the_proxy_with_direct_calls(
    proxy_p50: float, proxy_rps: float, verdict: str
) -> None:
    rows = [
        row("direct", 1, 10000.0, 0.1), row("proxy", 1, 1000.0, proxy_p50),
        row("direct", 32, 10000.0, 2.0), row("proxy", 32, proxy_rps, 4.0),
    ]  # fmt: skip
    text = report(rows)
    assert "| proxy | 32 | " + f"{proxy_rps:,.0f}" in text
    assert "- 32 in flight, proxy: p50 - direct p50 = +2.000 ms" in text
    assert text.endswith(verdict)
