"""``micro api``: parse the options and serve the gateway with uvicorn.

The options are the ``api`` group of :mod:`micro.settings` (every flag also reads
``MICRO_API_<NAME>``: ``--enable-rpc`` <- ``MICRO_API_ENABLE_RPC``) plus the backend
settings (``--registry``, ``--broker``...); flags beat env, env beats defaults. go-micro's
underscore spellings (``--enable_rpc``) work.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from micro.settings import BACKEND_GROUPS, BY_NAME, Settings, SettingsError, add_arguments, load
from micro.toolkit.api.options import ApiOptions

__all__ = ["API_GROUPS", "build_options", "listen_address", "main", "parser", "read_settings"]

API_GROUPS = ("api", *BACKEND_GROUPS)


def parser() -> argparse.ArgumentParser:
    """The ``micro api`` argument parser (only given flags land in the namespace)."""
    p = argparse.ArgumentParser(
        prog="micro api",
        description="The API gateway: HTTP in front of the services in the registry. Every "
        "option also reads its environment variable (in brackets); flags beat the environment.",
        epilog="example: micro api --address 127.0.0.1:8080 --namespace go.micro.api",
    )
    add_arguments(p, API_GROUPS)
    return p


def read_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> Settings:
    """The gateway's settings from ``argv`` (and ``given``: the ``micro`` command's global
    options), else ``environ``, else defaults.

    Raises:
        SettingsError: a value does not parse (the message names the option).
        SystemExit: an unknown option or ``--help`` (argparse).
    """
    flags = {k: v for k, v in vars(parser().parse_args(argv)).items() if k in BY_NAME}
    return load(groups=API_GROUPS, flags={**(given or {}), **flags}, environ=environ)


def build_options(settings: Settings) -> ApiOptions:
    """The :class:`ApiOptions` of resolved settings.

    Raises:
        ValueError: a setting is invalid (the message names it).
    """
    s = settings
    o = ApiOptions(
        address=s["api_address"],
        namespace=s["api_namespace"],
        handler=s["api_handler"],
        resolver=s["api_resolver"],
        enable_rpc=s["api_enable_rpc"],
        cors_origins=s["api_cors_allowed_origins"],
        cors_methods=s["api_cors_allowed_methods"],
        cors_headers=s["api_cors_allowed_headers"],
        cors_credentials=s["api_cors_allow_credentials"],
        max_body=s["api_max_body"],
        read_timeout=s["api_read_timeout"],
        header_timeout=s["api_header_timeout"],
        idle_timeout=s["api_idle_timeout"],
        max_connections=s["api_max_connections"],
        rate_limit=s["api_rate_limit"],
        rate_burst=s["api_rate_burst"],
        timeout=s["api_timeout"],
        access_log=not s["api_no_access_log"],
        registry=None if s.get("proxy_address") else s["registry"],  # None: the proxy's
    )
    o.check()
    return o


def listen_address(address: str) -> tuple[str, int]:
    """``":8080"`` -> ``("0.0.0.0", 8080)``; ``"127.0.0.1:9000"`` -> as written."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--address {address!r}: expected host:port or :port")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: Sequence[str] | None = None, *, given: Mapping[str, str] | None = None) -> int:
    """Run ``micro api`` until SIGINT/SIGTERM; returns the exit status (0 after a signal's
    graceful stop, 2: bad options).

    ``given`` are global options of the ``micro`` command (``micro --registry etcd api``).
    """
    try:
        settings = read_settings(argv, given=given)
        level = str(settings["api_log_level"])
        logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(message)s")
        options = build_options(settings)
        host, port = listen_address(options.address)
        gateway = _gateway(options, settings)
    except (SettingsError, ValueError) as exc:
        print(f"micro api: {exc}", file=sys.stderr)
        return 2
    from micro.toolkit.api.connections import GatewayServer, server_config

    config = server_config(gateway, options, host=host, port=port, log_level=level.lower())
    GatewayServer(config).run()  # uvicorn closes the WebSockets itself as shutdown starts
    return 0


def _gateway(options: ApiOptions, settings: Settings) -> Any:
    from micro.toolkit.api import auth
    from micro.toolkit.api.app import Gateway

    gateway = Gateway(options, settings=settings)
    check = auth.from_settings(settings, gateway.client, "api")
    if check is not None:
        gateway.set_auth(check)
    return gateway
