"""The benchmark targets, by name.

Each entry is ``module`` (which defines ``TARGET``, a ``harness.Target``) or ``module:ATTR``
when one module defines several targets.
"""

from __future__ import annotations

import importlib

from benchmarks.harness import Target

#: name -> module[:attribute], in report order; the micro targets last so that the anchors
#: are measured first.
TARGET_MODULES: dict[str, str] = {
    "raw": "benchmarks.targets.raw",
    "aiohttp": "benchmarks.targets.aiohttp_json",
    "grpc": "benchmarks.targets.grpc_unary",
    "nats": "benchmarks.targets.nats_reqrep",
    "faststream-nats": "benchmarks.targets.faststream_nats",
    "nameko": "benchmarks.targets.nameko_amqp",
    "faststream-rabbit": "benchmarks.targets.faststream_rabbit",
    "micro": "benchmarks.targets.micro_http",
    "micro-tcp": "benchmarks.targets.micro_transports:TCP",
    "micro-nats": "benchmarks.targets.micro_transports:NATS",
    "micro-rabbitmq": "benchmarks.targets.micro_transports:RABBITMQ",
    "micro-metrics": "benchmarks.targets.micro_observed:METRICS",
    "micro-traced": "benchmarks.targets.micro_observed:TRACED",
    "micro-otlp": "benchmarks.targets.micro_observed:OTLP",
}


class TargetImportError(Exception):
    """The target's module (or a library it needs) cannot be imported."""


def load_target(name: str) -> Target:
    module_name, _, attr = TARGET_MODULES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TargetImportError(f"cannot import {module_name}: {exc}") from exc
    target: Target = getattr(module, attr or "TARGET")
    return target
