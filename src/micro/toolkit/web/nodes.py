"""Node health and stats for the service page: ``GET /_/nodes?service=X``.

The first request for a service starts a poller: every ``stats_interval`` seconds it calls
``Debug.Health`` and ``Debug.Stats`` on each node of the service, by the node's address
(so each node answers for itself), with a short timeout and no retry. Each node keeps a
ring of samples covering ``stats_window``; a node that leaves the registry is dropped with
its history. Polling stops once nobody has asked for ``IDLE_INTERVALS`` intervals, so an
open service page costs the services a couple of small calls per interval, and a closed one
nothing.

``requests``/``errors`` come from ``Debug.Stats`` when the server reports them (null
otherwise, e.g. go-micro nodes). ``stats`` is the node's last ``Debug.Stats`` answer as is,
every field (newer servers add counters at the end), which the page lists under the charts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from micro.client.rpc import node_address
from micro.errors import BadRequest, MicroError, NotFound
from micro.registry import Node
from micro.toolkit.web._context import WEB_ID, Dashboard, handler, query, send_json, stop

if TYPE_CHECKING:
    from micro.toolkit.web.live import Live

__all__ = ["NodeStats", "routes"]

IDLE_INTERVALS = 3
"""Polling of a service stops when nobody asked for this many intervals."""
PROBE_TIMEOUT = 2.0
"""Seconds per Debug call at most (less when the interval is shorter)."""
DEBUG_CONTENT_TYPE = "application/json"  # Debug.* answer Structs: JSON, whatever the default


@dataclass
class _NodeHistory:
    node: Node
    version: str
    samples: deque[dict[str, Any]]
    health: str = "unknown"
    error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        return {
            "id": self.node.id,
            "address": self.node.address,
            "version": self.version,
            "health": self.health,
            "error": self.error,
            "samples": list(self.samples),
            "stats": self.stats,
        }


@dataclass
class _Poller:
    """The polling of one service's nodes."""

    name: str
    asked: float
    nodes: dict[str, _NodeHistory] = field(default_factory=dict)
    first: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, MicroError):
        return exc.detail or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return "timeout"
    return f"{type(exc).__name__}: {exc}".strip().rstrip(":")


def _number(stats: dict[str, Any], key: str) -> Any:
    value = stats.get(key)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


class NodeStats:
    """Pollers by service name; ``/_/nodes`` reads (and so keeps alive) one of them."""

    def __init__(self, dash: Dashboard, live: Live) -> None:
        self.dash = dash
        self.live = live
        self.interval = dash.options.stats_interval
        self.size = max(1, math.ceil(dash.options.stats_window / self.interval))
        self._pollers: dict[str, _Poller] = {}

    @property
    def polling(self) -> list[str]:
        """The services being polled now."""
        return sorted(name for name, p in self._pollers.items() if p.task and not p.task.done())

    async def close(self) -> None:
        """Stop every poller; never raises."""
        pollers, self._pollers = list(self._pollers.values()), {}
        for poller in pollers:
            await stop(poller.task)

    async def view(self, name: str) -> dict[str, Any]:
        """The ``/_/nodes`` JSON of ``name``, starting its poller if needed.

        Raises:
            NotFound: ``name`` has no node in the registry.
        """
        if not self.live.nodes_of(name):
            raise NotFound(f"service not found: {name}", id=WEB_ID)
        now = time.monotonic()
        poller = self._pollers.get(name)
        if poller is None or poller.task is None or poller.task.done():
            poller = _Poller(name, now)
            self._pollers[name] = poller
            poller.task = asyncio.create_task(self._poll(poller), name=f"micro-web-stats-{name}")
        poller.asked = now
        if not poller.first.is_set():  # the first view shows the first round
            try:
                async with asyncio.timeout(self._probe_timeout() + 1.0):
                    await poller.first.wait()
            except TimeoutError:
                pass
        return {
            "interval": self.interval,
            "nodes": [poller.nodes[key].json() for key in sorted(poller.nodes)],
        }

    def _probe_timeout(self) -> float:
        return min(PROBE_TIMEOUT, self.interval)

    async def _poll(self, poller: _Poller) -> None:
        loop = asyncio.get_running_loop()
        try:
            while time.monotonic() - poller.asked <= IDLE_INTERVALS * self.interval:
                started = loop.time()
                await self._round(poller)
                poller.first.set()
                await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
        finally:
            poller.first.set()
            if self._pollers.get(poller.name) is poller:
                del self._pollers[poller.name]

    async def _round(self, poller: _Poller) -> None:
        """Probe every current node once; forget the nodes that left."""
        current = self.live.nodes_of(poller.name)
        ids = {node.id for node, _ in current}
        for gone in [key for key in poller.nodes if key not in ids]:
            del poller.nodes[gone]
        for node, version in current:
            history = poller.nodes.get(node.id)
            if history is None or history.node.address != node.address:
                history = _NodeHistory(node, version, deque(maxlen=self.size))
                poller.nodes[node.id] = history
            history.version = version
        await asyncio.gather(*(self._probe(poller.name, h) for h in poller.nodes.values()))

    async def _debug(self, service: str, node: Node, endpoint: str) -> Any:
        return await self.dash.client.call(
            service,
            endpoint,
            {},
            address=node_address(node),
            timeout=self._probe_timeout(),
            retries=0,
            content_type=DEBUG_CONTENT_TYPE,
        )

    async def _probe(self, service: str, history: _NodeHistory) -> None:
        health: Any
        stats: Any
        health, stats = await asyncio.gather(
            self._debug(service, history.node, "Debug.Health"),
            self._debug(service, history.node, "Debug.Stats"),
            return_exceptions=True,
        )
        if isinstance(health, BaseException):
            history.health = _error_text(health)
        elif isinstance(health, dict):
            history.health = str(health.get("status") or "unknown")
        else:
            history.health = str(health)
        history.error = None
        if isinstance(stats, BaseException):
            history.error = _error_text(stats)
        elif isinstance(stats, dict):
            history.stats = stats
            history.samples.append(
                {
                    "t": round(time.time(), 3),
                    "uptime": _number(stats, "uptime"),
                    "memory": _number(stats, "memory"),
                    "threads": _number(stats, "threads"),
                    "requests": _number(stats, "requests"),
                    "errors": _number(stats, "errors"),
                }
            )
        else:
            history.error = "Debug.Stats answered something other than an object"
        if isinstance(health, BaseException) and history.error is None:
            history.error = history.health


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """``/_/nodes?service=X`` over ``dash.live.nodes``."""

    @handler("GET", "HEAD")
    async def nodes(scope: Scope, receive: Receive, send: Send) -> None:
        name = query(scope, "service").strip()
        if not name:
            raise BadRequest("missing query parameter: service", id=WEB_ID)
        await send_json(send, await dash.live.nodes.view(name))

    return {"/_/nodes": nodes}
