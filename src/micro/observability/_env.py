"""What the ``OTEL_*`` environment asks for, read without importing OpenTelemetry.

The one place micro's observability reads the environment: ``OTEL_*`` is OpenTelemetry's
own convention (as ``KUBERNETES_SERVICE_HOST`` is Kubernetes'), not a micro setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["otel_env", "wanted_by_env"]

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def otel_env() -> dict[str, str]:
    """The ``OTEL_*`` variables of this process."""
    return {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}


def wanted_by_env(env: Mapping[str, str]) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (``tracing=auto``)."""
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter and exporter != "none":
        return True
    return not exporter and any(env.get(name) for name in _ENDPOINT_VARS)
