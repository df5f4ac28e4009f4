"""``micro mcp``: parse the options, then serve MCP over stdio or Streamable HTTP.

The options are the ``mcp`` group of :mod:`micro.settings` (every flag also reads
``MICRO_MCP_<NAME>``: ``--read-only`` <- ``MICRO_MCP_READ_ONLY``) plus the backend settings
(``--registry``, ``--broker``...); flags beat env, env beats defaults. Without ``--address``
it speaks MCP on stdin/stdout (logs go to stderr) until the client closes stdin or a
SIGTERM/SIGINT arrives; with it, it serves ``http://<address>/mcp`` with uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from micro.settings import MCP_GROUPS, Settings, SettingsError
from micro.toolkit._app_cli import (
    app_parser,
    listen_address,
    read_app_settings,
    start_logging,
    with_auth,
)
from micro.toolkit.mcp.options import McpOptions

if TYPE_CHECKING:
    from micro.toolkit.mcp.app import McpGateway

__all__ = ["build_options", "main", "parser"]

log = logging.getLogger("micro.mcp")

EPILOG = """examples:
  micro mcp                                   # stdio: for an agent that spawns it
  micro mcp --address 127.0.0.1:8090          # Streamable HTTP at http://127.0.0.1:8090/mcp
  micro mcp --allow 'greeter.*' --read-only
  micro mcp --address :8090 --auth-tokens s3cret --auth-scopes 's3cret=greeter.*|services'
"""


def parser() -> argparse.ArgumentParser:
    """The ``micro mcp`` argument parser (only given flags land in the namespace)."""
    return app_parser(
        "micro mcp",
        MCP_GROUPS,
        description="An MCP server: every endpoint in the registry as a tool for AI agents.",
        epilog=EPILOG,
    )


def build_options(settings: Settings) -> McpOptions:
    """The :class:`McpOptions` of resolved settings.

    Raises:
        ValueError: a setting is invalid (the message names it).
    """
    s = settings
    limits = {
        k: s[f"mcp_{k}"] for k in ("max_body", "rate_limit", "rate_burst", "timeout")
    }  # fmt: skip
    o = McpOptions(
        address=s["mcp_address"] or None,
        allow=s["mcp_allow"],
        deny=s["mcp_deny"],
        read_only=s["mcp_read_only"],
        enable_publish=s["mcp_enable_publish"],
        max_result=s["mcp_max_result"],
        auth_scopes=s["mcp_auth_scopes"],
        audit_log=not s["mcp_no_audit_log"],
        access_log=not s["mcp_no_access_log"],
        registry=s["registry"],
        **limits,
    )
    o.check()
    if o.address is not None:
        listen_address(o.address)
    elif _auth_given(s):
        raise ValueError("--auth-* protect the HTTP transport: give --address too")
    return o


def _auth_given(s: Settings) -> bool:
    return bool(s["mcp_auth_tokens"] or s["mcp_auth_function"] or s["mcp_auth_service"])


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    given: Mapping[str, str] | None = None,
) -> int:
    """Run ``micro mcp``; the exit status (0 after stdin closes or a signal, 2: bad
    options, 1: the registry or the server could not start).

    ``given`` are global options of the ``micro`` command (``micro --registry etcd mcp``).
    """
    try:
        settings = read_app_settings(parser(), MCP_GROUPS, argv, environ, given)
        level = start_logging(settings, "mcp")
        options = build_options(settings)
        gateway = _gateway(options, settings)
    except ImportError as exc:
        from micro.plugins import install_hint

        print(f"micro mcp: {exc}; install it with: {install_hint('mcp')}", file=sys.stderr)
        return 2
    except (SettingsError, ValueError) as exc:
        print(f"micro mcp: {exc}", file=sys.stderr)
        return 2
    if options.address is None:
        return _run_stdio(gateway)
    from micro.toolkit.api.connections import GatewayServer, server_config

    host, port = listen_address(options.address)
    config = server_config(
        gateway, options, host=host, port=port, log_level=level.lower(), graceful=3
    )
    GatewayServer(config, before_shutdown=gateway.end_streams).run()
    return 0


def _gateway(options: McpOptions, settings: Settings) -> McpGateway:
    from micro.toolkit.mcp.app import McpGateway

    gateway = McpGateway(options, settings=settings)
    if options.address is not None:
        with_auth(gateway, settings, "mcp")
    return gateway


def _run_stdio(gateway: McpGateway) -> int:
    from micro.service import run_loop

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(gateway.serve_stdio())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await task
        except asyncio.CancelledError:
            log.info("stopped on a signal")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    try:
        run_loop(serve())
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"micro mcp: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
