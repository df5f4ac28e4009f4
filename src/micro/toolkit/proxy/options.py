"""The proxy's settings, with go-micro's defaults (``:8081``)."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from micro.toolkit._options import AppOptions

__all__ = ["ProxyOptions"]


@dataclass
class ProxyOptions(AppOptions):
    """Everything ``micro proxy`` can be told (flags and ``MICRO_PROXY_*`` env vars alike):
    the proxy's own options below, and the limits, ``timeout``, ``access_log`` (on
    ``micro.proxy.access``), ``auth_exempt`` and ``registry`` of :class:`AppOptions`.

    Attributes:
        address: ``host:port`` to listen on (``:8081``: every interface, but see
            ``allow_unauthenticated``).
        allow_unauthenticated: with no auth, listen where ``address`` says; otherwise
            ``micro proxy`` without auth listens on 127.0.0.1 only.
        tls_cert_file, tls_key_file: serve https and wss with this certificate and key.
        tls_client_ca_file: require client certificates signed by this CA (mutual TLS).
        allow_services: shell globs of the services the proxy forwards to (empty: all).
        allow_topics: shell globs of the topics it publishes and subscribes to (empty: all).
    """

    address: str = ":8081"
    allow_unauthenticated: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    allow_services: tuple[str, ...] = ()
    allow_topics: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        super().check()
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
