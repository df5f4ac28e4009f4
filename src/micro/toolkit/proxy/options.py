"""The proxy's settings, with go-micro's defaults (``:8081``)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["ProxyOptions"]


@dataclass
class ProxyOptions:
    """Everything ``micro proxy`` can be told (flags and ``MICRO_PROXY_*`` env vars alike).

    Attributes:
        address: ``host:port`` to listen on (``:8081``: every interface, but see
            ``allow_unauthenticated``).
        allow_unauthenticated: with no auth, listen where ``address`` says; otherwise
            ``micro proxy`` without auth listens on 127.0.0.1 only.
        tls_cert_file, tls_key_file: serve https and wss with this certificate and key.
        tls_client_ca_file: require client certificates signed by this CA (mutual TLS).
        allow_services: shell globs of the services the proxy forwards to (empty: all).
        allow_topics: shell globs of the topics it publishes and subscribes to (empty: all).
        max_body: largest request body or WebSocket message in bytes (413 beyond it).
        read_timeout: seconds a client gets to send its body (408 beyond it).
        header_timeout, idle_timeout, max_connections: the HTTP connections' limits, as
            ``micro api``'s.
        rate_limit: requests per second per client address (0: unlimited); 429 beyond it.
        rate_burst: bucket size of the rate limit (default: max(1, rate_limit)).
        timeout: seconds per service call (None: the client's, ``MICRO_CLIENT_REQUEST_TIMEOUT``).
        access_log: log one line per request on ``micro.proxy.access``.
        auth_exempt: paths that need no token when auth is on.
        registry: registry backend name (None: ``MICRO_REGISTRY``, else mdns).
    """

    address: str = ":8081"
    allow_unauthenticated: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    allow_services: tuple[str, ...] = ()
    allow_topics: tuple[str, ...] = ()
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
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("--tls-key-file needs --tls-cert-file")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ValueError("--tls-client-ca-file (mutual TLS) needs --tls-cert-file")
        for name in ("allow_services", "allow_topics"):
            if any(not pattern.strip() for pattern in getattr(self, name)):
                raise ValueError(f"{name}: an empty pattern")

    def service_allowed(self, name: str) -> bool:
        """Whether ``allow_services`` lets ``name`` through (always, when it is empty)."""
        return _allowed(self.allow_services, name)

    def topic_allowed(self, topic: str) -> bool:
        """Whether ``allow_topics`` lets ``topic`` through (always, when it is empty)."""
        return _allowed(self.allow_topics, topic)


def _allowed(patterns: tuple[str, ...], name: str) -> bool:
    return not patterns or any(fnmatchcase(name, pattern) for pattern in patterns)
