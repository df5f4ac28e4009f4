"""Ready-made bearer-token checks for the gateway's auth hook (:data:`AuthCheck`).

- :func:`static_tokens`: a fixed set of tokens (``--auth-tokens a,b``).
- :func:`import_check`: a function named ``module:attr`` (``--auth-function``).
- :func:`service_check`: a micro service endpoint (``--auth-service``); it receives
  ``{"token", "method", "path"}`` and accepts by answering (anything but ``{"valid": false}``)
  or refuses by answering ``{"valid": false}`` or an Unauthorized/Forbidden error.
"""

from __future__ import annotations

import hmac
import importlib
from collections.abc import Iterable
from typing import Any

from starlette.types import Scope

from micro.client import Client
from micro.errors import MicroError
from micro.settings import Settings
from micro.toolkit.api._errors import API_ID
from micro.toolkit.api.middleware import AuthCheck

__all__ = ["AuthCheck", "import_check", "service_check", "static_tokens"]


def static_tokens(tokens: Iterable[str]) -> AuthCheck:
    """Accept exactly these tokens (compared in constant time)."""
    accepted = [t.encode() for t in tokens if t]
    if not accepted:
        raise ValueError("auth: no tokens given")

    def check(token: str, scope: Scope) -> bool:
        given = token.encode()
        return any(hmac.compare_digest(given, t) for t in accepted)

    return check


def import_check(spec: str) -> AuthCheck:
    """The callable ``module:attr`` (sync or async ``(token, scope) -> bool``).

    Raises:
        ValueError: ``spec`` does not name an importable callable.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"auth function {spec!r}: use module:function")
    try:
        found = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"auth function {spec!r}: {exc}") from None
    if not callable(found):
        raise ValueError(f"auth function {spec!r} is not callable")
    check: AuthCheck = found
    return check


def service_check(client: Client, service: str, endpoint: str = "Auth.Verify") -> AuthCheck:
    """Ask ``endpoint`` of ``service``; its 401/403 errors refuse, other errors give 502."""

    async def check(token: str, scope: Scope) -> bool:
        request = {"token": token, "method": scope.get("method", ""), "path": scope["path"]}
        try:
            answer: Any = await client.call(service, endpoint, request, retries=0)
        except MicroError as exc:
            if exc.code in (401, 403):
                raise
            raise MicroError(f"auth service {service}: {exc.detail}", id=API_ID, code=502) from None
        return not (isinstance(answer, dict) and answer.get("valid") is False)

    return check


def from_settings(settings: Settings, client: Client, app: str) -> AuthCheck | None:
    """The token check that ``<app>_auth_*`` settings ask for (``app``: ``api`` or ``web``):
    the tokens, else the function, else the service; None when none is set.

    Raises:
        ValueError: the tokens given empty, or a function that cannot be imported.
    """
    if settings.source(f"{app}_auth_tokens") != "default":  # given, even if empty: an error
        return static_tokens(settings[f"{app}_auth_tokens"])
    if settings[f"{app}_auth_function"]:
        return import_check(settings[f"{app}_auth_function"])
    if settings[f"{app}_auth_service"]:
        endpoint = settings[f"{app}_auth_endpoint"]
        return service_check(client, settings[f"{app}_auth_service"], endpoint)
    return None
