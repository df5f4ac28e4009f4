"""The benchmark's FastStream anchors and micro-transport targets: every target loads, the
micro-<transport> targets skip (naming the transport) until it is registered and measure the
service on the transport they name, the FastStream anchors answer end to end through the
real brokers, and the report weighs each goal (met, not met, pending)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.harness import CONCURRENT, SEQUENTIAL, Measurement, Options, Target
from benchmarks.targets import TARGET_MODULES, load_target
from benchmarks.targets.micro_transports import MicroTransportTarget
from micro import plugins
from tests import servers

ROOT = Path(__file__).resolve().parents[1]
NEW = ("faststream-nats", "faststream-rabbit", "micro-tcp", "micro-nats", "micro-rabbitmq")
TRANSPORTS = {"micro-tcp": "tcp", "micro-nats": "nats", "micro-rabbitmq": "rabbitmq"}


def test_every_target_loads_under_its_own_name() -> None:
    assert set(NEW) <= set(TARGET_MODULES)
    for name in TARGET_MODULES:
        target = load_target(name)
        assert target.name == name
        assert target.title
        assert target.server_module or type(target).start_server is not Target.start_server
    # the micro targets come after every anchor, so that the anchors are measured first
    names = list(TARGET_MODULES)
    observed = ["micro-metrics", "micro-traced", "micro-otlp"]
    assert names[names.index("micro") :] == ["micro", *TRANSPORTS, *observed]


@pytest.mark.parametrize(("name", "transport"), TRANSPORTS.items())
def test_a_micro_transport_target_skips_naming_its_transport_until_it_is_registered(
    monkeypatch: pytest.MonkeyPatch, name: str, transport: str
) -> None:
    table = {k: v for k, v in plugins.TABLE["transport"].items() if k != transport}
    monkeypatch.setitem(plugins.TABLE, "transport", table)
    target = load_target(name)
    assert isinstance(target, MicroTransportTarget)
    assert target.transport == transport
    reason = target.unavailable(Options())
    assert reason is not None
    assert f"micro transport {transport!r} is not registered in micro.plugins" in reason


def test_a_registered_transport_whose_driver_does_not_import_is_skipped_with_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = {**plugins.TABLE["transport"], "tcp": ("micro.transport.no_such_module:X", "tcp")}
    monkeypatch.setitem(plugins.TABLE, "transport", table)
    reason = load_target("micro-tcp").unavailable(Options())
    assert reason is not None
    assert reason.startswith("micro transport 'tcp' does not load")
    assert "no_such_module" in reason


def test_a_broker_transport_is_skipped_while_its_broker_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, unused_tcp_port: int
) -> None:
    table = {**plugins.TABLE["transport"], "nats": plugins.TABLE["transport"]["http"]}
    monkeypatch.setitem(plugins.TABLE, "transport", table)
    target = load_target("micro-nats")
    options = Options(nats_url=f"nats://127.0.0.1:{unused_tcp_port}")
    reason = target.unavailable(options)
    assert reason is not None
    assert reason.startswith(f"NATS server not reachable at 127.0.0.1:{unused_tcp_port}")


@pytest.mark.integration
def test_a_micro_transport_target_runs_the_service_on_the_transport_it_names(
    tmp_path: Path,
) -> None:
    """The shared path: the server subprocess gets its transport from the target, and the
    client calls the address that server reports (here http, always registered)."""

    class OverHttp(MicroTransportTarget):
        name = "micro-http-check"
        title = "micro_transports' code on the http transport"
        transport = "http"

    target = OverHttp()
    options = Options(seconds=0.1, warmup=0.05, pin=False, workdir=tmp_path)
    assert target.unavailable(options) is None
    server = target.start_server(options)
    try:
        results = asyncio.run(target.run_modes(server, options, [SEQUENTIAL, CONCURRENT]))
    finally:
        server.stop()
    assert [(m.mode, m.concurrency) for m in results] == [(SEQUENTIAL, 1), (CONCURRENT, 64)]
    assert all(m.calls > 0 for m in results)
    assert server.address.startswith("127.0.0.1:")


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_faststream_anchors_answer_through_the_real_brokers(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--targets", "faststream-nats,faststream-rabbit",
         "--seconds", "0.3", "--warmup", "0.2", "--concurrency", "8", "--import-runs", "0",
         "--nats-url", servers.nats_url(), "--amqp-url", servers.amqp_url(),
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["skipped"] == {}
    assert [(r["target"], r["mode"]) for r in result["results"]] == [
        (name, mode)
        for name in ("faststream-nats", "faststream-rabbit")
        for mode in (SEQUENTIAL, CONCURRENT)
    ]
    assert all(r["calls"] > 0 for r in result["results"])
    assert result["servers"]["faststream-rabbit"]["broker"].startswith("RabbitMQ")
    assert result["servers"]["faststream-nats"]["broker"].startswith("nats-server")
    assert "faststream-nats: answer checked ('Hello John')" in done.stderr


def measured(target: str, mode: str, rps: float) -> Measurement:
    concurrency = 1 if mode == SEQUENTIAL else 64
    return Measurement.from_latencies(target, mode, concurrency, [0.001] * 10, 10 / rps, None)


def goals_of(results: list[Measurement]) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = report.goal_ratios(report.Outcome(results=results))
    return {(r["subject"], r["anchor"], r["mode"]): r for r in rows}


def test_the_report_weighs_each_goal_met_not_met_or_pending() -> None:
    results = [
        measured("raw", SEQUENTIAL, 10_000.0),
        measured("raw", CONCURRENT, 100_000.0),
        measured("micro", SEQUENTIAL, 8_000.0),
        measured("micro", CONCURRENT, 60_000.0),
        measured("micro-tcp", SEQUENTIAL, 8_600.0),  # 0.86x raw: met; 1.08x micro: ahead
        measured("micro-tcp", CONCURRENT, 59_000.0),  # 0.59x raw: not met; 0.98x micro
        measured("nameko", CONCURRENT, 800.0),
        measured("micro-rabbitmq", CONCURRENT, 8_100.0),  # 10.1x nameko: met
        measured("faststream-rabbit", CONCURRENT, 8_200.0),  # behind: not ahead
    ]
    goals = goals_of(results)
    assert goals["micro-tcp", "raw", SEQUENTIAL]["met"] is True
    assert goals["micro-tcp", "raw", SEQUENTIAL]["goal"] == ">= 0.85"
    assert goals["micro-tcp", "raw", CONCURRENT]["met"] is False
    assert goals["micro-tcp", "raw", CONCURRENT]["ratio"] == pytest.approx(0.59)
    assert goals["micro-tcp", "micro", SEQUENTIAL]["met"] is True
    assert goals["micro-tcp", "micro", CONCURRENT]["met"] is False
    assert goals["micro-rabbitmq", "nameko", CONCURRENT]["met"] is True
    assert ("micro-rabbitmq", "nameko", SEQUENTIAL) not in goals  # a goal at 64 in flight only
    ahead = goals["micro-rabbitmq", "faststream-rabbit", CONCURRENT]
    assert (ahead["goal"], ahead["met"]) == ("> 1.00 (ahead)", False)
    pending = goals["micro-nats", "faststream-nats", SEQUENTIAL]
    assert (pending["ratio"], pending["met"]) == (None, None)
    assert pending["pending"] == "micro-nats and faststream-nats not measured"

    text = report.goals_table(report.Outcome(results=results))
    lines = text.splitlines()
    row = next(line for line in lines if line.startswith("micro-tcp / raw") and CONCURRENT in line)
    assert row.split()[-5:] == ["0.59", ">=", "0.60", "NOT", "MET"]
    assert "(3 of 6 goals met)" in text
    assert "pending goal micro-nats / nats sequential: micro-nats and nats not measured" in lines
    assert report.goals_table(report.Outcome()).startswith(
        "goals (req/s ratios): none had both sides measured in this run\npending goal micro / "
    )


def test_a_goal_is_met_at_its_minimum_and_an_ahead_goal_only_above_level() -> None:
    at_least = report.Goal("micro-nats", "nats", SEQUENTIAL, 0.8)
    assert at_least.met(0.8)
    assert not at_least.met(0.79)
    ahead = report.Goal("micro-tcp", "micro", SEQUENTIAL, 1.0, ahead=True)
    assert not ahead.met(1.0)
    assert ahead.met(1.01)


def test_micro_on_another_transport_is_no_anchor_of_micro() -> None:
    results = [measured(t, SEQUENTIAL, 1000.0) for t in ("raw", "micro", "micro-tcp")]
    rows = report.ratios(report.Outcome(results=results))
    assert [r["anchor"] for r in rows] == ["raw"]


def test_the_ratios_table_names_each_pair() -> None:
    results = [
        measured("raw", SEQUENTIAL, 2000.0),
        measured("micro", SEQUENTIAL, 1000.0),
        measured("micro-tcp", SEQUENTIAL, 1500.0),
    ]
    table = report.ratios_table(report.Outcome(results=results))
    (row,) = [line for line in table.splitlines() if line.startswith("micro/raw")]
    assert row.split()[1:3] == [SEQUENTIAL, "0.50"]


def test_the_profile_splits_a_calls_cpu_by_layer(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import profile

    profile.main(["--transport", "tcp", "--calls", "300", "--concurrency", "8", "--top", "5"])
    out = capsys.readouterr().out
    assert out.startswith("300 calls in ")
    rows = {
        m[1]: float(m[3])
        for m in re.finditer(r"^(\S.*?)\s+([\d.]+)\s+([\d.]+)%$", out, re.MULTILINE)
    }
    # both sides of the call were profiled, each in its own layer
    assert {"micro client", "micro server", "micro transport"} <= set(rows)
    assert all(rows[name] > 0 for name in ("micro client", "micro server", "micro transport"))
    assert sum(rows.values()) == pytest.approx(100, abs=1)
    functions = out.split("function (own time)")[1].strip().splitlines()[1:]
    assert len(functions) == 5
