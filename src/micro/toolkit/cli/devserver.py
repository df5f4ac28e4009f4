"""What ``micro run`` serves beside the service: the dashboard and the API gateway on one port.

One ASGI application (:class:`DevApp`): ``/api/...`` goes to a :class:`~micro.toolkit.api.app.
Gateway` with an empty namespace, so ``/api/hello/call`` calls ``Hello.Call`` of the service
``hello`` (what ``micro new hello`` registers); everything else goes to the ``micro web``
dashboard (pages, ``/health``, ``/rpc``, the proxy to web services). Both share one registry,
selector and client, built from the same settings as the service's. uvicorn serves it in
``micro run``'s own event loop, on ``127.0.0.1:8083`` unless ``--address`` says otherwise
(8080 is ``micro api``'s, 8081 ``micro proxy``'s and 8082 ``micro web``'s, so all can run
side by side). :class:`ServiceWatch` follows the registry and prints a line per service
that appears, changes its node count, or goes, with its page and a ``curl`` line to call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import shlex
import socket
import sys
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.types import ASGIApp, Receive, Scope, Send

from micro.errors import MicroError, ServiceNotFound
from micro.registry import Endpoint, Registry, Service, Value
from micro.settings import Settings
from micro.toolkit.cli.app import CliError

if TYPE_CHECKING:
    from micro.toolkit.api.app import Gateway
    from micro.toolkit.web.app import Dashboard

__all__ = [
    "DEFAULT_ADDRESS",
    "DevApp",
    "DevServer",
    "ServiceWatch",
    "api_path",
    "bind",
    "example_request",
]

log = logging.getLogger("micro.run")

DEFAULT_ADDRESS = "127.0.0.1:8083"
"""Where ``micro run`` serves the dashboard and gateway by default."""
PORTS_TRIED = 10
"""Without ``--address``, ports after 8083 tried when it is taken (another ``micro run``)."""
API_PREFIX = "/api"
_REFRESH = 5.0  # seconds between two full re-reads of the registry, watch or not
_SETTLE = 0.2  # seconds to let a burst of registry events settle before reading


# -- binding ------------------------------------------------------------------------------


def bind(address: str | None) -> socket.socket:
    """A listening-ready socket for ``address`` (``host:port``; None: the default).

    Without an address, 8083 is tried first and then the next ports, so that a second
    ``micro run`` gets its own; a given address is used as given.

    Raises:
        CliError: the address does not parse, or its port is taken (exit status 2 / 1).
    """
    from micro.toolkit.api.cli import listen_address

    try:
        host, port = listen_address(address or DEFAULT_ADDRESS)
    except ValueError as exc:
        raise CliError(str(exc).replace("--address", "micro run --address"), code=2) from None
    tries = 1 if address is not None or port == 0 else PORTS_TRIED
    for offset in range(tries):
        try:
            return _socket(host, port + offset)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or offset == tries - 1:
                where = f"{host}:{port + offset}"
                hint = "; pick another with --address, or --no-dashboard" if tries == 1 else ""
                text = exc.strerror or str(exc)
                raise CliError(f"cannot serve the dashboard on {where}: {text}{hint}") from None
    raise AssertionError("unreachable")


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def check_options(settings: Settings) -> None:
    """Check the dashboard's settings before anything starts.

    Raises:
        ValueError: a ``web`` setting is invalid (the message names it).
    """
    from micro.toolkit.web.cli import build_options

    build_options(settings)


def url_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (an unspecified host shown as 127.0.0.1)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


# -- the application ----------------------------------------------------------------------


class DevApp:
    """``/api/...`` to the gateway (the prefix stripped), everything else to the dashboard."""

    def __init__(self, dashboard: ASGIApp, gateway: ASGIApp) -> None:
        self.dashboard = dashboard
        self.gateway = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] in ("http", "websocket") and _under_api(path):
            scope = dict(scope)
            scope["path"] = path[len(API_PREFIX) :] or "/"
            scope["root_path"] = scope.get("root_path", "") + API_PREFIX
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.startswith(API_PREFIX.encode()):
                scope["raw_path"] = raw[len(API_PREFIX) :] or b"/"
            await self.gateway(scope, receive, send)
            return
        await self.dashboard(scope, receive, send)


def _under_api(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


# -- what the banner shows ----------------------------------------------------------------


def api_path(service: str, endpoint: str) -> str | None:
    """The ``/api/...`` path that reaches ``endpoint`` of ``service``, or None if none does.

    The gateway's ``micro`` resolver with an empty namespace reads ``/hello/call`` as
    ``hello`` / ``Hello.Call`` and ``/go/micro/srv/greeter/greeter/say-hello`` as
    ``go.micro.srv.greeter`` / ``Greeter.SayHello``; the candidate is checked by resolving it.
    """
    from micro.toolkit.api.resolver import MicroResolver, kebab

    handler, dot, method = endpoint.partition(".")
    if not dot or not handler or not method:
        return None
    candidates = ([service, kebab(method)], [*service.split("."), kebab(handler), kebab(method)])
    for parts in candidates:
        path = "/" + "/".join(parts)
        try:
            route = MicroResolver("").resolve("rpc", path)
        except MicroError:
            continue
        if (route.service, route.endpoint) == (service, endpoint):
            return API_PREFIX + path
    return None


def example_request(value: Value | None) -> Any:
    """A request body to show in a ``curl`` line: each field with a value of its type."""
    if value is None:
        return {}
    return {field.name: _example(field) for field in value.values or ()}


def _example(value: Value) -> Any:
    kind = value.type.lower()
    if kind.startswith("[]"):
        return []
    if kind.startswith("map["):
        return {}
    if kind in ("string", "str"):
        return "John"
    if kind == "bool":
        return False
    if kind.startswith(("int", "uint")):
        return 0
    if kind.startswith("float"):
        return 0.0
    return example_request(value) if value.values else None


def curl_line(base: str, service: Service) -> str | None:
    """A ``curl`` command calling the service's first unary endpoint through ``/api``."""
    for endpoint in service.endpoints:
        if _callable(endpoint):
            path = api_path(service.name, endpoint.name)
            if path is None:
                continue
            body = json.dumps(example_request(endpoint.request))
            return f"curl -H 'Content-Type: application/json' -d {shlex.quote(body)} {base}{path}"
    return None


