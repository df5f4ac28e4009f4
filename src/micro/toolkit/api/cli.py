"""``micro api``: parse the options and serve the gateway with uvicorn.

Every flag also reads ``MICRO_API_<NAME>`` (``--enable-rpc`` <- ``MICRO_API_ENABLE_RPC``);
flags beat env, env beats defaults. go-micro's underscore spellings (``--enable_rpc``) work.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from micro.toolkit.api.options import ApiOptions, parse_size
from micro.toolkit.api.resolver import HANDLERS

__all__ = ["build_options", "main", "parser"]

_TRUE = ("1", "true", "yes", "on")

# dest -> (flags, env suffix, help)
_FLAGS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "address": (("--address",), "ADDRESS", "host:port to listen on (default :8080)"),
    "namespace": (("--namespace",), "NAMESPACE", "service namespace (default go.micro.api)"),
    "handler": (("--handler",), "HANDLER", "meta (default), " + ", ".join(HANDLERS[1:])),
    "resolver": (("--resolver",), "RESOLVER", "micro (default), host, path, grpc"),
    "cors_allowed_origins": (
        ("--cors-allowed-origins", "--cors"),
        "CORS_ALLOWED_ORIGINS",
        "comma list of allowed origins, * for any (default: no CORS)",
    ),
    "cors_allowed_methods": (("--cors-allowed-methods",), "CORS_ALLOWED_METHODS", "comma list"),
    "cors_allowed_headers": (("--cors-allowed-headers",), "CORS_ALLOWED_HEADERS", "comma list"),
    "max_body": (("--max-body",), "MAX_BODY", "largest request body, e.g. 10M (default 10M)"),
    "read_timeout": (("--read-timeout",), "READ_TIMEOUT", "seconds to receive a body (30)"),
    "header_timeout": (
        ("--header-timeout",),
        "HEADER_TIMEOUT",
        "seconds from a request's first byte to the end of its head (30)",
    ),
    "idle_timeout": (
        ("--idle-timeout",),
        "IDLE_TIMEOUT",
        "seconds a connection may wait without starting a request (60)",
    ),
    "max_connections": (
        ("--max-connections",),
        "MAX_CONNECTIONS",
        "open connections; past it the longest idle is closed (1000, 0: no limit)",
    ),
    "rate_limit": (("--rate-limit",), "RATE_LIMIT", "requests/s per client (default off)"),
    "rate_burst": (("--rate-burst",), "RATE_BURST", "rate limit burst (default: the rate)"),
    "timeout": (("--timeout",), "TIMEOUT", "seconds per service call (client default 5)"),
    "auth_tokens": (("--auth-tokens",), "AUTH_TOKENS", "comma list of accepted bearer tokens"),
    "auth_function": (("--auth-function",), "AUTH_FUNCTION", "module:function checking tokens"),
    "auth_service": (("--auth-service",), "AUTH_SERVICE", "service checking tokens"),
    "auth_endpoint": (("--auth-endpoint",), "AUTH_ENDPOINT", "its endpoint (Auth.Verify)"),
    "registry": (("--registry",), "", "registry backend [MICRO_REGISTRY] (default mdns)"),
    "log_level": (("--log-level",), "LOG_LEVEL", "debug, info (default), warning, error"),
}
_SWITCHES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "enable_rpc": (("--enable-rpc", "--enable_rpc"), "ENABLE_RPC", "serve POST /rpc"),
    "cors_allow_credentials": (
        ("--cors-allow-credentials",),
        "CORS_ALLOW_CREDENTIALS",
        "allow credentials in CORS",
    ),
    "no_access_log": (("--no-access-log",), "NO_ACCESS_LOG", "do not log each request"),
}


def parser() -> argparse.ArgumentParser:
    """The ``micro api`` argument parser (only given flags land in the namespace)."""
    p = argparse.ArgumentParser(
        prog="micro api",
        description="The API gateway: HTTP in front of the services in the registry.",
        epilog="example: micro api --address 127.0.0.1:8080 --namespace go.micro.api",
        argument_default=argparse.SUPPRESS,
    )
    for dest, (flags, env, text) in _FLAGS.items():
        hint = f" [MICRO_API_{env}]" if env else ""
        p.add_argument(*flags, dest=dest, metavar=dest.upper(), help=text + hint)
    for dest, (flags, env, text) in _SWITCHES.items():
        p.add_argument(*flags, dest=dest, action="store_true", help=f"{text} [MICRO_API_{env}]")
    return p


def _settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    given = vars(args)
    out: dict[str, Any] = {}
    for dest, (_, env, _text) in _FLAGS.items():
        if dest in given:
            out[dest] = given[dest]
        elif env and f"MICRO_API_{env}" in environ:
            out[dest] = environ[f"MICRO_API_{env}"]
    for dest, (_, env, _text) in _SWITCHES.items():
        out[dest] = bool(given.get(dest)) or environ.get(f"MICRO_API_{env}", "").lower() in _TRUE
    return out


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _number(s: dict[str, Any], key: str, kind: type[float] | type[int]) -> Any:
    try:
        return kind(s[key])
    except ValueError:
        raise ValueError(f"--{key.replace('_', '-')}: {s[key]!r} is not a number") from None


def build_options(settings: dict[str, Any]) -> ApiOptions:
    """The :class:`ApiOptions` of parsed settings.

    Raises:
        ValueError: a setting is invalid (the message names it).
    """
    o = ApiOptions(access_log=not settings.get("no_access_log", False))
    for key in ("address", "namespace", "handler", "resolver", "registry"):
        if key in settings:
            setattr(o, key, settings[key])
    o.enable_rpc = bool(settings.get("enable_rpc"))
    if "cors_allowed_origins" in settings:
        o.cors_origins = _csv(settings["cors_allowed_origins"])
    if "cors_allowed_methods" in settings:
        o.cors_methods = _csv(settings["cors_allowed_methods"])
    if "cors_allowed_headers" in settings:
        o.cors_headers = _csv(settings["cors_allowed_headers"])
    o.cors_credentials = bool(settings.get("cors_allow_credentials"))
    if "max_body" in settings:
        o.max_body = parse_size(settings["max_body"])
    numbers: dict[str, type[float] | type[int]] = {
        "read_timeout": float,
        "header_timeout": float,
        "idle_timeout": float,
        "max_connections": int,
        "rate_limit": float,
        "rate_burst": int,
    }
    for key, kind in numbers.items():
        if key in settings:
            setattr(o, key, _number(settings, key, kind))
    if "timeout" in settings:
        o.timeout = _number(settings, "timeout", float)
    o.check()
    return o


def listen_address(address: str) -> tuple[str, int]:
    """``":8080"`` -> ``("0.0.0.0", 8080)``; ``"127.0.0.1:9000"`` -> as written."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--address {address!r}: expected host:port or :port")
    return host.strip("[]") or "0.0.0.0", int(port)


