"""Every setting in one table: name, type, default, env var, flag spellings and help.

Entry points (``Service``, ``micro.Client``, the ``micro`` command and its apps) read the
settings once, in the order code > flag > env > default, and pass plain arguments down;
backends never read the environment. ``micro <app> --help`` and ``docs/configuration.md``
are generated from this table (``python -m micro.settings`` prints the docs page)::

    settings = load(groups=SERVICE_GROUPS, argv=["--registry", "etcd"])
    settings["registry"]                       # "etcd" (a flag beats MICRO_REGISTRY)
    plugins.create("registry", settings["registry"], **settings.options_for("registry"))

Every flag is accepted with dashes and with go-micro's underscores (``--registry-address``,
``--registry_address``). Durations are seconds (``30``) or Go-style (``500ms``, ``1m30s``).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BOT_GROUPS",
    "GROUPS",
    "MCP_GROUPS",
    "PROXY_GROUPS",
    "SERVICE_GROUPS",
    "SETTINGS",
    "Setting",
    "Settings",
    "SettingsError",
    "add_arguments",
    "load",
    "markdown",
    "parse_duration",
    "parse_flags",
]


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names where it came from."""


# -- value types ----------------------------------------------------------------------------

_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-z\u00b5\u03bc]+)")


def parse_duration(value: str | float | int) -> float:
    """Seconds from a number or a Go duration: ``2``, ``"2.5"``, ``"500ms"``, ``"1m30s"``.

    Raises:
        ValueError: the text is neither a number nor a Go duration.
    """
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    rest = text.lstrip("+-")
    total, pos = 0.0, 0
    while pos < len(rest):
        match = _PART.match(rest, pos)
        if match is None or match.group(2) not in _UNITS:
            raise ValueError(f"invalid duration {value!r} (use seconds or e.g. 500ms, 5s, 1m)")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not rest:
        raise ValueError(f"invalid duration {value!r} (use seconds or e.g. 500ms, 5s, 1m)")
    return sign * total


def _non_negative_duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds < 0:
        raise ValueError(f"duration {text!r} is negative")
    return seconds


def _count(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"{text!r} is negative")
    return value


def _number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if value < 0 or value != value:
        raise ValueError(f"{text!r} is not a number >= 0")
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text!r} is not true or false")


def _text(text: str) -> str:
    return text.strip()


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_size(text: str) -> int:
    """Bytes from ``"1048576"``, ``"512K"``, ``"10M"``, ``"1G"`` (also KB/MB/GB, any case)."""
    value = text.strip().upper().removesuffix("B")
    scale = 1
    for suffix, factor in (("K", 1024), ("M", 1024**2), ("G", 1024**3)):
        if value.endswith(suffix):
            value, scale = value[:-1], factor
            break
    if not value.isdigit():
        raise ValueError(f"{text!r} is not a size (try 1048576, 512K or 10M)")
    return int(value) * scale


_KINDS: dict[str, Callable[[str], Any]] = {
    "text": _text,
    "duration": _non_negative_duration,
    "count": _count,
    "number": _number,
    "bool": _boolean,
    "list": _csv,
    "size": parse_size,
}


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """One setting.

    Attributes:
        name: its key, e.g. ``registry_address``.
        kind: ``text``, ``duration``, ``count``, ``number``, ``bool``, ``list`` or ``size``.
        default: the value when nothing sets it (``None``: the backend's own default).
        help: one line for ``--help`` and the docs.
        group: ``service``, ``registry``, ``mdns``, ``selector``, ``transport``, ``broker``,
            ``client``, ``resilience``, ``remote``, ``observability``, ``api``, ``web``,
            ``proxy``, ``bot``, ``mcp`` or ``cli``.
        env: the environment variables read, first set wins (default ``MICRO_<NAME>``).
        flags: the flag spellings (default ``--name-with-dashes`` and ``--name_with_under``).
        backends: ``((kind, keywords), ...)``: the backends it configures and, for each, the
            constructor keywords it may go to (the first one the chosen backend accepts).
    """

    name: str
    kind: str
    default: Any
    help: str
    group: str
    env: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    backends: tuple[tuple[str, tuple[str, ...]], ...] = ()
    blank: bool = False  # an env var set to "" is a value (else it counts as unset)

    def __post_init__(self) -> None:
        if not self.env:
            object.__setattr__(self, "env", (f"MICRO_{self.name.upper()}",))
        if not self.flags:
            dashed = "--" + self.name.replace("_", "-")
            underscored = "--" + self.name
            flags = (dashed, underscored) if dashed != underscored else (dashed,)
            object.__setattr__(self, "flags", flags)

    def parse(self, text: str, source: str) -> Any:
        """``text`` as this setting's type.

        Raises:
            SettingsError: it does not parse; the message starts with ``source``.
        """
        try:
            return _KINDS[self.kind](text)
        except ValueError as exc:
            raise SettingsError(f"{source}: {exc}") from None


def _s(
    name: str,
    kind: str,
    default: Any,
    help: str,
    group: str,
    backends: tuple[tuple[str, tuple[str, ...]], ...] = (),
    env: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    blank: bool = False,
) -> Setting:
    return Setting(name, kind, default, help, group, env, flags, backends, blank)


def _reg(*keywords: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("registry", keywords),)


