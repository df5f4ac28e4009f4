"""``micro api``: parse the options and serve the gateway with uvicorn.

The options are the ``api`` group of :mod:`micro.settings` (every flag also reads
``MICRO_API_<NAME>``: ``--enable-rpc`` <- ``MICRO_API_ENABLE_RPC``) plus the backend
settings (``--registry``, ``--broker``...); flags beat env, env beats defaults. go-micro's
underscore spellings (``--enable_rpc``) work.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from micro.settings import BACKEND_GROUPS, Settings, SettingsError
from micro.toolkit._app_cli import (
    app_parser,
    limit_options,
    listen_address,
    read_app_settings,
    start_logging,
    with_auth,
)
from micro.toolkit.api.options import ApiOptions

__all__ = ["API_GROUPS", "build_options", "listen_address", "main", "parser", "read_settings"]

API_GROUPS = ("api", *BACKEND_GROUPS)


def parser() -> argparse.ArgumentParser:
    """The ``micro api`` argument parser (only given flags land in the namespace)."""
    return app_parser(
        "micro api",
        API_GROUPS,
        description="The API gateway: HTTP in front of the services in the registry.",
        epilog="example: micro api --address 127.0.0.1:8080 --namespace go.micro.api",
    )


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
    return read_app_settings(parser(), API_GROUPS, argv, environ, given)


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
        **limit_options(s, "api"),
        registry=None if s.get("proxy_address") else s["registry"],  # None: the proxy's
    )
    o.check()
    return o


def main(argv: Sequence[str] | None = None, *, given: Mapping[str, str] | None = None) -> int:
    """Run ``micro api`` until SIGINT/SIGTERM; returns the exit status (0 after a signal's
    graceful stop, 2: bad options).

    ``given`` are global options of the ``micro`` command (``micro --registry etcd api``).
    """
    try:
        settings = read_settings(argv, given=given)
        level = start_logging(settings, "api")
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
    from micro.toolkit.api.app import Gateway

    return with_auth(Gateway(options, settings=settings), settings, "api")
