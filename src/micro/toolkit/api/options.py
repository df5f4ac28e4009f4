"""The gateway's settings, with go-micro's defaults (``:8080``, namespace ``go.micro.api``)."""

from __future__ import annotations

from dataclasses import dataclass

from micro.settings import parse_size  # re-exported: sizes are parsed there
from micro.toolkit.api.resolver import HANDLERS, RESOLVERS

__all__ = ["ApiOptions", "parse_size"]

DEFAULT_HEADERS = ("Content-Type", "Authorization", "Accept", "X-Requested-With", "Timeout")


@dataclass
class ApiOptions:
    """Everything ``micro api`` can be told (flags and ``MICRO_API_*`` env vars alike).

    Attributes:
        address: ``host:port`` to listen on (``:8080``: every interface).
        namespace: prefix joined to resolved names; "" reaches services by their bare name.
        handler: ``meta`` (default: per-endpoint registry metadata, else ``rpc``), ``rpc``,
            ``api``, ``http`` (or ``proxy``), ``web`` or ``event``.
        resolver: ``micro`` (go-micro's path rules), ``host``, ``path`` or ``grpc``.
        enable_rpc: serve ``POST /rpc`` (any service, any endpoint, even any address).
        cors_origins: allowed origins (``*`` for any); empty: no CORS headers at all.
        cors_methods, cors_headers, cors_credentials: the rest of the CORS answer.
        max_body: largest request body in bytes (413 beyond it).
        read_timeout: seconds a client gets to send its body (408 beyond it).
        header_timeout: seconds from a request's first byte to the end of its head (408 and
            the connection closed beyond it; served by ``micro api`` only, as the next two).
        idle_timeout: seconds a connection may wait without starting a request (new, or
            after an answer) before it is closed.
        max_connections: open connections per listener; past it the longest idle one is
            closed (0: no limit).
        rate_limit: requests per second per client address (0: unlimited); 429 beyond it.
        rate_burst: bucket size of the rate limit (default: max(1, rate_limit)).
        timeout: seconds per service call (None: the client's, ``MICRO_CLIENT_REQUEST_TIMEOUT``).
        access_log: log one line per request on ``micro.api.access``.
        auth_exempt: paths that need no token when auth is on.
        registry: registry backend name (None: ``MICRO_REGISTRY``, else mdns).
    """

    address: str = ":8080"
    namespace: str = "go.micro.api"
    handler: str = "meta"
    resolver: str = "micro"
    enable_rpc: bool = False
    cors_origins: tuple[str, ...] = ()
    cors_methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    cors_headers: tuple[str, ...] = DEFAULT_HEADERS
    cors_credentials: bool = False
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
        if self.handler not in HANDLERS:
            raise ValueError(f"unknown handler {self.handler!r}; known: {', '.join(HANDLERS)}")
        if self.resolver not in RESOLVERS:
            raise ValueError(f"unknown resolver {self.resolver!r}; known: {', '.join(RESOLVERS)}")
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
