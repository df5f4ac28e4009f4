"""Turning measurements into the printed report and the ``--json`` document."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.harness import CONCURRENT, SEQUENTIAL, Measurement

SUBJECT = "micro"
PINNED = "; client pinned to CPU 0, servers to CPU 1"
PACKAGES = (
    "aiohttp",
    "grpcio",
    "protobuf",
    "nameko",
    "eventlet",
    "kombu",
    "msgspec",
    "uvloop",
    "nats-py",
    "faststream",
    "aio-pika",
    "micro",
)


@dataclass
class Outcome:
    """Everything one run produced."""

    results: list[Measurement] = field(default_factory=list)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def find(self, target: str, mode: str) -> Measurement | None:
        for result in self.results:
            if result.target == target and result.mode == mode:
                return result
        return None


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    """The installed distribution's version; for micro, the version actually imported."""
    module = sys.modules.get(name) if name == SUBJECT else None
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(cpus_usable: int | None = None) -> dict[str, Any]:
    """The machine and versions; pass ``cpus_usable`` if this process was pinned since."""
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": cpus_usable or len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
        "micro_imported_from": getattr(sys.modules.get(SUBJECT), "__file__", None),
    }


# --------------------------------------------------------------------------- text


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def results_table(outcome: Outcome) -> str:
    header = ["target", "mode", "in flight", "req/s", "p50 ms", "p99 ms", "calls"]
    header += ["client CPU us/call", "server CPU us/call", "other CPU %"]
    rows = [
        [
            m.target,
            m.mode,
            str(m.concurrency),
            f"{m.rps:,.0f}",
            f"{m.p50_ms:.3f}",
            f"{m.p99_ms:.3f}",
            f"{m.calls:,}",
            _micros(m.client_cpu_us),
            _micros(m.server_cpu_us),
            "-" if m.other_cpu_pct is None else f"{m.other_cpu_pct:.0f}",
        ]
        for m in outcome.results
    ]
    if any(len(m.rps_runs) > 1 for m in outcome.results):
        header.append("req/s of each run")
        for row, m in zip(rows, outcome.results, strict=True):
            row.append(" ".join(f"{rps:,.0f}" for rps in m.rps_runs))
    note = (
        "(other CPU %: user+system CPU of all other processes during the run, in % of one CPU;\n"
        " the broker for the targets that go through one (nats, nameko, faststream-*,\n"
        " micro-nats, micro-rabbitmq), otherwise noise: a high value makes the row suspect)"
    )
    return _table(header, rows, right=set(range(2, 10))) + "\n" + note


def _repeats(repeat: int) -> str:
    return f"; median of {repeat} runs by req/s" if repeat > 1 else ""


def _busy(pct: float | None) -> str:
    return "unknown" if pct is None else f"{pct:.0f}%"