def _callable(endpoint: Endpoint) -> bool:
    meta = endpoint.metadata
    return meta.get("stream") != "true" and not meta.get("subscriber")


@dataclass(frozen=True)
class Seen:
    """What the banner says about one service."""

    nodes: int
    service: Service


class ServiceWatch:
    """Follows the registry; calls ``changed(name, before, now)`` per service that appears,
    changes its node count, or goes (``None`` for absent)."""

    def __init__(
        self, registry: Registry, changed: Callable[[str, Seen | None, Seen | None], None]
    ) -> None:
        self.registry = registry
        self.changed = changed
        self.seen: dict[str, Seen] = {}

    async def run(self) -> None:
        """Read the registry, then again after each change (and every few seconds).

        The watch's next result is awaited by one task that lives across the periodic
        re-reads (a timeout never cancels it: cancelling a watcher's ``anext`` ends the
        watcher), and it is started before the registry is read, so that a change between
        the read and the watch is not missed.
        """
        watcher: Any = None
        pending: asyncio.Future[Any] | None = None
        try:
            while True:
                if watcher is None:
                    with contextlib.suppress(MicroError, OSError):
                        watcher = self.registry.watch()
                if watcher is not None and pending is None:
                    pending = asyncio.ensure_future(anext(watcher))
                    await asyncio.sleep(0)  # let it reach the registry before the read
                with contextlib.suppress(MicroError, OSError):
                    await self.refresh()
                if pending is None:
                    await asyncio.sleep(_REFRESH)
                    continue
                done, _ = await asyncio.wait({pending}, timeout=_REFRESH)
                if not done:
                    continue
                failed, pending = pending.exception(), None
                if failed is None:
                    await asyncio.sleep(_SETTLE)
                elif isinstance(failed, MicroError | OSError | StopAsyncIteration):
                    await _closed(watcher)
                    watcher = None
                    await asyncio.sleep(1.0)
                else:
                    raise failed
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
            await _closed(watcher)

    async def refresh(self) -> None:
        """Read every service's nodes and report what changed since the last read."""
        names = sorted({svc.name for svc in await self.registry.list_services()})
        now: dict[str, Seen] = {}
        for name in names:
            try:
                versions = await self.registry.get_service(name)
            except ServiceNotFound:
                continue
            if versions:
                nodes = sum(len(v.nodes) for v in versions)
                now[name] = Seen(nodes, _merged(name, versions))
        before, self.seen = self.seen, now
        for name in sorted(before.keys() | now.keys()):
            old, new = before.get(name), now.get(name)
            if old is None or new is None or old.nodes != new.nodes:
                self.changed(name, old, new)


def _merged(name: str, versions: Iterable[Service]) -> Service:
    """One record of a service's versions: the newest's endpoints, all the nodes."""
    ordered = list(versions)
    nodes = [node for v in ordered for node in v.nodes]
    return Service(
        name=name, version=ordered[-1].version, endpoints=ordered[-1].endpoints, nodes=nodes
    )


async def _closed(watcher: Any) -> None:
    if watcher is not None:
        with contextlib.suppress(Exception):
            await watcher.aclose()


# -- the server ---------------------------------------------------------------------------


