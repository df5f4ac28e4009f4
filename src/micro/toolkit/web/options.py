"""The dashboard's settings, with go-micro's defaults (port 8082, namespace ``go.micro.web``).

One difference from go-micro: it listens on ``127.0.0.1`` unless told otherwise, because
every page can call every service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["NAME_PATTERN", "WebOptions"]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]+([a-zA-Z0-9-]*[a-zA-Z0-9]*)?$")
"""What ``/[name]`` may be for the reverse proxy (go-micro's rule)."""


@dataclass
class WebOptions:
    """Everything ``micro web`` can be told (flags and ``MICRO_WEB_*`` env vars alike).

    Attributes:
        address: ``host:port`` to listen on (``:8082``: every interface).
        namespace: the web services' namespace: ``/[name]`` proxies to ``<namespace>.[name]``.
        max_body: largest request body in bytes (413 beyond it).
        read_timeout: seconds a client gets to send its body (408 beyond it).
        header_timeout, idle_timeout, max_connections: the HTTP connections' limits, as
            ``micro api``'s.
        rate_limit: requests per second per client address (0: unlimited); 429 beyond it.
        rate_burst: bucket size of the rate limit (default: max(1, rate_limit)).
        timeout: seconds per service call (None: the client's, ``MICRO_CLIENT_REQUEST_TIMEOUT``).
        stats_interval: seconds between two polls of a node's ``Debug.Health``/``Debug.Stats``
            while a service page shows it.
        stats_window: seconds of that history kept for the charts.
        access_log: log one line per request on ``micro.web.access``.
        auth_exempt: paths that need no token when auth is on.
        registry: registry backend name (None: ``MICRO_REGISTRY``, else mdns).
    """

    address: str = "127.0.0.1:8082"
    namespace: str = "go.micro.web"
    max_body: int = 10 * 1024 * 1024
    read_timeout: float = 30.0
    header_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_connections: int = 1000
    rate_limit: float = 0.0
    rate_burst: int = 0
    timeout: float | None = None
    stats_interval: float = 5.0
    stats_window: float = 600.0
    access_log: bool = True
    auth_exempt: tuple[str, ...] = ("/health",)
    registry: str | None = None

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if not self.namespace:
            raise ValueError("namespace must not be empty")
        if self.max_body < 0:
            raise ValueError("max_body must be >= 0")
        for name in ("read_timeout", "header_timeout", "idle_timeout", "stats_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.stats_window < self.stats_interval:
            raise ValueError("stats_window must be at least stats_interval")
        if self.max_connections < 0:
            raise ValueError("max_connections must be >= 0")
        if self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be > 0")
