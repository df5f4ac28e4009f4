"""What the ``micro api``, ``micro web`` and ``micro proxy`` commands share: a parser of
their settings groups, the settings read from flags, environment and the ``micro`` command's
global options, the logging, the listen address, and the app with its auth."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from micro.settings import BY_NAME, Settings, add_arguments, load

if TYPE_CHECKING:
    from micro.client import Client
    from micro.toolkit.api.middleware import AuthCheck

__all__ = [
    "app_parser",
    "limit_options",
    "listen_address",
    "read_app_settings",
    "start_logging",
    "with_auth",
]


class _App(Protocol):
    client: Client

    def set_auth(self, check: AuthCheck | None) -> None: ...


App = TypeVar("App", bound=_App)

_LIMITS = (
    "max_body",
    "read_timeout",
    "header_timeout",
    "idle_timeout",
    "max_connections",
    "rate_limit",
    "rate_burst",
    "timeout",
)


def app_parser(
    prog: str, groups: Sequence[str], *, description: str, epilog: str
) -> argparse.ArgumentParser:
    """An app's argument parser: the flags of ``groups`` (only given ones land in the
    namespace); ``description`` gets the line on environment variables."""
    p = argparse.ArgumentParser(
        prog=prog,
        description=f"{description} Every option also reads its environment variable (in "
        "brackets); flags beat the environment.",
        epilog=epilog,
    )
    add_arguments(p, groups)
    return p


def read_app_settings(
    parser: argparse.ArgumentParser,
    groups: Sequence[str],
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None,
    given: Mapping[str, str] | None,
) -> Settings:
    """The settings of ``groups`` from ``argv`` (parsed by ``parser``; and ``given``: the
    ``micro`` command's global options), else ``environ``, else defaults.

    Raises:
        SettingsError: a value does not parse (the message names the option).
        SystemExit: an unknown option or ``--help`` (argparse).
    """
    flags = {k: v for k, v in vars(parser.parse_args(argv)).items() if k in BY_NAME}
    return load(groups=groups, flags={**(given or {}), **flags}, environ=environ)


def limit_options(settings: Settings, group: str) -> dict[str, Any]:
    """The connection and limit options every app has (``max_body``... ``access_log``), from
    its group's settings (``<group>_max_body``... ``<group>_no_access_log``)."""
    options = {name: settings[f"{group}_{name}"] for name in _LIMITS}
    options["access_log"] = not settings[f"{group}_no_access_log"]
    return options


def start_logging(settings: Settings, group: str) -> str:
    """Log at the group's ``log_level`` to stderr; returns that level."""
    level = str(settings[f"{group}_log_level"])
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(message)s")
    return level


def listen_address(address: str) -> tuple[str, int]:
    """``":8080"`` -> ``("0.0.0.0", 8080)``; ``"127.0.0.1:9000"`` -> as written."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--address {address!r}: expected host:port or :port")
    return host.strip("[]") or "0.0.0.0", int(port)


def with_auth(app: App, settings: Settings, group: str) -> App:
    """``app``, guarded by the auth the group's settings ask for (none: as it is)."""
    from micro.toolkit.api import auth

    check = auth.from_settings(settings, app.client, group)
    if check is not None:
        app.set_auth(check)
    return app
