"""``micro proxy``: parse the options and serve the proxy with uvicorn.

The options are the ``proxy`` group of :mod:`micro.settings` plus the backend settings
(``--registry``, ``--broker``...) but not the laptop side's ``remote`` group: here
``MICRO_PROXY_ADDRESS`` is the address to listen on, as in go-micro. Flags beat env, env
beats defaults.

Without auth it listens on 127.0.0.1 only, whatever ``--address`` says, unless
``--allow-unauthenticated``: a proxy reaches every service, so an open one on a network
interface would hand them all out. One line on stderr says so when it narrows the address.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from micro.errors import MicroError
from micro.settings import PROXY_GROUPS, Settings, SettingsError
from micro.toolkit._app_cli import (
    app_parser,
    limit_options,
    listen_address,
    read_app_settings,
    start_logging,
    with_auth,
)
from micro.toolkit.proxy.options import ProxyOptions

__all__ = ["PROXY_GROUPS", "build_options", "listen_host", "main", "parser", "read_settings"]

LAPTOP_FLAGS = ("--proxy-address", "--proxy_address")
WRONG_ADDRESS_FLAG = (
    "--proxy-address is where a client reaches a proxy; to choose where 'micro proxy' "
    "listens use --address (micro proxy --address host:port)"
)


def parser() -> argparse.ArgumentParser:
    """The ``micro proxy`` argument parser (only given flags land in the namespace)."""
    return app_parser(
        "micro proxy",
        PROXY_GROUPS,
        description="The proxy: one address through which clients outside the network list, "
        "call, stream, publish and subscribe.",
        epilog="example: micro proxy --address :8081 --auth-tokens s3cret "
        "--tls-cert-file proxy.pem --tls-key-file proxy.key",
    )


def read_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> Settings:
    """The proxy's settings from ``argv`` (and ``given``: the ``micro`` command's global
    options), else ``environ``, else defaults.

    Raises:
        SettingsError: a value does not parse (the message names the option).
        SystemExit: an unknown option or ``--help`` (argparse).
    """
    return read_app_settings(parser(), PROXY_GROUPS, argv, environ, given)


def build_options(settings: Settings) -> ProxyOptions:
    """The :class:`ProxyOptions` of resolved settings.

    Raises:
        ValueError: a setting is invalid (the message names it).
    """
    s = settings
    o = ProxyOptions(
        address=s["proxy_server_address"],
        allow_unauthenticated=s["proxy_allow_unauthenticated"],
        tls_cert_file=s["proxy_tls_cert_file"],
        tls_key_file=s["proxy_tls_key_file"],
        tls_client_ca_file=s["proxy_tls_client_ca_file"],
        allow_services=tuple(s["proxy_allow_services"]),
        allow_topics=tuple(s["proxy_allow_topics"]),
        **limit_options(s, "proxy"),
        registry=s["registry"],
    )
    o.check()
    return o


def listen_host(
    host: str, port: int, *, auth: bool, allow_unauthenticated: bool
) -> tuple[str, str]:
    """Where to listen: ``host``, or 127.0.0.1 when nothing guards the proxy and ``host``
    is not a loopback address; and the line that says so ("" when ``host`` stands)."""
    if auth or allow_unauthenticated or _loopback(host):
        return host, ""
    shown = host if host != "0.0.0.0" else "0.0.0.0 (every interface)"
    note = (
        f"micro proxy: no auth configured, so listening on 127.0.0.1:{port} only, not "
        f"{shown}; give --auth-tokens (or --auth-function, --auth-service, or mutual TLS "
        "with --tls-client-ca-file) to listen there, or --allow-unauthenticated on a trusted "
        "network"
    )
    return "127.0.0.1", note


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None, *, given: Mapping[str, str] | None = None) -> int:
    """Run ``micro proxy`` until SIGINT/SIGTERM; returns the exit status (0 after a signal's
    graceful stop, 2: bad options or TLS files).

    ``given`` are global options of the ``micro`` command (``micro --registry etcd proxy``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a.partition("=")[0] in LAPTOP_FLAGS for a in args):
        print(f"micro proxy: {WRONG_ADDRESS_FLAG}", file=sys.stderr)
        return 2
    try:
        settings = read_settings(args, given=given)
        level = start_logging(settings, "proxy")
        options = build_options(settings)
        host, port = listen_address(options.address)
        app = _app(options, settings)
    except (SettingsError, ValueError) as exc:
        print(f"micro proxy: {exc}", file=sys.stderr)
        return 2
    except MicroError as exc:  # an unknown backend, a driver not installed
        print(f"micro proxy: {exc.detail}", file=sys.stderr)
        return 2
    from micro.toolkit.api.connections import GatewayServer, server_config

    # a token check or mutual TLS (a client certificate from the given CA) guards the proxy
    guarded = app.auth is not None or bool(options.tls_client_ca_file)
    host, note = listen_host(
        host, port, auth=guarded, allow_unauthenticated=options.allow_unauthenticated
    )
    config = server_config(
        app,
        options,
        host=host,
        port=port,
        log_level=level.lower(),
        ssl_certfile=options.tls_cert_file,
        ssl_keyfile=options.tls_key_file,
        ssl_ca_certs=options.tls_client_ca_file,
    )
    problem = _tls_problem(options)
    if problem is None:
        try:
            config.load()  # reads the TLS files: a bad one fails here, in one line
        except (OSError, ssl.SSLError) as exc:
            problem = f"TLS: {exc}"
    if problem is not None:
        print(f"micro proxy: {problem}", file=sys.stderr)
        return 2
    if note:
        print(note, file=sys.stderr)
    # on SIGTERM/SIGINT the sockets end first, so the connections close at once
    GatewayServer(config, before_shutdown=app.end_streams).run()
    return 0


def _tls_problem(options: ProxyOptions) -> str | None:
    files = (
        ("--tls-cert-file", options.tls_cert_file),
        ("--tls-key-file", options.tls_key_file),
        ("--tls-client-ca-file", options.tls_client_ca_file),
    )
    for flag, path in files:
        if path and not os.path.isfile(path):
            return f"{flag} {path}: no such file"
    return None


def _app(options: ProxyOptions, settings: Settings) -> Any:
    from micro.toolkit.proxy.app import ProxyApp

    return with_auth(ProxyApp(options, settings=settings), settings, "proxy")