def _brk(*keywords: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return (("broker", keywords),)


_CORS_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_CORS_HEADERS = ("Content-Type", "Authorization", "Accept", "X-Requested-With", "Timeout")

# fmt: off
SETTINGS: tuple[Setting, ...] = (
    # -- the service
    _s("server_name", "text", None, "name to register (default: the name given in code)",
       "service"),
    _s("server_version", "text", "latest", "version to register", "service"),
    _s("server_address", "text", ":0", "host:port to bind (:0: a free port, all interfaces)",
       "service"),
    _s("server_advertise", "text", None, "host:port to register instead of the bound one",
       "service"),
    _s("register_ttl", "duration", 60.0, "how long a registration lives without a refresh",
       "service"),
    _s("register_interval", "duration", 30.0, "time between re-registrations", "service"),
    _s("server_grace", "duration", 10.0, "time in-flight requests get to finish on stop",
       "service"),
    _s("server", "text", "mucp", "server protocol: mucp, grpc, or mucp,grpc (both, on two "
       "ports, both nodes registered)", "service"),
    _s("grpc_address", "text", None, "host:port of the gRPC server when serving both "
       "(default: the server_address host, a free port)", "service"),
    _s("grpc_package", "text", None, "gRPC package of the methods /<package>.<Handler>/"
       "<Method> (default: the service name)", "service"),
    # -- discovery
    _s("registry", "text", "mdns", "registry backend: mdns, etcd, nats, consul, kubernetes, "
       "memory", "registry"),
    _s("registry_address", "text", None, "registry address(es), comma-separated", "registry",
       _reg("address")),
    _s("registry_username", "text", None, "registry user (etcd, nats)", "registry",
       _reg("username", "user")),
    _s("registry_password", "text", None, "registry password (etcd, nats)", "registry",
       _reg("password")),
    _s("registry_token", "text", None, "registry token (nats, consul, kubernetes)",
       "registry", _reg("token")),
    _s("registry_prefix", "text", None, "key or subject prefix (etcd: default "
       "/micro/registry/, go-plugins' etcdv3 used /micro-registry/; nats: default "
       "micro.registry)", "registry", _reg("prefix"),
       env=("MICRO_REGISTRY_PREFIX", "MICRO_NATS_REGISTRY_PREFIX")),
    _s("registry_timeout", "duration", None, "registry operation timeout", "registry",
       _reg("timeout")),
    _s("registry_tls_ca", "text", None, "CA file for the registry's certificate (etcd)",
       "registry", _reg("tls_ca")),
    _s("registry_tls_cert", "text", None, "client certificate file (etcd)", "registry",
       _reg("tls_cert")),
    _s("registry_tls_key", "text", None, "client key file (etcd)", "registry",
       _reg("tls_key")),
    _s("registry_namespace", "text", None, "namespace of the pods (kubernetes)", "registry",
       _reg("namespace"), env=("MICRO_REGISTRY_NAMESPACE", "POD_NAMESPACE")),
    _s("registry_pod_name", "text", None, "this pod's name (kubernetes)", "registry",
       _reg("pod_name"), env=("MICRO_REGISTRY_POD_NAME", "POD_NAME")),
    _s("mdns_interfaces", "list", None, "IPv4 addresses mDNS may use, comma-separated "
       "(default: every interface)", "mdns",
       (("registry", ("interfaces",)), ("broker", ("interfaces",)))),
    _s("mdns_domain", "text", None, "the one mDNS domain to publish and browse in (default: "
       "both micro, go-micro 1.10+, and local, go-micro up to 1.9)", "mdns", _reg("domain")),
    _s("selector", "text", "registry", "selector backend (registry: cached, round robin)",
       "selector"),
    # -- transport
    _s("transport", "text", "http", "transport backend: http, tcp, nats, rabbitmq, memory",
       "transport"),
    _s("transport_read_timeout", "duration", None, "time a request gets to arrive in full "
       "once its first byte has (http, default 30s)", "transport",
       (("transport", ("read_timeout",)),)),
    _s("transport_max_body", "size", None, "largest request or response body (http, tcp, "
       "nats, default 4M; rabbitmq, default 16M)", "transport",
       (("transport", ("max_body",)),)),
    _s("transport_idle_timeout", "duration", None, "time a connection may wait without a "
       "request (http, rabbitmq) or stream (tcp) before it is closed (default 90s)",
       "transport",
       (("transport", ("idle_timeout",)),)),
    _s("transport_max_connections", "count", None, "connections a listener keeps; past it "
       "the longest idle are closed (http, default 10000 or 3/4 of the fd limit)",
       "transport", (("transport", ("max_connections",)),)),
    # -- transport: nats (the tls_* rows also tcp)
    _s("transport_address", "text", None, "the server(s) a broker-based transport uses, "
       "comma-separated: nats, NATS URLs (default nats://127.0.0.1:4222); rabbitmq, "
       "amqp:// or amqps:// URLs or host:port, the first that answers is used (default "
       "amqp://guest:guest@127.0.0.1:5672/; TLS: amqps with cafile, certfile, keyfile "
       "query parameters)", "transport", (("transport", ("address",)),)),
    _s("transport_username", "text", None, "NATS user (nats transport)", "transport",
       (("transport", ("username",)),)),
    _s("transport_password", "text", None, "NATS password (nats transport)", "transport",
       (("transport", ("password",)),)),
    _s("transport_token", "text", None, "NATS token (nats transport)", "transport",
       (("transport", ("token",)),)),
    _s("transport_creds", "text", None, "NATS user credentials file, JWT and NKey (nats "
       "transport)", "transport", (("transport", ("creds",)),)),
    _s("transport_nkey", "text", None, "NATS NKey seed file (nats transport)", "transport",
       (("transport", ("nkey",)),)),
    _s("transport_tls_ca", "text", None, "CA file: tcp dials over TLS and checks the "
       "listener's certificate (a TLS listener asks dialers for one it signed); nats checks "
       "the NATS servers' certificate", "transport", (("transport", ("tls_ca",)),)),
    _s("transport_tls_cert", "text", None, "certificate file: a tcp listener serves TLS "
       "(and a tcp dialer presents it when asked); nats: the client certificate",
       "transport", (("transport", ("tls_cert",)),)),
    _s("transport_tls_key", "text", None, "the key of transport_tls_cert (tcp, nats)",
       "transport", (("transport", ("tls_key",)),)),
    _s("transport_ping_interval", "duration", None, "time a nats transport connection "
       "waits for a message before it checks that its peer is still there (0: never; "
       "default 2s)", "transport", (("transport", ("ping_interval",)),)),
    # -- transport: rabbitmq
    _s("transport_exchange", "text", None, "rabbitmq: the topic exchange a dial opens "
       "through (default micro, as go-plugins)", "transport",
       (("transport", ("exchange",)),)),
    # -- pub/sub
    _s("broker", "text", "http", "broker backend: http, nats, rabbitmq, redis, mqtt, memory",
       "broker"),
    _s("broker_address", "text", None, "broker address(es), comma-separated", "broker",
       _brk("address")),
    _s("broker_jetstream", "bool", None, "nats: JetStream (at-least-once, durable) instead "
       "of core NATS", "broker", _brk("jetstream")),
    _s("broker_streams", "bool", None, "redis: Streams (at-least-once) instead of pub/sub "
       "(default true)", "broker", _brk("streams")),
    _s("broker_max_deliver", "count", None, "deliveries of a message before it is "
       "dead-lettered (nats JetStream, redis, rabbitmq)", "broker",
       _brk("max_deliver", "max_deliveries")),
    _s("broker_ack_wait", "duration", None, "time a delivery may stay unacknowledged "
       "before it is redelivered (nats JetStream)", "broker", _brk("ack_wait")),
    _s("broker_prefix", "text", None, "stream key prefix (redis) or exchange (rabbitmq)",
       "broker", _brk("prefix", "exchange")),
    _s("broker_client_id", "text", None, "client id or connection name (mqtt, nats)",
       "broker", _brk("client_id", "name")),
    _s("broker_username", "text", None, "broker user (mqtt; the others take it in the "
       "address URL)", "broker", _brk("username")),
    _s("broker_password", "text", None, "broker password (mqtt)", "broker",
       _brk("password")),
    _s("broker_qos", "count", None, "MQTT quality of service, 0 or 1 (default 1)", "broker",
       _brk("qos")),
    # -- the client
    _s("content_type", "text", "application/json", "content type of outgoing calls",
       "client"),
    _s("client_request_timeout", "duration", 5.0, "time a call may take, retries included",
       "client"),
    _s("client_retries", "count", 1, "retries of a call on 408, 500 or a connection error",
       "client"),
    _s("client_pool_size", "count", 100, "idle connections kept per address", "client"),
    _s("client_pool_ttl", "duration", 60.0, "time an idle pooled connection is kept",
       "client"),
    _s("client_dial_timeout", "duration", 5.0, "time a connection may take to open",
       "client"),
    # -- resilience (docs/resilience.md): each mechanism is off until set
    _s("resilience_breaker", "bool", False, "client: a circuit breaker per node and per "
       "service", "resilience"),
    _s("resilience_breaker_failure_rate", "number", 0.5, "share of failed calls in the "
       "window that opens a breaker", "resilience"),
    _s("resilience_breaker_window", "duration", 10.0, "time the failure rate is computed "
       "over", "resilience"),
    _s("resilience_breaker_min_calls", "count", 20, "calls in the window before a breaker "
       "may open", "resilience"),
    _s("resilience_breaker_open_for", "duration", 5.0, "time a breaker stays open before "
       "it lets probes through", "resilience"),
    _s("resilience_breaker_probes", "count", 3, "calls let through half-open; that many "
       "successes close it", "resilience"),
    _s("resilience_breaker_per_service", "bool", True, "also one breaker per service, "
       "over whole calls", "resilience"),
    _s("resilience_bulkhead", "count", 0, "client: calls in flight per service (0: no "
       "limit); past it calls fail with 503", "resilience"),
    _s("resilience_bulkhead_wait", "duration", 0.0, "time a call past the bulkhead waits "
       "for a slot", "resilience"),
    _s("resilience_retry_budget", "bool", False, "client: retries limited to a share of "
       "the calls", "resilience"),
    _s("resilience_retry_ratio", "number", 0.2, "retries allowed per call over the window",
       "resilience"),
    _s("resilience_retry_min", "count", 10, "retries always allowed per window",
       "resilience"),
    _s("resilience_retry_window", "duration", 10.0, "time calls and retries are counted "
       "over", "resilience"),
    _s("resilience_hedge_after", "duration", 0.0, "client: time without an answer before "
       "a hedged endpoint is also asked of another node (0: off)", "resilience"),
    _s("resilience_hedge_endpoints", "list", (), "idempotent endpoints to hedge, "
       "comma-separated (* for every one)", "resilience"),
    _s("resilience_eject_failures", "count", 3, "selector: consecutive failures that eject "
       "a node", "resilience", (("selector", ("failures",)),)),
    _s("resilience_eject_for", "duration", 30.0, "selector: time an ejected node is "
       "skipped", "resilience", (("selector", ("blacklist_for",)),)),
    _s("resilience_eject_rate", "number", 0.0, "selector: failure rate over the breaker "
       "window that ejects a node (0: off)", "resilience",
       (("selector", ("eject_rate",)),)),
    _s("resilience_eject_max", "number", 1.0, "selector: largest share of a service's "
       "nodes ejected at once", "resilience", (("selector", ("eject_max",)),)),
    _s("resilience_max_in_flight", "count", 0, "server: calls handled at once; past it "
       "503 at once (0: no limit)", "resilience"),
    _s("resilience_rate_limit", "number", 0.0, "server: calls per second per client "
       "(0: no limit); past it 429", "resilience"),
    _s("resilience_rate_burst", "count", 0, "server: calls a client may make at once "
       "(0: one second's worth)", "resilience"),
    _s("resilience_rate_key", "text", None, "server: metadata key naming the client "
       "(default: its remote address)", "resilience"),
    _s("client", "text", "auto", "protocol of calls: auto (grpc to nodes registered with "
       "protocol=grpc, mucp to the others), mucp, grpc", "client"),
    # -- reaching a remote environment through micro proxy (the laptop side)
    _s("proxy_address", "text", None, "reach the services through this micro proxy "
       "(host:port, http:// or https://): the registry, calls and events go through it",
       "remote", (("registry", ("proxy_address",)), ("broker", ("proxy_address",)))),
    _s("proxy_token", "text", None, "bearer token sent to the proxy", "remote",
       (("registry", ("proxy_token",)), ("broker", ("proxy_token",)))),
    _s("proxy_tls_ca", "text", None, "CA file that signs the proxy's certificate (implies "
       "https; default: the system's CAs)", "remote",
       (("registry", ("proxy_tls_ca",)), ("broker", ("proxy_tls_ca",)))),
    _s("proxy_tls_cert", "text", None, "client certificate file for a proxy that asks for "
       "one (mutual TLS)", "remote",
       (("registry", ("proxy_tls_cert",)), ("broker", ("proxy_tls_cert",)))),
    _s("proxy_tls_key", "text", None, "the key of that certificate", "remote",
       (("registry", ("proxy_tls_key",)), ("broker", ("proxy_tls_key",)))),
    # -- micro api
    _s("api_address", "text", ":8080", "host:port to listen on", "api",
       flags=("--address",)),
    _s("api_namespace", "text", "go.micro.api", "namespace joined to resolved service "
       "names (\"\": bare names)", "api", flags=("--namespace",), blank=True),
    _s("api_handler", "text", "meta", "meta, rpc, api, http (proxy), web, event", "api",
       flags=("--handler",)),
    _s("api_resolver", "text", "micro", "micro, host, path, grpc", "api",
       flags=("--resolver",)),
    _s("api_enable_rpc", "bool", False, "serve POST /rpc", "api",
       flags=("--enable-rpc", "--enable_rpc")),
    _s("api_cors_allowed_origins", "list", (), "allowed origins, * for any (default: no "
       "CORS)", "api", flags=("--cors-allowed-origins", "--cors")),
    _s("api_cors_allowed_methods", "list", _CORS_METHODS, "CORS methods", "api",
       flags=("--cors-allowed-methods",)),
    _s("api_cors_allowed_headers", "list", _CORS_HEADERS, "CORS headers", "api",
       flags=("--cors-allowed-headers",)),
    _s("api_cors_allow_credentials", "bool", False, "allow credentials in CORS", "api",
       flags=("--cors-allow-credentials",)),
    _s("api_max_body", "size", 10 * 1024 * 1024, "largest request body (413 beyond)",
       "api", flags=("--max-body",)),
    _s("api_read_timeout", "duration", 30.0, "time a client gets to send its body (408 "
       "beyond)", "api", flags=("--read-timeout",)),
    _s("api_header_timeout", "duration", 30.0, "time from a request's first byte to the end "
       "of its head (408 beyond)", "api", flags=("--header-timeout",)),
    _s("api_idle_timeout", "duration", 60.0, "time a connection may wait without starting "
       "a request", "api", flags=("--idle-timeout",)),
    _s("api_max_connections", "count", 1000, "open connections; past it the longest idle "
       "is closed (0: no limit)", "api", flags=("--max-connections",)),
    _s("api_rate_limit", "number", 0.0, "requests/s per client address (0: off)", "api",
       flags=("--rate-limit",)),
    _s("api_rate_burst", "count", 0, "rate limit bucket size (0: the rate)", "api",
       flags=("--rate-burst",)),
    _s("api_timeout", "duration", None, "time per service call (default: the client's)",
       "api", flags=("--timeout",)),
    _s("api_auth_tokens", "list", (), "accepted bearer tokens", "api",
       flags=("--auth-tokens",)),
    _s("api_auth_function", "text", None, "module:function(token, scope) checking tokens",
       "api", flags=("--auth-function",)),
    _s("api_auth_service", "text", None, "a service checking tokens", "api",
       flags=("--auth-service",)),
    _s("api_auth_endpoint", "text", "Auth.Verify", "the endpoint of that service", "api",
       flags=("--auth-endpoint",)),
    _s("api_no_access_log", "bool", False, "do not log each request", "api",
       flags=("--no-access-log",)),
    _s("api_log_level", "text", "info", "debug, info, warning, error", "api",
       flags=("--log-level",)),
    # -- micro web
    _s("web_address", "text", "127.0.0.1:8082", "host:port to listen on (:8082: every "
       "interface)", "web", flags=("--address",)),
    _s("web_namespace", "text", "go.micro.web", "namespace of the web services proxied at "
       "/[name]", "web", flags=("--namespace",)),
    _s("web_max_body", "size", 10 * 1024 * 1024, "largest request body (413 beyond)",
       "web", flags=("--max-body",)),
    _s("web_read_timeout", "duration", 30.0, "time a client gets to send its body (408 "
       "beyond)", "web", flags=("--read-timeout",)),
    _s("web_header_timeout", "duration", 30.0, "time from a request's first byte to the end "
       "of its head (408 beyond)", "web", flags=("--header-timeout",)),
    _s("web_idle_timeout", "duration", 60.0, "time a connection may wait without starting "
       "a request", "web", flags=("--idle-timeout",)),
    _s("web_max_connections", "count", 1000, "open connections; past it the longest idle "
       "is closed (0: no limit)", "web", flags=("--max-connections",)),
    _s("web_rate_limit", "number", 0.0, "requests/s per client address (0: off)", "web",
       flags=("--rate-limit",)),
    _s("web_rate_burst", "count", 0, "rate limit bucket size (0: the rate)", "web",
       flags=("--rate-burst",)),
    _s("web_timeout", "duration", None, "time per service call (default: the client's)",
       "web", flags=("--timeout",)),
    _s("web_stats_interval", "duration", 5.0, "how often the service page polls each node's "
       "Debug.Health and Debug.Stats", "web", flags=("--stats-interval",)),
    _s("web_stats_window", "duration", 600.0, "how much of that history the charts keep",
       "web", flags=("--stats-window",)),
    _s("web_auth_tokens", "list", (), "accepted bearer tokens", "web",
       flags=("--auth-tokens",)),
    _s("web_auth_function", "text", None, "module:function(token, scope) checking tokens",
       "web", flags=("--auth-function",)),
    _s("web_auth_service", "text", None, "a service checking tokens", "web",
       flags=("--auth-service",)),
    _s("web_auth_endpoint", "text", "Auth.Verify", "the endpoint of that service", "web",
       flags=("--auth-endpoint",)),
    _s("web_no_access_log", "bool", False, "do not log each request", "web",
       flags=("--no-access-log",)),
    _s("web_log_level", "text", "info", "debug, info, warning, error", "web",
       flags=("--log-level",)),
    # -- micro proxy (the server in the remote environment)
    _s("proxy_server_address", "text", ":8081", "host:port to listen on (without auth: "
       "127.0.0.1 only, unless --allow-unauthenticated)", "proxy", env=("MICRO_PROXY_ADDRESS",),
       flags=("--address",)),
    _s("proxy_allow_unauthenticated", "bool", False, "listen beyond loopback with no auth "
       "(a trusted network only)", "proxy", flags=("--allow-unauthenticated",)),
    _s("proxy_tls_cert_file", "text", None, "certificate file: serve https and wss", "proxy",
       env=("MICRO_PROXY_TLS_CERT_FILE", "MICRO_TLS_CERT_FILE"),
       flags=("--tls-cert-file", "--tls_cert_file")),
    _s("proxy_tls_key_file", "text", None, "the certificate's key file", "proxy",
       env=("MICRO_PROXY_TLS_KEY_FILE", "MICRO_TLS_KEY_FILE"),
       flags=("--tls-key-file", "--tls_key_file")),
    _s("proxy_tls_client_ca_file", "text", None, "CA file of the client certificates to "
       "require (mutual TLS)", "proxy",
       env=("MICRO_PROXY_TLS_CLIENT_CA_FILE", "MICRO_TLS_CLIENT_CA_FILE"),
       flags=("--tls-client-ca-file", "--tls_client_ca_file")),
    _s("proxy_allow_services", "list", (), "services the proxy forwards to, shell globs "
       "(default: all)", "proxy", flags=("--allow-services",)),
    _s("proxy_allow_topics", "list", (), "topics the proxy publishes and subscribes to, "
       "shell globs (default: all)", "proxy", flags=("--allow-topics",)),
    _s("proxy_app_name", "text", None, "companion mode: register the app beside the proxy "
       "under this name", "proxy", env=("MICRO_PROXY_SERVER_NAME",),
       flags=("--server-name", "--server_name")),
    _s("proxy_app_address", "text", None, "companion mode: the app's host:port", "proxy",
       env=("MICRO_PROXY_SERVER_ADDRESS",), flags=("--server-address", "--server_address")),
    _s("proxy_healthcheck_url", "text", None, "companion mode: the app's health URL (2xx: "
       "healthy; else it is deregistered until it recovers)", "proxy",
       flags=("--healthcheck-url", "--healthcheck_url")),
    _s("proxy_healthcheck_interval", "duration", 10.0, "companion mode: time between health "
       "checks", "proxy", flags=("--healthcheck-interval", "--healthcheck_interval")),
    _s("proxy_max_body", "size", 10 * 1024 * 1024, "largest request body or WebSocket "
       "message (413 beyond)", "proxy", flags=("--max-body",)),
    _s("proxy_read_timeout", "duration", 30.0, "time a client gets to send its body (408 "
       "beyond)", "proxy", flags=("--read-timeout",)),
    _s("proxy_header_timeout", "duration", 30.0, "time from a request's first byte to the "
       "end of its head (408 beyond)", "proxy", flags=("--header-timeout",)),
    _s("proxy_idle_timeout", "duration", 60.0, "time a connection may wait without starting "
       "a request", "proxy", flags=("--idle-timeout",)),
    _s("proxy_max_connections", "count", 1000, "open connections; past it the longest idle "
       "is closed (0: no limit)", "proxy", flags=("--max-connections",)),
    _s("proxy_rate_limit", "number", 0.0, "requests/s per client address (0: off)", "proxy",
       flags=("--rate-limit",)),
    _s("proxy_rate_burst", "count", 0, "rate limit bucket size (0: the rate)", "proxy",
       flags=("--rate-burst",)),
    _s("proxy_timeout", "duration", None, "time per service call (default: the client's)",
       "proxy", flags=("--timeout",)),
    _s("proxy_auth_tokens", "list", (), "accepted bearer tokens", "proxy",
       flags=("--auth-tokens",)),
    _s("proxy_auth_function", "text", None, "module:function(token, scope) checking tokens",
       "proxy", flags=("--auth-function",)),
    _s("proxy_auth_service", "text", None, "a service checking tokens", "proxy",
       flags=("--auth-service",)),
    _s("proxy_auth_endpoint", "text", "Auth.Verify", "the endpoint of that service", "proxy",
       flags=("--auth-endpoint",)),
    _s("proxy_no_access_log", "bool", False, "do not log each request", "proxy",
       flags=("--no-access-log",)),
    _s("proxy_log_level", "text", "info", "debug, info, warning, error", "proxy",
       flags=("--log-level",)),
    # -- micro mcp
    _s("mcp_address", "text", None, "serve Streamable HTTP on this host:port (default: stdio, "
       "for a client that spawns micro mcp)", "mcp", flags=("--address",)),
    _s("mcp_allow", "list", (), "tools offered, shell globs over service.Handler.Method, "
       "comma-separated (default: every endpoint)", "mcp", flags=("--allow",)),
    _s("mcp_deny", "list", (), "tools never offered, shell globs (beats --allow)", "mcp",
       flags=("--deny",)),
    _s("mcp_read_only", "bool", False, "offer only endpoints whose metadata says safe=true, "
       "and no publish", "mcp", flags=("--read-only",)),
    _s("mcp_enable_publish", "bool", False, "offer the publish tool (events to any topic)",
       "mcp", flags=("--enable-publish",)),
    _s("mcp_timeout", "duration", None, "time per tool call (default: the client's)", "mcp",
       flags=("--timeout",)),
    _s("mcp_max_result", "size", 1024 * 1024, "largest tool result in bytes of JSON (an "
       "error result beyond)", "mcp", flags=("--max-result",)),
    _s("mcp_rate_limit", "number", 0.0, "tool calls/s per client: token, else address, "
       "else the stdio peer (0: off)", "mcp", flags=("--rate-limit",)),
    _s("mcp_rate_burst", "count", 0, "rate limit bucket size (0: the rate)", "mcp",
       flags=("--rate-burst",)),
    _s("mcp_max_body", "size", 4 * 1024 * 1024, "largest HTTP request body (413 beyond)",
       "mcp", flags=("--max-body",)),
    _s("mcp_auth_tokens", "list", (), "accepted bearer tokens (HTTP)", "mcp",
       flags=("--auth-tokens",)),
    _s("mcp_auth_function", "text", None, "module:function(token, scope) checking tokens "
       "(HTTP)", "mcp", flags=("--auth-function",)),
    _s("mcp_auth_service", "text", None, "a service checking tokens (HTTP)", "mcp",
       flags=("--auth-service",)),
    _s("mcp_auth_endpoint", "text", "Auth.Verify", "the endpoint of that service", "mcp",
       flags=("--auth-endpoint",)),
    _s("mcp_auth_scopes", "list", (), "tools each token may see and call: TOKEN=GLOB|GLOB, "
       "comma-separated; TOKEN * for the others (default: every tool)", "mcp",
       flags=("--auth-scopes",)),
    _s("mcp_no_access_log", "bool", False, "do not log each HTTP request", "mcp",
       flags=("--no-access-log",)),
    _s("mcp_no_audit_log", "bool", False, "do not log each tool call (micro.mcp.audit)",
       "mcp", flags=("--no-audit-log",)),
    _s("mcp_log_level", "text", "info", "debug, info, warning, error (to stderr)", "mcp",
       flags=("--log-level",)),
    # -- micro bot
    _s("bot_inputs", "list", (), "inputs to run, comma-separated (terminal, slack)", "bot",
       flags=("--inputs",)),
    _s("bot_namespace", "text", "go.micro.bot", "prefix of the command services' names",
       "bot", flags=("--namespace",)),
    _s("bot_timeout", "duration", 30.0, "time a command may take before its reply says so",
       "bot", flags=("--timeout",)),
    _s("bot_allow_users", "list", (), "users the bot answers (default: the input's; the "
       "terminal's local user; everyone on slack and xmpp)", "bot", flags=("--allow-users",)),
    _s("bot_admins", "list", (), "users who may run call, register and deregister (default: "
       "everyone allowed)", "bot", flags=("--admins",)),
    _s("bot_disable", "list", (), "built-in commands to turn off, e.g. call,register,"
       "deregister", "bot", flags=("--disable",)),
    _s("bot_log_level", "text", "warning", "debug, info, warning, error", "bot",
       flags=("--log-level",)),
    # -- micro bot: slack
    _s("slack_token", "text", None, "the Slack input's bot token (xoxb-...)", "bot",
       env=("MICRO_SLACK_TOKEN",), flags=("--slack-token", "--slack_token")),
    _s("slack_app_token", "text", None, "the Slack input's app-level token for Socket Mode "
       "(xapp-...)", "bot", env=("MICRO_SLACK_APP_TOKEN",),
       flags=("--slack-app-token", "--slack_app_token")),
    _s("slack_api_url", "text", "https://slack.com/api/", "base URL of Slack's Web API",
       "bot", env=("MICRO_SLACK_API_URL",), flags=("--slack-api-url",)),
    # -- micro bot: xmpp
    _s("xmpp_username", "text", None, "the bot's XMPP account, a full JID (bot@example.org)",
       "bot", env=("MICRO_XMPP_USERNAME", "MICRO_BOT_XMPP_USERNAME")),
    _s("xmpp_password", "text", None, "the password of that account", "bot",
       env=("MICRO_XMPP_PASSWORD", "MICRO_BOT_XMPP_PASSWORD")),
    _s("xmpp_server", "text", None, "host:port to connect to (default: the JID's domain, "
       "port 5222)", "bot", env=("MICRO_XMPP_SERVER", "MICRO_BOT_XMPP_SERVER")),
    _s("xmpp_rooms", "list", (), "multi-user chat rooms to join (room@conference.example.org)",
       "bot", env=("MICRO_XMPP_ROOMS", "MICRO_BOT_XMPP_ROOMS")),
    _s("xmpp_nick", "text", None, "the bot's nick in rooms (default: the JID's user part)",
       "bot", env=("MICRO_XMPP_NICK", "MICRO_BOT_XMPP_NICK")),
    _s("xmpp_tls", "text", "starttls", "starttls, direct (TLS from the start) or none "
       "(plaintext); also for hipchat", "bot", env=("MICRO_XMPP_TLS", "MICRO_BOT_XMPP_TLS")),
    _s("xmpp_ca_file", "text", None, "CA certificates (PEM) to trust for the server's "
       "certificate; also for hipchat", "bot",
       env=("MICRO_XMPP_CA_FILE", "MICRO_BOT_XMPP_CA_FILE")),
    _s("xmpp_insecure_skip_verify", "bool", False, "do not verify the server's certificate; "
       "also for hipchat", "bot",
       env=("MICRO_XMPP_INSECURE_SKIP_VERIFY", "MICRO_BOT_XMPP_INSECURE_SKIP_VERIFY")),
    _s("hipchat_username", "text", None, "the bot's HipChat JID (the xmpp input with "
       "HipChat's defaults)", "bot"),
    _s("hipchat_password", "text", None, "the password of that account", "bot"),
    _s("hipchat_server", "text", "chat.hipchat.com", "host:port of HipChat's XMPP server",
       "bot"),
    _s("hipchat_rooms", "list", (), "HipChat rooms to join (their XMPP JIDs)", "bot"),
    _s("hipchat_nick", "text", None, "the bot's mention name in rooms (default: the JID's "
       "user part)", "bot"),
    # -- observability (docs/observability.md)
    _s("tracing", "text", "auto", "OpenTelemetry spans and W3C traceparent: auto (on when an "
       "OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_*ENDPOINT is set and micro[otel] is "
       "installed), on, off", "observability"),
    _s("metrics_address", "text", None, "host:port to serve Prometheus /metrics on (unset: no "
       "metrics)", "observability"),
    _s("request_log", "text", None, "one log line per request: json or text (unset: none)",
       "observability"),
    # -- the micro command
    _s("output", "text", "table", "output format: table or json", "cli",
       flags=("-o", "--output")),
    _s("debug", "bool", False, "show tracebacks on errors", "cli", flags=("--debug",)),
    _s("cli_history", "text", "~/.micro_history", "history file of micro cli", "cli",
       flags=("--cli-history",)),
)
# fmt: on

GROUPS = ("service", "registry", "mdns", "selector", "transport", "broker", "client",
          "resilience", "remote", "observability", "api", "web", "proxy", "bot", "mcp",
          "cli")  # fmt: skip
"""The groups in the order ``--help`` and the docs show them."""

SERVICE_GROUPS = ("service", "registry", "mdns", "selector", "transport", "broker", "client",
                  "resilience", "remote", "observability")  # fmt: skip
"""What a service reads: everything but the toolkit apps' own settings."""

BACKEND_GROUPS = SERVICE_GROUPS[1:]
"""What a client or a toolkit app reads besides its own group."""

PROXY_GROUPS = ("proxy", *(g for g in BACKEND_GROUPS if g != "remote"))
"""What ``micro proxy`` reads: its own group and the backends', but not ``remote``: there
``MICRO_PROXY_ADDRESS`` is the address it listens on, as in go-micro, not one to go through."""

BOT_GROUPS = ("bot", *BACKEND_GROUPS)
"""What ``micro bot`` reads: its own group and the backends'."""

MCP_GROUPS = ("mcp", *BACKEND_GROUPS)
"""What ``micro mcp`` reads: its own group and the backends'."""

BY_NAME = {setting.name: setting for setting in SETTINGS}


def _in(groups: Iterable[str]) -> Iterator[Setting]:
    wanted = set(groups)
    return (s for s in SETTINGS if s.group in wanted)


# -- reading --------------------------------------------------------------------------------


class Settings(Mapping[str, Any]):
    """Resolved settings (a read-only mapping ``name -> value``) and where each came from."""

    def __init__(self, values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._sources = dict(sources)

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        given = {k: v for k, v in self._values.items() if self._sources[k] != "default"}
        return f"Settings({given!r})"

    def source(self, name: str) -> str:
        """Where ``name`` came from: ``code``, a flag (``--x``), an env var, or ``default``."""
        return self._sources[name]

    def options_for(
        self, kind: str, accepts: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        """The constructor keywords the given settings make for a ``kind`` backend.

        Only settings that are set (not ``None``) are included; with ``accepts``, each goes
        to the first of its keywords that the backend accepts (and is left out otherwise).
        """
        out: dict[str, Any] = {}
        for setting in SETTINGS:
            value = self._values.get(setting.name)
            if value is None:
                continue
            for target, keywords in setting.backends:
                if target != kind:
                    continue
                chosen = next((k for k in keywords if accepts is None or accepts(k)), None)
                if chosen is not None:
                    out[chosen] = value
        return out

    def with_code(self, code: Mapping[str, Any]) -> Settings:
        """A copy where the non-``None`` values of ``code`` win."""
        values, sources = dict(self._values), dict(self._sources)
        for name, value in code.items():
            if value is not None:
                values[name], sources[name] = _from_code(name, value), "code"
        return Settings(values, sources)


def _from_code(name: str, value: Any) -> Any:
    setting = BY_NAME[name]
    if isinstance(value, str) and setting.kind not in ("text",):
        return setting.parse(value, name)
    return value


def load(
    *,
    groups: Iterable[str] = GROUPS,
    argv: Sequence[str] | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    code: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve the settings of ``groups``: ``code`` > flags > ``environ`` > defaults.

    Args:
        groups: which groups to read.
        argv: command-line arguments to parse (flags of those groups only).
        flags: already parsed flags (``name -> text``), e.g. from :func:`parse_flags`.
        environ: the environment (default ``os.environ``).
        code: values given in code (``None`` values are ignored).

    Raises:
        SettingsError: a value does not parse (the message names the flag or env var).
        SystemExit: ``argv`` has an unknown flag or asks for ``--help`` (argparse).
    """
    env = os.environ if environ is None else environ
    given = dict(flags or {})
    if argv is not None:
        given.update(parse_flags(argv, groups=groups))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for setting in _in(groups):
        values[setting.name], sources[setting.name] = _resolve(setting, given, env)
    return Settings(values, sources).with_code(code or {})


def _resolve(setting: Setting, flags: Mapping[str, Any], env: Mapping[str, str]) -> tuple[Any, str]:
    """The value of ``setting`` and its source: a flag, an env var, or the default."""
    if setting.name in flags:
        raw, flag = flags[setting.name], (setting.flags or (setting.name,))[0]
        return (setting.parse(raw, flag) if isinstance(raw, str) else raw), flag
    for var in setting.env:
        if env.get(var, "").strip() or (setting.blank and var in env):
            return setting.parse(env[var], var), var
    return setting.default, "default"


# -- command lines and docs -----------------------------------------------------------------


def _help(setting: Setting) -> str:
    default = setting.default
    if isinstance(default, tuple):
        default = ",".join(default)
    shown = "" if default in (None, "", False) else f" (default {_plain(setting, default)})"
    return f"{setting.help}{shown} [{setting.env[0]}]"


def _plain(setting: Setting, value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if setting.kind == "duration" and isinstance(value, float):
        return f"{value:g}s"
    if setting.kind == "size" and isinstance(value, int) and value % (1024 * 1024) == 0:
        return f"{value // (1024 * 1024)}M"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser, groups: Iterable[str] = GROUPS) -> None:
    """Add the flags of ``groups`` to ``parser``, one argument group each.

    Only flags given on the command line land in the namespace (``dest`` = setting name),
    so the namespace can be passed to :func:`load` as ``flags=vars(namespace)``.
    """
    for group in GROUPS:
        members = [s for s in _in([group]) if s.flags and group in set(groups)]
        if not members:
            continue
        section = parser.add_argument_group(f"{group} settings")
        for setting in members:
            options: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS}
            if setting.kind == "bool":
                options["action"] = "store_const"
                options["const"] = "true"
            else:
                options["metavar"] = setting.kind.upper() if setting.kind != "text" else "X"
            section.add_argument(*setting.flags, help=_help(setting), **options)


def parse_flags(
    argv: Sequence[str] | None, *, groups: Iterable[str] = SERVICE_GROUPS, prog: str | None = None
) -> dict[str, str]:
    """Parse ``argv`` for the flags of ``groups``; only the flags given are returned.

    Raises:
        SystemExit: an unknown flag (exit status 2, with argparse's usage line) or ``--help``.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run a micro service. Every flag can also be set by its environment "
        "variable (in brackets); flags beat the environment.",
    )
    add_arguments(parser, groups)
    return dict(vars(parser.parse_args(argv)))


def markdown(groups: Iterable[str] = GROUPS) -> str:
    """The settings of ``groups`` as Markdown tables, one per group (docs/configuration.md)."""
    wanted = set(groups)
    out: list[str] = []
    for group in (g for g in GROUPS if g in wanted):
        out += [f"### {group}", "", "| setting | flags | env | default | meaning |",
                "|---|---|---|---|---|"]  # fmt: skip
        for s in _in([group]):
            flags = ", ".join(f"`{f}`" for f in s.flags) or "-"
            env = ", ".join(f"`{e}`" for e in s.env)
            default = s.default
            if isinstance(default, tuple):
                default = ",".join(default)
            shown = "-" if default in (None, "", ()) else f"`{_plain(s, default)}`"
            out.append(f"| {s.name} | {flags} | {env} | {shown} | {s.help} ({s.kind}) |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(markdown(), end="")