class DevServer:
    """The dashboard and gateway, served by uvicorn inside ``micro run``'s event loop.

    Args:
        sock: the bound socket (see :func:`bind`).
        settings: the settings (``web`` and backend groups) the backends are built from.
        say: prints one line for people (the banner and the service lines; rich markup).
        title: what the banner's first line says is running.
    """

    def __init__(
        self,
        sock: socket.socket,
        settings: Settings,
        say: Callable[[str], None],
        *,
        title: str = "",
    ) -> None:
        self.sock = sock
        self.title = title
        self.url = url_of(sock)
        self.settings = settings
        self.say = say
        self.dashboard: Dashboard | None = None
        self.gateway: Gateway | None = None
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None

    def app(self) -> tuple[DevApp, Dashboard, Gateway]:
        """Build the dashboard and the gateway over one registry, selector and client."""
        from micro.toolkit.api import auth
        from micro.toolkit.api.app import Gateway
        from micro.toolkit.api.options import ApiOptions
        from micro.toolkit.web.app import Dashboard
        from micro.toolkit.web.cli import build_options

        options = build_options(self.settings)
        options.access_log = False  # the service's own log is what the terminal is for
        # the dashboard builds the registry, selector and client, and closes them client
        # first; the gateway shares them
        self.dashboard = dash = Dashboard(options, settings=self.settings)
        self.gateway = gateway = Gateway(
            ApiOptions(
                namespace="",
                max_body=options.max_body,
                read_timeout=options.read_timeout,
                timeout=options.timeout,
                access_log=False,
            ),
            registry=dash.registry,
            selector=dash.selector,
            client=dash.client,
            settings=self.settings,
        )
        # MICRO_WEB_AUTH_*: both halves
        check = auth.from_settings(self.settings, dash.client, "web")
        if check is not None:
            dash.set_auth(check)
            gateway.set_auth(check)
        return DevApp(dash, gateway), dash, gateway

    async def start(self) -> None:
        """Start the backends, serve, and follow the registry.

        Raises:
            Exception: the registry (or another backend) could not start.
        """
        from micro.toolkit.api.connections import server_config

        app, dashboard, gateway = self.app()
        await dashboard.start()
        await gateway.start()
        config = server_config(
            app, dashboard.options, log_level="warning", lifespan="off", graceful=2
        )
        self._server = _quiet_server(config)
        self._serving = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        watch = ServiceWatch(dashboard.registry, self._service_line)
        self._watching = asyncio.create_task(watch.run())

    async def close(self) -> None:
        """Stop serving and close the backends; never raises."""
        if self._watching is not None:
            self._watching.cancel()
        if self.dashboard is not None:
            self.dashboard.end_streams()  # open pages' event streams would hold the server
        if self._server is not None:
            self._server.should_exit = True
        tasks = [t for t in (self._serving, self._watching) if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        for part in (self.gateway, self.dashboard):
            if part is not None:
                await part.close()  # never raises
        self.sock.close()

    def banner(self) -> list[str]:
        """The lines printed once the server listens (rich markup)."""
        url = self.url
        return [
            f"[bold]micro run[/] {_escape(self.title)}",
            f"  [bold]Dashboard[/]  {url}/",
            f"  [bold]API[/]        {url}{API_PREFIX}/<service>/<method>  (POST JSON)",
            f"  [bold]Health[/]     {url}/health",
            "  [bold]Services[/]   each one below as it comes and goes in the registry",
        ]

    def _service_line(self, name: str, old: Seen | None, new: Seen | None) -> None:
        if _hidden(name):
            return
        shown = _escape(name)
        if new is None:
            self.say(f"  [red]-[/] {shown} gone")
            return
        count = f"{new.nodes} node" + ("s" if new.nodes != 1 else "")
        if old is not None:
            self.say(f"  [yellow]~[/] {shown} now {count}")
            return
        page = f"{self.url}/registry?service={quote(name, safe='')}"
        self.say(f"  [green]+[/] {shown} ({count})  {_escape(page)}")
        curl = curl_line(self.url, new.service)
        if curl is not None:
            self.say(f"      {_escape(curl)}")


def _hidden(name: str) -> bool:
    """The http broker's own registry entries: plumbing, not services anyone wrote."""
    from micro.broker._http_wire import LEGACY_PREFIX, SERVICE

    return name == SERVICE or name.startswith(LEGACY_PREFIX)


def _escape(text: str) -> str:
    """``text`` safe to print: rich markup escaped, control characters (a registry name
    could carry terminal escape sequences) shown as ``\\xNN``."""
    from rich.markup import escape

    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return escape(text)


def _quiet_server(config: Any) -> Any:
    """A uvicorn Server without its signal handlers: ``micro run`` handles Ctrl-C itself."""
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    return Server(config)


def printer() -> Callable[[str], None]:
    """Print rich markup lines on stderr (plain text when stderr is not a terminal)."""
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def say(line: str) -> None:
        console.print(line)
        sys.stderr.flush()

    return say
