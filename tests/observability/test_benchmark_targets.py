"""The observed greeter targets of the benchmark run their service and client for real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from benchmarks.harness import SEQUENTIAL, Options
from benchmarks.targets import load_target


@pytest.mark.integration
@pytest.mark.parametrize("name", ["micro-metrics", "micro-traced", "micro-otlp"])
def test_an_observed_target_answers(tmp_path: Path, name: str) -> None:
    target = load_target(name)
    options = Options(seconds=0.1, warmup=0.05, pin=False, workdir=tmp_path)
    assert target.unavailable(options) is None
    server = target.start_server(options)
    try:
        results = asyncio.run(target.run_modes(server, options, [SEQUENTIAL]))
    finally:
        server.stop()
    assert [m.calls > 0 for m in results] == [True]
