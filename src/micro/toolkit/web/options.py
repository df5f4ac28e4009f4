"""The dashboard's settings, with go-micro's defaults (port 8082, namespace ``go.micro.web``).

One difference from go-micro: it listens on ``127.0.0.1`` unless told otherwise, because
every page can call every service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from micro.toolkit._options import AppOptions

__all__ = ["NAME_PATTERN", "WebOptions"]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]+([a-zA-Z0-9-]*[a-zA-Z0-9]*)?$")
"""What ``/[name]`` may be for the reverse proxy (go-micro's rule)."""


@dataclass
class WebOptions(AppOptions):
    """Everything ``micro web`` can be told (flags and ``MICRO_WEB_*`` env vars alike): the
    dashboard's own options below, and the limits, ``timeout``, ``access_log`` (on
    ``micro.web.access``), ``auth_exempt`` and ``registry`` of :class:`AppOptions`.

    Attributes:
        address: ``host:port`` to listen on (``:8082``: every interface).
        namespace: the web services' namespace: ``/[name]`` proxies to ``<namespace>.[name]``.
        stats_interval: seconds between two polls of a node's ``Debug.Health``/``Debug.Stats``
            while a service page shows it.
        stats_window: seconds of that history kept for the charts.
    """

    address: str = "127.0.0.1:8082"
    namespace: str = "go.micro.web"
    stats_interval: float = 5.0
    stats_window: float = 600.0

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if not self.namespace:
            raise ValueError("namespace must not be empty")
        super().check()
        if self.stats_interval <= 0:
            raise ValueError("stats_interval must be > 0")
        if self.stats_window < self.stats_interval:
            raise ValueError("stats_window must be at least stats_interval")
