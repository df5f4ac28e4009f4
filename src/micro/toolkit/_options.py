"""The options every toolkit app has (``micro api``, ``micro web``, ``micro proxy``): its
HTTP connections' limits, the call timeout, the access log, auth exemptions and the registry."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AppOptions"]


@dataclass(kw_only=True)
class AppOptions:
    """The connection and limit options of a toolkit app; each app's options class adds its
    own (those come first, and alone may be given by position).

    Attributes:
        max_body: largest request body or WebSocket message in bytes (413 beyond it).
        read_timeout: seconds a client gets to send its body (408 beyond it).
        header_timeout: seconds from a request's first byte to the end of its head (408 and
            the connection closed beyond it; as the next two, kept by the ``micro`` command's
            server, not by the ASGI app under another server).
        idle_timeout: seconds a connection may wait without starting a request (new, or
            after an answer) before it is closed.
        max_connections: open connections per listener; past it the longest idle one is
            closed (0: no limit).
        rate_limit: requests per second per client address (0: unlimited); 429 beyond it.
        rate_burst: bucket size of the rate limit (default: max(1, rate_limit)).
        timeout: seconds per service call (None: the client's, ``MICRO_CLIENT_REQUEST_TIMEOUT``).
        access_log: log one line per request (on ``micro.<app>.access``).
        auth_exempt: paths that need no token when auth is on.
        registry: registry backend name (None: ``MICRO_REGISTRY``, else mdns).
    """

    max_body: int = 10 * 1024 * 1024
    read_timeout: float = 30.0
    header_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_connections: int = 1000
    rate_limit: float = 0.0
    rate_burst: int = 0
    timeout: float | None = None
    access_log: bool = True
    auth_exempt: tuple[str, ...] = ("/health",)
    registry: str | None = None

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.max_body < 0:
            raise ValueError("max_body must be >= 0")
        for name in ("read_timeout", "header_timeout", "idle_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.max_connections < 0:
            raise ValueError("max_connections must be >= 0")
        if self.rate_limit < 0:
            raise ValueError("rate_limit must be >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout must be > 0")