def _micros(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def ratios(outcome: Outcome) -> list[dict[str, Any]]:
    """micro / anchor per mode: req/s ratio (>1: micro faster), p50 and p99 ratios (<1: lower).

    The anchors are every other target but micro on its other transports (``micro-*``),
    which :func:`goal_ratios` sets against their own anchors.
    """
    rows = []
    names = dict.fromkeys(m.target for m in outcome.results)
    anchors = [t for t in names if t != SUBJECT and not t.startswith(f"{SUBJECT}-")]
    for anchor in anchors:
        for mode in (SEQUENTIAL, CONCURRENT):
            mine, theirs = outcome.find(SUBJECT, mode), outcome.find(anchor, mode)
            if mine is None or theirs is None:
                continue
            rows.append(
                {
                    "subject": SUBJECT,
                    "anchor": anchor,
                    "mode": mode,
                    "rps_ratio": mine.rps / theirs.rps,
                    "p50_ratio": mine.p50_ms / theirs.p50_ms,
                    "p99_ratio": mine.p99_ms / theirs.p99_ms,
                }
            )
    return rows


def ratios_table(outcome: Outcome) -> str:
    rows = ratios(outcome)
    if not rows:
        return f"ratios {SUBJECT}/anchor: pending ({SUBJECT} was not measured)"
    header = [f"{SUBJECT} / anchor", "mode", "req/s x", "p50 x", "p99 x"]
    body = [
        [
            f"{r['subject']}/{r['anchor']}",
            r["mode"],
            f"{r['rps_ratio']:.2f}",
            f"{r['p50_ratio']:.2f}",
            f"{r['p99_ratio']:.2f}",
        ]
        for r in rows
    ]
    note = "(req/s x > 1: micro faster; p50/p99 x < 1: micro lower latency)"
    return _table(header, body, right={2, 3, 4}) + "\n" + note


# --------------------------------------------------------------------------- goals


@dataclass(frozen=True)
class Goal:
    """The project's goal for ``subject``'s req/s against ``anchor``'s in one mode.

    ``minimum`` is the least ratio that meets it; ``ahead`` goals need the subject strictly
    faster (ratio > 1.0), the others a ratio of at least ``minimum``.
    """

    subject: str
    anchor: str
    mode: str
    minimum: float
    ahead: bool = False

    @property
    def text(self) -> str:
        return "> 1.00 (ahead)" if self.ahead else f">= {self.minimum:.2f}"

    def met(self, ratio: float) -> bool:
        return ratio > self.minimum if self.ahead else ratio >= self.minimum


def _both(subject: str, anchor: str, minimum: float, ahead: bool = False) -> list[Goal]:
    return [Goal(subject, anchor, mode, minimum, ahead) for mode in (SEQUENTIAL, CONCURRENT)]


#: The req/s goals of the project, in report order: micro over HTTP against aiohttp and
#: grpcio; the tcp transport against the raw ceiling and micro over HTTP; the nats transport
#: against nats-py and FastStream; the rabbitmq transport against nameko and FastStream;
#: the observed greeter (metrics, spans, spans exported by OTLP) against the plain one.
GOALS: tuple[Goal, ...] = (
    *_both(SUBJECT, "aiohttp", 1.0),
    Goal(SUBJECT, "grpc", CONCURRENT, 3.0),
    Goal("micro-tcp", "raw", SEQUENTIAL, 0.85),
    Goal("micro-tcp", "raw", CONCURRENT, 0.6),
    *_both("micro-tcp", SUBJECT, 1.0, ahead=True),
    *_both("micro-nats", "nats", 0.8),
    *_both("micro-nats", "faststream-nats", 2.0),
    Goal("micro-rabbitmq", "nameko", CONCURRENT, 10.0),
    *_both("micro-rabbitmq", "faststream-rabbit", 1.0, ahead=True),
    *_both("micro-metrics", SUBJECT, 0.9),  # observability: < 10% cost with metrics,
    *_both("micro-traced", SUBJECT, 0.75),  # < 25% with every span sampled
    *_both("micro-otlp", SUBJECT, 0.75),
)


def goal_ratios(outcome: Outcome, goals: tuple[Goal, ...] = GOALS) -> list[dict[str, Any]]:
    """Each goal with its req/s ratio and verdict; ``ratio`` and ``met`` are ``None`` (and
    ``pending`` says why) when either side was not measured in this run."""
    rows = []
    for goal in goals:
        row: dict[str, Any] = {
            "subject": goal.subject,
            "anchor": goal.anchor,
            "mode": goal.mode,
            "goal": goal.text,
            "minimum": goal.minimum,
            "ahead": goal.ahead,
            "ratio": None,
            "met": None,
        }
        mine, theirs = outcome.find(goal.subject, goal.mode), outcome.find(goal.anchor, goal.mode)
        if mine is None or theirs is None:
            absent = [n for n, m in ((goal.subject, mine), (goal.anchor, theirs)) if m is None]
            row["pending"] = f"{' and '.join(absent)} not measured"
        else:
            row["ratio"] = mine.rps / theirs.rps
            row["met"] = goal.met(row["ratio"])
        rows.append(row)
    return rows


def goals_table(outcome: Outcome) -> str:
    rows = goal_ratios(outcome)
    measured = [r for r in rows if r["ratio"] is not None]
    lines = []
    if measured:
        header = ["goal: req/s of", "mode", "ratio x", "goal x", "verdict"]
        body = [
            [
                f"{r['subject']} / {r['anchor']}",
                r["mode"],
                f"{r['ratio']:.2f}",
                r["goal"],
                "met" if r["met"] else "NOT MET",
            ]
            for r in measured
        ]
        met = sum(1 for r in measured if r["met"])
        lines += [_table(header, body, right={2}), f"({met} of {len(measured)} goals met)"]
    else:
        lines.append("goals (req/s ratios): none had both sides measured in this run")
    lines += [
        f"pending goal {r['subject']} / {r['anchor']} {r['mode']}: {r['pending']}"
        for r in rows
        if r["ratio"] is None
    ]
    return "\n".join(lines)


def servers_table(outcome: Outcome) -> str:
    header = ["server", "idle RSS MB", "event loop", "broker", "address"]
    rows = [
        [
            name,
            f"{info['idle_rss_mb']:.1f}" if info.get("idle_rss_mb") is not None else "-",
            info["loop"],
            info.get("broker") or "-",
            info["address"],
        ]
        for name, info in outcome.servers.items()
    ]
    return _table(header, rows, right={1})


def imports_table(outcome: Outcome) -> str:
    if not outcome.imports:
        return "import times: not measured"
    header = ["import", "ms", "code (minus bare python start-up)"]
    rows = [
        [label, f"{probe['import_ms']:.0f}", probe["code"]]
        for label, probe in outcome.imports.items()
    ]
    bare = next(iter(outcome.imports.values()))["python_startup_ms"]
    return _table(header, rows, right={1}) + f"\n(bare python start-up: {bare:.0f} ms)"


def render(outcome: Outcome, machine: dict[str, Any], config: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        f"machine: {machine['nproc']} CPUs ({machine['cpus_usable']} usable), "
        f"{machine['cpu_model']}, {machine['python']}, {machine['platform']}",
        f"packages: {packages}",
        f"client loop: {config['client_loop']}; {config['seconds']:g} s per mode after "
        f"{config['warmup']:g} s warm-up; concurrent = {config['concurrency']} in flight; "
        f"servers in their own processes{PINNED if config['pin'] else ''}"
        f"{_repeats(config.get('repeat', 1))}",
        f"machine busy before the run: {_busy(config.get('busy_before_pct'))} of one CPU",
        "",
        results_table(outcome),
        "",
        ratios_table(outcome),
        "",
        goals_table(outcome),
        "",
        servers_table(outcome),
        "",
        imports_table(outcome),
    ]
    for name, reason in outcome.skipped.items():
        lines.append(f"skipped {name}: {reason}")
    for name, reason in outcome.failed.items():
        lines.append(f"FAILED {name}: {reason}")
    return "\n".join(lines)


def write_json(
    path: Path, outcome: Outcome, machine: dict[str, Any], config: dict[str, Any]
) -> None:
    document = {
        "machine": machine,
        "config": config,
        "results": [m.as_dict() for m in outcome.results],
        "ratios": ratios(outcome),
        "goals": goal_ratios(outcome),
        "servers": outcome.servers,
        "imports": outcome.imports,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
