"""The gateway's settings, with go-micro's defaults (``:8080``, namespace ``go.micro.api``)."""

from __future__ import annotations

from dataclasses import dataclass

from micro.settings import parse_size  # re-exported: sizes are parsed there
from micro.toolkit._options import AppOptions
from micro.toolkit.api.resolver import HANDLERS, RESOLVERS

__all__ = ["ApiOptions", "parse_size"]

DEFAULT_HEADERS = ("Content-Type", "Authorization", "Accept", "X-Requested-With", "Timeout")


@dataclass
class ApiOptions(AppOptions):
    """Everything ``micro api`` can be told (flags and ``MICRO_API_*`` env vars alike): the
    gateway's own options below, and the limits, ``timeout``, ``access_log`` (on
    ``micro.api.access``), ``auth_exempt`` and ``registry`` of :class:`AppOptions`.

    Attributes:
        address: ``host:port`` to listen on (``:8080``: every interface).
        namespace: prefix joined to resolved names; "" reaches services by their bare name.
        handler: ``meta`` (default: per-endpoint registry metadata, else ``rpc``), ``rpc``,
            ``api``, ``http`` (or ``proxy``), ``web`` or ``event``.
        resolver: ``micro`` (go-micro's path rules), ``host``, ``path`` or ``grpc``.
        enable_rpc: serve ``POST /rpc`` (any service, any endpoint, even any address).
        cors_origins: allowed origins (``*`` for any); empty: no CORS headers at all.
        cors_methods, cors_headers, cors_credentials: the rest of the CORS answer.
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

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.handler not in HANDLERS:
            raise ValueError(f"unknown handler {self.handler!r}; known: {', '.join(HANDLERS)}")
        if self.resolver not in RESOLVERS:
            raise ValueError(f"unknown resolver {self.resolver!r}; known: {', '.join(RESOLVERS)}")
        super().check()
