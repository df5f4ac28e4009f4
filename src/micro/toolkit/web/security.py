"""The dashboard's protections, as plain ASGI middleware and the login handlers.

- :class:`SecurityHeaders`: ``Content-Security-Policy`` (no inline script or style, nothing
  from another origin), ``X-Content-Type-Options``, ``Referrer-Policy`` on every response
  the dashboard makes; responses relayed from a proxied web service are left as they are.
- :class:`SameOrigin`: a state-changing request (POST, PUT, PATCH, DELETE) or a WebSocket
  upgrade coming from another site's page gets 403. Browsers send ``Origin`` with these;
  clients that are not browsers (curl, go-micro's) send none and pass.
- :class:`WebAuth`: when an auth check is configured (as ``micro api``'s: tokens, a function,
  a service), every request but ``/login``, ``/static/`` and ``/health`` needs a token, from
  ``Authorization: Bearer`` or the ``micro_token`` cookie set by ``POST /login``. Pages
  without one are redirected to ``/login``; JSON, SSE and WebSockets get 401.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from micro.errors import BadRequest, Forbidden, MicroError, Unauthorized
from micro.toolkit.api._errors import error_response, http_error
from micro.toolkit.api._http import decode_json, header, media_type, read_body
from micro.toolkit.api.middleware import AuthCheck, bearer_token, run_check, send_error

__all__ = [
    "CSP",
    "PROXIED",
    "TOKEN_COOKIE",
    "WEB_ID",
    "SameOrigin",
    "SecurityHeaders",
    "WebAuth",
    "login_handler",
    "logout_handler",
    "safe_next",
    "wants_html",
]

WEB_ID = "go.micro.web"
TOKEN_COOKIE = "micro_token"
PROXIED = "micro.web.proxied"
"""Scope key the proxy sets when it relays a web service's response (no dashboard headers)."""

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_LOGIN_BODY = 64 * 1024


def wants_html(scope: Scope) -> bool:
    """Whether the client is a browser navigating (a GET/HEAD that accepts text/html)."""
    if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
        return False
    return "text/html" in header(scope, b"accept")


class SecurityHeaders:
    """Adds the CSP and friends to every dashboard response (not to proxied ones)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and not scope.get(PROXIED):
                message["headers"] = [*message.get("headers", ()), *_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def _origin_of(url: str) -> str:
    """``scheme://host[:port]`` lower-cased, default ports dropped ("" if unparsable)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return ""
    if not parts.scheme or not host:
        return ""
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or str(port) == _DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    return f"{parts.scheme.lower()}://{host}{shown}"


def _own_origin(scope: Scope) -> str:
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"), scope["scheme"])
    host = header(scope, b"host")
    return _origin_of(f"{scheme}://{host}") if host else ""


def cross_site(scope: Scope) -> str | None:
    """Why this request comes from another site, or None when it does not (or may not
    tell: no ``Origin``, as from curl)."""
    if header(scope, b"sec-fetch-site").lower() == "cross-site":
        return "cross-site request (Sec-Fetch-Site)"
    origin = header(scope, b"origin")
    if not origin:
        return None
    own = _own_origin(scope)
    if not own or _origin_of(origin) != own:
        return f"origin {origin[:100]!r} is not this dashboard's"
    return None


