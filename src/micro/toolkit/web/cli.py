"""``micro web``: parse the options and serve the dashboard with uvicorn.

The options are the ``web`` group of :mod:`micro.settings` (every flag also reads
``MICRO_WEB_<NAME>``: ``--namespace`` <- ``MICRO_WEB_NAMESPACE``) plus the backend settings
(``--registry``, ``--broker``...); flags beat env, env beats defaults. It listens on
``127.0.0.1:8082`` unless ``--address`` says otherwise: every page can call every service.
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
from micro.toolkit.web.options import WebOptions

__all__ = ["WEB_GROUPS", "build_options", "main", "parser", "read_settings"]

WEB_GROUPS = ("web", *BACKEND_GROUPS)
"""The settings ``micro web`` reads: its own group and the backends'."""


def parser() -> argparse.ArgumentParser:
    """The ``micro web`` argument parser (only given flags land in the namespace)."""
    return app_parser(
        "micro web",
        WEB_GROUPS,
        description="The web dashboard (services, calls, publish, a terminal) and the reverse "
        "proxy to the web services at /[name].",
        epilog="example: micro web --address 127.0.0.1:8082 --auth-tokens s3cret",
    )


def read_settings(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> Settings:
    """The dashboard's settings from ``argv`` (and ``given``: the ``micro`` command's global
    options), else ``environ``, else defaults.

    Raises:
        SettingsError: a value does not parse (the message names the option).
        SystemExit: an unknown option or ``--help`` (argparse).
    """
    return read_app_settings(parser(), WEB_GROUPS, argv, environ, given)


def build_options(settings: Settings) -> WebOptions:
    """The :class:`WebOptions` of resolved settings.

    Raises:
        ValueError: a setting is invalid (the message names it).
    """
    s = settings
    o = WebOptions(
        address=s["web_address"],
        namespace=s["web_namespace"],
        stats_interval=s["web_stats_interval"],
        stats_window=s["web_stats_window"],
        **limit_options(s, "web"),
        registry=None if s.get("proxy_address") else s["registry"],  # None: the proxy's
    )
    o.check()
    return o


def main(argv: Sequence[str] | None = None, *, given: Mapping[str, str] | None = None) -> int:
    """Run ``micro web`` until SIGINT/SIGTERM; returns the exit status (0 after a signal's
    graceful stop, 2: bad options).

    ``given`` are global options of the ``micro`` command (``micro --registry etcd web``).
    """
    try:
        settings = read_settings(argv, given=given)
        level = start_logging(settings, "web")
        options = build_options(settings)
        host, port = listen_address(options.address)
        dashboard = _dashboard(options, settings)
    except (SettingsError, ValueError) as exc:
        print(f"micro web: {exc}", file=sys.stderr)
        return 2
    from micro.toolkit.api.connections import GatewayServer, server_config

    config = server_config(dashboard, options, host=host, port=port, log_level=level.lower())
    # on SIGTERM/SIGINT the streams end first, so the connections close at once
    GatewayServer(config, before_shutdown=dashboard.end_streams).run()
    return 0


def _dashboard(options: WebOptions, settings: Settings) -> Any:
    from micro.toolkit.web.app import Dashboard

    return with_auth(Dashboard(options, settings=settings), settings, "web")
