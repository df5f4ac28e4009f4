"""The live registry view: every service, kept current by one registry watch.

:class:`Live` loads the registry once, then applies each watch result (a node created,
updated or deleted) to what it holds, so a change costs the work of one node, never a
lookup per service. It serves:

- ``GET /_/services``: ``{"services": [Summary], "web": [WebSummary]}`` (the encoded JSON
  is cached until the next change);
- ``GET /_/events``: Server-Sent Events, event ``services`` with the same JSON at connect
  and after each change (coalesced: at most one per ``COALESCE`` seconds), ``: ping``
  comments between. Each client holds only the newest snapshot, so a slow client skips
  snapshots and never holds up the others;
- ``GET /_/service?name=X``: versions, nodes, endpoints with request/response field trees
  (from the endpoint's JSON Schema when the registry carries one, else its Value tree)
  and subscribers with their topics.

A failed watch is logged and started again after ``RETRY`` seconds, with a full reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from micro.errors import BadRequest, MicroError, NotFound, ServiceNotFound
from micro.registry import Node, Result, Service, group_by_version
from micro.toolkit.web import fields
from micro.toolkit.web._context import (
    PING,
    WEB_ID,
    Dashboard,
    handler,
    query,
    send_json,
    sse_event,
    sse_start,
    stop,
    wait_disconnect,
)
from micro.toolkit.web.options import NAME_PATTERN

if TYPE_CHECKING:
    from micro.toolkit.web.nodes import NodeStats

__all__ = ["Live", "routes"]

log = logging.getLogger("micro.web")
_json = msgspec.json.Encoder()

RETRY = 1.0
"""Seconds before a failed watch is started again."""
COALESCE = 0.1
"""At most one ``services`` event per this many seconds."""
SETTLE = 0.02
"""Wait this long after a change before sending it, so a burst goes out as one event."""
PING_EVERY = 15.0
"""Seconds between ``: ping`` comments on an idle event stream."""
START_WAIT = 5.0
"""``start()`` waits this long at most for the first load."""
LOOKUPS = 16
"""Concurrent lookups while loading services the listing gave by name only."""
MAX_NAME = 1024
"""Longest service name a query may ask for."""


class _Snapshot:
    """The newest payload for one event-stream client (a queue of one that keeps the last)."""

    __slots__ = ("closed", "data", "ready")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.ready = asyncio.Event()
        self.ready.set()
        self.closed = False

    def offer(self, data: bytes) -> None:
        self.data = data
        self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()


class Live:
    """What the registry holds, kept current; the ``/_/services``, ``/_/events`` and
    ``/_/service`` handlers read it.

    ``nodes`` (the stats poller of ``/_/nodes``) lives here too, so that ``close()`` stops
    its polling.
    """

    def __init__(self, dash: Dashboard) -> None:
        from micro.toolkit.web.nodes import NodeStats

        self.dash = dash
        self.namespace = dash.options.namespace
        self.nodes: NodeStats = NodeStats(dash, self)
        self.version = 0
        """Increases on every change."""
        self.changed_at = 0.0
        """``time.monotonic()`` of the last change."""
        self._views: dict[str, dict[str, Service]] = {}  # name -> node id -> one-node view
        self._summaries: dict[str, dict[str, Any]] = {}
        self._payload: bytes | None = None
        self._clients: set[_Snapshot] = set()
        self._dirty = asyncio.Event()
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching and wait (at most ``START_WAIT`` s) for the first load."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="micro-web-live")
            self._flusher = asyncio.create_task(self._flush(), name="micro-web-events")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(START_WAIT):
                await self._ready.wait()

    async def close(self) -> None:
        """Stop watching, polling and every event stream; never raises."""
        task, self._task = self._task, None
        flusher, self._flusher = self._flusher, None
        await stop(task)
        await stop(flusher)
        for client in list(self._clients):
            client.close()
        await self.nodes.close()

    @property
    def ready(self) -> bool:
        """True once the first load is done."""
        return self._ready.is_set()

    # -- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._views)

    def services(self, name: str) -> list[Service]:
        """Every version of ``name`` with its nodes (empty when unknown)."""
        views = self._views.get(name)
        if not views:
            return []
        merged = group_by_version(views.values())
        for svc in merged:
            svc.nodes.sort(key=lambda n: n.id)
        return sorted(merged, key=lambda s: s.version)

    def nodes_of(self, name: str) -> list[tuple[Node, str]]:
        """``(node, version)`` of every node of ``name``."""
        views = self._views.get(name) or {}
        return [(v.nodes[0], v.version) for _, v in sorted(views.items())]

    def payload(self) -> bytes:
        """The ``/_/services`` JSON (cached until the next change)."""
        if self._payload is None:
            services = [self._summary(name) for name in sorted(self._views)]
            web = []
            prefix = self.namespace + "."
            for name in sorted(self._views):
                short = name[len(prefix) :] if name.startswith(prefix) else ""
                if short and NAME_PATTERN.match(short):
                    web.append({"name": short, "service": name, "path": f"/{short}/"})
            self._payload = _json.encode({"services": services, "web": web})
        return self._payload

    def _summary(self, name: str) -> dict[str, Any]:
        found = self._summaries.get(name)
        if found is None:
            views = self._views[name].values()
            endpoints = {ep.name for view in views for ep in view.endpoints}
            found = {
                "name": name,
                "versions": sorted({view.version for view in views}),
                "nodes": len(self._views[name]),
                "endpoints": len(endpoints),
            }
            self._summaries[name] = found
        return found

    # -- keeping current -----------------------------------------------------------------

    async def _run(self) -> None:
        registry = self.dash.registry
        while True:
            pending: asyncio.Queue[Result | None] = asyncio.Queue()
            pump: asyncio.Task[None] | None = None
            try:
                pump = asyncio.create_task(self._pump(registry.watch(), pending))
                await asyncio.sleep(0)  # let the watch get in place before the listing
                self._replace(await self._load())
                self._ready.set()
                while True:
                    batch = [await pending.get()]
                    while not pending.empty():  # a burst is applied as one change
                        batch.append(pending.get_nowait())
                    for result in batch:
                        if result is None:
                            await pump  # raises the watch's error, if it failed
                            raise MicroError("registry watch ended", id=WEB_ID)
                        self._apply(result)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep what we have; watch and load again
                log.warning("registry watch failed (%s); retrying in %.0fs", exc, RETRY)
                self._ready.set()
                await asyncio.sleep(RETRY)
            finally:
                await stop(pump)

    @staticmethod
    async def _pump(watch: Any, out: asyncio.Queue[Result | None]) -> None:
        """Queue the watch's results; ``None`` once it ends (or fails)."""
        try:
            async for result in watch:
                out.put_nowait(result)
        finally:
            out.put_nowait(None)
            with contextlib.suppress(Exception):
                await watch.aclose()

    async def _load(self) -> dict[str, dict[str, Service]]:
        """Every service's one-node views, from one listing (plus lookups for bare names)."""
        listed = await self.dash.registry.list_services()
        views: dict[str, dict[str, Service]] = {}
        bare: list[str] = []
        for svc in listed:
            if svc.nodes:
                _upsert(views, svc)
            elif svc.name:
                bare.append(svc.name)
        gate = asyncio.Semaphore(LOOKUPS)

        async def lookup(name: str) -> list[Service]:
            async with gate:
                try:
                    return await self.dash.registry.get_service(name)
                except ServiceNotFound:
                    return []
                except MicroError as exc:
                    log.warning("registry lookup of %s failed: %s", name, exc)
                    return []

        for found in await asyncio.gather(*(lookup(n) for n in dict.fromkeys(bare))):
            for svc in found:
                _upsert(views, svc)
        return views

    def _replace(self, views: dict[str, dict[str, Service]]) -> None:
        self._views = views
        self._summaries.clear()
        self._changed()

    def _apply(self, result: Result) -> None:
        svc = result.service
        if not svc.name:
            return
        if result.action == "delete":
            touched = _remove(self._views, svc)
        else:
            touched = _upsert(self._views, svc)
        if touched:
            self._summaries.pop(svc.name, None)
            self._changed()

    def _changed(self) -> None:
        self._payload = None
        self.version += 1
        self.changed_at = time.monotonic()
        self._dirty.set()

    async def _flush(self) -> None:
        """Send the newest payload to every event stream, at most once per ``COALESCE``."""
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            await self._dirty.wait()
            await asyncio.sleep(max(SETTLE, COALESCE - (loop.time() - last)))
            self._dirty.clear()
            last = loop.time()
            if self._clients:
                data = self.payload()
                for client in self._clients:
                    client.offer(data)

    # -- event streams -------------------------------------------------------------------

    async def events(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``GET /_/events``: the services JSON now and after each change, until the
        client leaves, the server shuts down (``dash.streams.end()``) or the dashboard
        closes. The response always ends properly (a no-op once the client has gone)."""
        client = _Snapshot(self.payload())
        self._clients.add(client)
        try:
            async with self.dash.streams.watch("events", lambda: wait_disconnect(receive)) as over:
                await sse_start(send)
                while not over.done():
                    woke = asyncio.create_task(client.ready.wait())
                    await asyncio.wait(
                        {woke, over}, timeout=PING_EVERY, return_when=asyncio.FIRST_COMPLETED
                    )
                    await stop(woke)
                    if client.closed or over.done():
                        break
                    if client.ready.is_set():
                        client.ready.clear()
                        chunk = sse_event("services", client.data)
                    else:
                        chunk = PING
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # the connection went away while sending
            pass
        finally:
            self._clients.discard(client)

    # -- one service ---------------------------------------------------------------------

    def detail(self, name: str) -> dict[str, Any]:
        """The ``/_/service`` JSON of ``name``.

        Raises:
            NotFound: no node of ``name`` is registered.
        """
        versions = self.services(name)
        if not versions:
            raise NotFound(f"service not found: {name}", id=WEB_ID)
        subscribers = []
        out = []
        for svc in versions:
            endpoints = []
            for ep in svc.endpoints:
                md = dict(ep.metadata or {})
                is_sub = md.get("subscriber") == "true"
                endpoints.append(
                    {
                        "name": ep.name,
                        "metadata": md,
                        "stream": md.get("stream") == "true",
                        "subscriber": is_sub,
                        "request": fields.build(md.get("request_schema"), ep.request),
                        "response": fields.build(md.get("response_schema"), ep.response),
                    }
                )
                if is_sub:
                    subscribers.append(
                        {
                            "topic": md.get("topic", ""),
                            "endpoint": ep.name,
                            "queue": md.get("queue") or None,
                            "version": svc.version,
                        }
                    )
            out.append(
                {
                    "version": svc.version,
                    "metadata": dict(svc.metadata or {}),
                    "nodes": [
                        {"id": n.id, "address": n.address, "metadata": dict(n.metadata or {})}
                        for n in svc.nodes
                    ],
                    "endpoints": endpoints,
                }
            )
        return {"name": name, "versions": out, "subscribers": subscribers}


def _upsert(views: dict[str, dict[str, Service]], svc: Service) -> bool:
    """Put each node of ``svc`` in ``views`` as a one-node view; True when that changed it."""
    mine = views.setdefault(svc.name, {})
    changed = False
    for node in svc.nodes:
        one = msgspec.structs.replace(svc, nodes=[node])
        old = mine.get(node.id)
        if old is not None and not one.endpoints and old.endpoints and old.version == one.version:
            one.endpoints = old.endpoints  # a record without endpoints keeps those we know
        if old != one:
            mine[node.id] = one
            changed = True
    if not mine:
        del views[svc.name]
    return changed


def _remove(views: dict[str, dict[str, Service]], svc: Service) -> bool:
    """Drop the nodes of ``svc`` (all of its version when it lists none); True if any went."""
    mine = views.get(svc.name)
    if not mine:
        return False
    if svc.nodes:
        gone: Iterable[str] = [n.id for n in svc.nodes if n.id in mine]
    else:
        gone = [key for key, view in mine.items() if view.version == svc.version]
    changed = False
    for key in gone:
        del mine[key]
        changed = True
    if not mine:
        del views[svc.name]
    return changed


def _live(dash: Dashboard) -> Live:
    return dash.live


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """``/_/services``, ``/_/events`` and ``/_/service`` over ``dash.live``."""

    @handler("GET", "HEAD")
    async def services(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, _live(dash).payload())

    @handler("GET")
    async def events(scope: Scope, receive: Receive, send: Send) -> None:
        await _live(dash).events(scope, receive, send)

    @handler("GET", "HEAD")
    async def service(scope: Scope, receive: Receive, send: Send) -> None:
        name = query(scope, "name").strip()
        if not name:
            raise BadRequest("missing query parameter: name", id=WEB_ID)
        if len(name) > MAX_NAME:
            raise BadRequest(f"service name longer than {MAX_NAME} characters", id=WEB_ID)
        await send_json(send, _live(dash).detail(name))

    return {"/_/services": services, "/_/events": events, "/_/service": service}