class SameOrigin:
    """403 for a POST/PUT/PATCH/DELETE or WebSocket upgrade from another origin.

    The pages make their requests from the dashboard's own origin; a page on another site
    can make a browser send a form or open a WebSocket here (with the user's cookie), and
    this refuses it. This stands in for CSRF tokens (see docs/decisions.md).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket" or (kind == "http" and scope["method"] in _UNSAFE):
            why = cross_site(scope)
            if why is not None:
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 4403, "reason": why})
                else:
                    await send_error(send, Forbidden(why, id=WEB_ID), [])
                return
        await self.app(scope, receive, send)


def cookie_token(scope: Scope) -> str:
    """The ``micro_token`` cookie of the request, "" when absent."""
    for key, value in scope["headers"]:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            name, sep, token = part.strip().partition("=")
            if sep and name == TOKEN_COOKIE:
                return unquote(token.strip().strip('"'))
    return ""


def request_token(scope: Scope) -> str:
    """The request's token: its bearer header, else its ``micro_token`` cookie."""
    return bearer_token(scope) or cookie_token(scope)


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site (``/...``), else ``/``: the redirect after
    login must not take the user elsewhere (``//evil``, ``https://evil``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 0x20 for c in target):
        return "/"
    return target


class WebAuth:
    """Refuses requests without an accepted token; see the module notes.

    Args:
        app: the next ASGI app.
        check: the token check (``micro.toolkit.api.auth``'s, or any :data:`AuthCheck`).
        exempt: exact paths needing no token (``/health``, ``/login``).
        exempt_prefixes: path prefixes needing no token (``/static/``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        check: AuthCheck,
        exempt: frozenset[str],
        exempt_prefixes: tuple[str, ...] = ("/static/",),
    ) -> None:
        self.app = app
        self.check = check
        self.exempt = exempt
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = request_token(scope)
        try:
            if not token:
                raise Unauthorized("missing token: log in or send Authorization: Bearer", id=WEB_ID)
            if not await run_check(self.check, token, scope):
                raise Unauthorized("invalid token", id=WEB_ID)
        except Exception as exc:
            await self._refuse(scope, send, exc)
            return
        await self.app(scope, receive, send)

    def _exempt(self, path: str) -> bool:
        return path in self.exempt or path.startswith(self.exempt_prefixes)

    async def _refuse(self, scope: Scope, send: Send, exc: BaseException) -> None:
        err = http_error(exc)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4000 + err.code})
            return
        if err.code == 401 and wants_html(scope):
            await RedirectResponse(login_url(scope), status_code=303)(scope, _no_receive, send)
            return
        challenge = [(b"www-authenticate", b'Bearer realm="micro"')] if err.code == 401 else []
        await send_error(send, err, challenge)


async def _no_receive() -> Message:  # pragma: no cover - a redirect never reads the body
    return {"type": "http.disconnect"}


def login_url(scope: Scope, error: str = "") -> str:
    """``/login?next=<this request's path and query>`` (and ``error=`` when given)."""
    query = scope.get("query_string", b"").decode("latin-1")
    here = scope["path"] + (f"?{query}" if query else "")
    url = "/login?next=" + quote(here, safe="/")
    return url + (f"&error={quote(error)}" if error else "")


async def _login_fields(scope: Scope, receive: Receive) -> dict[str, Any]:
    body = await read_body(scope, receive, limit=_LOGIN_BODY, timeout=30.0)
    if media_type(scope) == "application/json":
        fields = decode_json(body or b"{}", "JSON body", error_id=WEB_ID)
        if not isinstance(fields, dict):
            raise BadRequest("the body must be a JSON object", id=WEB_ID)
        return fields
    return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))


def login_handler(
    check: Callable[[], AuthCheck | None], page: Callable[[Scope], Response]
) -> ASGIApp:
    """``/login``: GET the page; POST a ``token`` (form or JSON) to get the cookie.

    A good token sets ``micro_token`` (HttpOnly, SameSite=Strict, ``Secure`` over HTTPS) and
    redirects (303) to the form's ``next`` path, else ``/``; a bad one redirects back to
    ``/login?error=invalid``. JSON posts get 200 ``{"ok": true}`` or 401 instead. With auth
    off the page redirects to ``/``.
    """

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        current = check()
        method = scope["method"]
        response: Response
        if method in ("GET", "HEAD"):
            response = page(scope) if current is not None else RedirectResponse("/", 303)
        elif method != "POST":
            response = error_response(
                MicroError(f"{method} not allowed on /login", id=WEB_ID, code=405),
                {"Allow": "GET, POST"},
            )
        else:
            response = await _login(scope, receive, current)
        await response(scope, receive, send)

    return app


async def _login(scope: Scope, receive: Receive, check: AuthCheck | None) -> Response:
    is_json = media_type(scope) == "application/json"
    try:
        fields = await _login_fields(scope, receive)
    except MicroError as exc:
        return error_response(exc)
    target = safe_next(str(fields.get("next") or ""))
    token = fields.get("token")
    if check is None:
        return RedirectResponse(target, 303)
    accepted = False
    if isinstance(token, str) and token:
        try:
            accepted = await run_check(check, token, scope)
        except MicroError as exc:
            if exc.code not in (401, 403):
                return error_response(exc)
    if not accepted:
        if is_json:
            return error_response(Unauthorized("invalid token", id=WEB_ID))
        return RedirectResponse(
            "/login?error=invalid&next=" + quote(target, safe="/"), status_code=303
        )
    response: Response = (
        Response(b'{"ok":true}', media_type="application/json")
        if is_json
        else RedirectResponse(target, status_code=303)
    )
    response.set_cookie(
        TOKEN_COOKIE,
        quote(str(token), safe=""),
        path="/",
        httponly=True,
        samesite="strict",
        secure=scope.get("scheme") == "https",
    )
    return response


async def logout_handler(scope: Scope, receive: Receive, send: Send) -> None:
    """``POST /logout``: forget the cookie and go to ``/login``."""
    if scope["type"] != "http" or scope["method"] != "POST":
        allow = {"Allow": "POST"}
        err = MicroError("use POST /logout", id=WEB_ID, code=405)
        await error_response(err, allow)(scope, receive, send)
        return
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/", httponly=True, samesite="strict")
    await response(scope, receive, send)