def _auth(settings: dict[str, Any], gateway_client: Any) -> Any:
    from micro.toolkit.api import auth

    if settings.get("auth_tokens"):
        return auth.static_tokens(_csv(settings["auth_tokens"]))
    if settings.get("auth_function"):
        return auth.import_check(settings["auth_function"])
    if settings.get("auth_service"):
        endpoint = settings.get("auth_endpoint") or "Auth.Verify"
        return auth.service_check(gateway_client, settings["auth_service"], endpoint)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``micro api`` until SIGINT/SIGTERM; returns the exit status (2: bad options)."""
    args = parser().parse_args(argv)
    settings = _settings(args, os.environ)
    logging.basicConfig(
        level=str(settings.get("log_level", "info")).upper(),
        format="%(asctime)s %(name)s %(message)s",
    )
    try:
        options = build_options(settings)
        host, port = listen_address(options.address)
        gateway = _gateway(options, settings)
    except ValueError as exc:
        print(f"micro api: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from micro.toolkit.api.connections import protocol_class

    config = uvicorn.Config(
        gateway,
        host=host,
        port=port,
        log_level=str(settings.get("log_level", "info")).lower(),
        access_log=False,
        lifespan="on",
        http=protocol_class(
            idle_timeout=options.idle_timeout,
            header_timeout=options.header_timeout,
            max_connections=options.max_connections,
        ),
        ws_max_size=max(options.max_body, 1),
        # the protocol closes idle connections itself; uvicorn's own timer is a backstop
        timeout_keep_alive=math.ceil(options.idle_timeout),
        timeout_graceful_shutdown=10,
        proxy_headers=False,  # the rate limit keys on the real peer, not X-Forwarded-For
    )
    uvicorn.Server(config).run()
    return 0


def _gateway(options: ApiOptions, settings: dict[str, Any]) -> Any:
    from micro.toolkit.api.app import Gateway

    gateway = Gateway(options)
    check = _auth(settings, gateway.client)
    if check is not None:
        gateway.set_auth(check)
    return gateway
