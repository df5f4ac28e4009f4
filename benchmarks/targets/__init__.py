"""The benchmark targets, by name. Each module defines ``TARGET`` (a ``harness.Target``)."""

from __future__ import annotations

import importlib

from benchmarks.harness import Target

#: name -> module, in report order; micro last so the anchors are measured first.
TARGET_MODULES: dict[str, str] = {
    "raw": "benchmarks.targets.raw",
    "aiohttp": "benchmarks.targets.aiohttp_json",
    "grpc": "benchmarks.targets.grpc_unary",
    "nats": "benchmarks.targets.nats_reqrep",
    "nameko": "benchmarks.targets.nameko_amqp",
    "micro": "benchmarks.targets.micro_http",
    "micro-tcp": "benchmarks.targets.micro_tcp",
}


class TargetImportError(Exception):
    """The target's module (or a library it needs) cannot be imported."""


def load_target(name: str) -> Target:
    try:
        module = importlib.import_module(TARGET_MODULES[name])
    except ImportError as exc:
        raise TargetImportError(f"cannot import {TARGET_MODULES[name]}: {exc}") from exc
    return module.TARGET
