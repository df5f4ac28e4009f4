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
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(name)
        return getattr(module, "__version__", None) if module else None


def machine_info() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": {name: package_version(name) for name in PACKAGES},
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
    rows = [
        [
            m.target,
            m.mode,
            str(m.concurrency),
            f"{m.rps:,.0f}",
            f"{m.p50_ms:.3f}",
            f"{m.p99_ms:.3f}",
            f"{m.calls:,}",
        ]
        for m in outcome.results
    ]
    return _table(header, rows, right={2, 3, 4, 5, 6})


def ratios(outcome: Outcome) -> list[dict[str, Any]]:
    """micro / anchor per mode: req/s ratio (>1: micro faster), p50 and p99 ratios (<1: lower)."""
    rows = []
    anchors = [t for t in dict.fromkeys(m.target for m in outcome.results) if t != SUBJECT]
    for anchor in anchors:
        for mode in (SEQUENTIAL, CONCURRENT):
            mine, theirs = outcome.find(SUBJECT, mode), outcome.find(anchor, mode)
            if mine is None or theirs is None:
                continue
            rows.append(
                {
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
            f"{SUBJECT}/{r['anchor']}",
            r["mode"],
            f"{r['rps_ratio']:.2f}",
            f"{r['p50_ratio']:.2f}",
            f"{r['p99_ratio']:.2f}",
        ]
        for r in rows
    ]
    note = "(req/s x > 1: micro faster; p50/p99 x < 1: micro lower latency)"
    return _table(header, body, right={2, 3, 4}) + "\n" + note


def servers_table(outcome: Outcome) -> str:
    header = ["server", "idle RSS MB", "event loop", "address"]
    rows = [
        [
            name,
            f"{info['idle_rss_mb']:.1f}" if info.get("idle_rss_mb") is not None else "-",
            info["loop"],
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
        f"servers in their own processes{PINNED if config['pin'] else ''}",
        "",
        results_table(outcome),
        "",
        ratios_table(outcome),
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
        "servers": outcome.servers,
        "imports": outcome.imports,
        "skipped": outcome.skipped,
        "failed": outcome.failed,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
