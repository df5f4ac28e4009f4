"""Companion mode: ``micro proxy`` registers a non-micro app that runs beside it.

Started with ``--server-name``, ``--server-address`` and (optionally) ``--healthcheck-url``,
the proxy announces the app as one node of service ``<name>`` (node id ``<name>-<uuid4>``,
address the app's ``host:port``, metadata ``{"proxy": "companion", "registry": <registry>,
"transport": "http", "protocol": "http"}``: ``protocol`` tells micro clients the node speaks
plain HTTP, not mucp, so they reach it through the gateway's or the proxy's HTTP handlers).

Every ``--healthcheck-interval`` it GETs the health URL: a 2xx answer (redirects followed)
means healthy; another status, a connection error or no answer within ``min(interval, 5 s)``
means unhealthy. While healthy the node is registered again each interval with a TTL of three
intervals, so the registration of a proxy that died without deregistering expires; while
unhealthy the node is deregistered, and it is registered again when the app recovers. Each
change of health (and of the registry's reachability) is logged once. Without a health URL
the app counts as always healthy: registered at start and refreshed each interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from micro.registry import Node, Registry, Service, split_host_port

__all__ = ["Companion"]

log = logging.getLogger("micro.proxy.companion")

_MAX_CHECK_TIMEOUT = 5.0
_TTL_INTERVALS = 3
_DEREGISTER_WITHIN = 5.0
_FLAGS = {
    "name": "--server-name (MICRO_PROXY_SERVER_NAME)",
    "address": "--server-address (MICRO_PROXY_SERVER_ADDRESS)",
    "url": "--healthcheck-url (MICRO_PROXY_HEALTHCHECK_URL)",
}


class Companion:
    """Keeps an app beside the proxy registered while its health check passes.

    Args:
        registry: where to register the app (started and closed by the caller).
        name: the service name to register the app under.
        address: the app's ``host:port``, registered as the node's address.
        healthcheck_url: an ``http(s)://`` URL; ``None``: the app is always healthy.
        interval: seconds between health checks (and re-registrations).

    Raises:
        ValueError: an empty name, an address that is not ``host:port``, a URL that is not
            http(s), or an interval that is not above 0.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        name: str,
        address: str,
        healthcheck_url: str | None = None,
        interval: float = 10.0,
    ) -> None:
        if not name.strip():
            raise ValueError(f"companion mode: {_FLAGS['name']} is empty")
        _check_address(address)
        if healthcheck_url is not None:
            _check_url(healthcheck_url)
        if not interval > 0:
            raise ValueError(
                f"companion mode: --healthcheck-interval must be above 0, not {interval!r}"
            )
        self.registry = registry
        self.name = name
        self.address = address
        self.healthcheck_url = healthcheck_url
        self.interval = float(interval)
        self.timeout = min(self.interval, _MAX_CHECK_TIMEOUT)
        self.ttl = _TTL_INTERVALS * self.interval
        self.node_id = f"{name}-{uuid.uuid4()}"
        self._healthy: bool | None = None  # None: not checked yet
        self._registered = False
        self._registry_error: str | None = None
        self._last_check: float | None = None
        self._check_error: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], registry: Registry) -> Companion | None:
        """The companion the ``proxy_app_*`` and ``proxy_healthcheck_*`` settings ask for.

        Returns:
            ``None`` when neither an app name nor an app address is set.

        Raises:
            ValueError: only some of name, address and health URL are set, or one is invalid
                (the message names the flag to fix).
        """
        name = settings.get("proxy_app_name") or None
        address = settings.get("proxy_app_address") or None
        url = settings.get("proxy_healthcheck_url") or None
        if name is None and address is None:
            if url is not None:
                raise ValueError(
                    f"companion mode: {_FLAGS['url']} is set but not {_FLAGS['name']} "
                    f"and {_FLAGS['address']}, which say what app to register"
                )
            return None
        if name is None or address is None:
            given, missing = ("name", "address") if address is None else ("address", "name")
            raise ValueError(
                f"companion mode: {_FLAGS[given]} is set but not {_FLAGS[missing]}; "
                "give both to register the app beside the proxy"
            )
        interval = settings.get("proxy_healthcheck_interval")
        return cls(
            registry,
            name=name,
            address=address,
            healthcheck_url=url,
            interval=10.0 if interval is None else interval,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the app's health and register it if healthy, then keep doing so each interval.

        Returns after the first check (at most ``min(interval, 5 s)``) and its registration.
        A registry that cannot be reached is logged and retried each interval, never raised.
        """
        if self._closed:
            raise RuntimeError("a closed companion cannot start again; make a new one")
        if self._started:
            return
        self._started = True
        host = split_host_port(self.address)[0]
        if _is_local(host):
            log.warning(
                "companion: %s is registered at %s, which only this machine can reach",
                self.name,
                self.address,
            )
        if self.healthcheck_url is not None:
            self._session = aiohttp.ClientSession(
                # a new connection per check: one the app dropped while idle is no failure
                connector=aiohttp.TCPConnector(force_close=True),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        await self._poll()
        self._task = asyncio.create_task(self._keep(), name=f"micro-companion-{self.node_id}")

    async def close(self) -> None:
        """Stop checking and deregister the app (bounded by 5 s); never raises."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
        if self._started:
            try:
                # always: a register that a cancellation cut short may still have landed
                await asyncio.wait_for(
                    self.registry.deregister(self._service()), _DEREGISTER_WITHIN
                )
            except Exception as exc:  # close() never raises
                log.warning("companion: deregistering %s failed: %s", self.node_id, exc)
            else:
                if self._registered:
                    log.info("companion: %s at %s deregistered", self.name, self.address)
            self._registered = False
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()

    def status(self) -> dict[str, Any]:
        """What ``/health`` reports: ``name``, ``address``, ``healthy``, ``registered``,
        ``last_check`` (seconds since the epoch, ``None`` before the first) and ``last_error``
        (why the last check failed or the registry refused, ``None`` when all went well)."""
        return {
            "name": self.name,
            "address": self.address,
            "healthy": bool(self._healthy),
            "registered": self._registered,
            "last_check": self._last_check,
            "last_error": self._check_error or self._registry_error,
        }

    # -- the loop --------------------------------------------------------------------------

    async def _keep(self) -> None:
        """Poll each interval, and register again at once when the registry may have lost us."""
        lost = asyncio.Event()
        listener = asyncio.create_task(self._hear_losses(lost))
        loop = asyncio.get_running_loop()
        due = loop.time() + self.interval
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), max(0.0, due - loop.time()))
                if lost.is_set():
                    lost.clear()
                    if self._healthy:
                        await self._sync()
                    continue
                due = loop.time() + self.interval
                await self._poll()
        finally:
            listener.cancel()
            await asyncio.wait({listener})

    async def _hear_losses(self, lost: asyncio.Event) -> None:
        try:
            async for _ in self.registry.lost(self._service()):
                lost.set()
        except Exception as exc:  # a backend bug: the interval still re-registers
            log.warning("companion: watching the registration of %s failed: %r", self.node_id, exc)

    async def _poll(self) -> None:
        """One health check, then the registry brought in line with it."""
        error = await self._check()
        self._last_check = time.time()
        healthy = error is None
        if healthy and self._healthy is False:
            log.info("companion: %s at %s is healthy again", self.name, self.address)
        elif not healthy and self._healthy is not False:
            log.warning(
                "companion: %s at %s is unhealthy (%s); not registered until it recovers",
                self.name,
                self.address,
                error,
            )
        self._healthy, self._check_error = healthy, error
        await self._sync()

    async def _check(self) -> str | None:
        """``None`` when the app is healthy, else why not."""
        if self._session is None or self.healthcheck_url is None:
            return None
        try:
            async with self._session.get(self.healthcheck_url) as rsp:
                if 200 <= rsp.status < 300:
                    return None
                return f"{self.healthcheck_url} answered HTTP {rsp.status}"
        except TimeoutError:
            return f"{self.healthcheck_url} did not answer within {self.timeout:g}s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return f"cannot reach {self.healthcheck_url}: {exc or type(exc).__name__}"

    async def _sync(self) -> None:
        """Register (refreshing the TTL) while healthy; deregister once when not."""
        try:
            if self._healthy:
                await self.registry.register(self._service(), ttl=self.ttl)
                if not self._registered:
                    log.info(
                        "companion: %s at %s registered as %s",
                        self.name,
                        self.address,
                        self.node_id,
                    )
                self._registered = True
            elif self._registered:
                await self.registry.deregister(self._service())
                self._registered = False
        except Exception as exc:  # a registry hiccup must never stop the companion
            reason = f"the {self.registry.name} registry failed: {exc}"
            if self._registry_error is None:
                log.warning("companion: %s; retrying every %gs", reason, self.interval)
            self._registry_error = reason
        else:
            if self._registry_error is not None:
                log.info("companion: the %s registry answers again", self.registry.name)
            self._registry_error = None

    def _service(self) -> Service:
        metadata = {
            "proxy": "companion",
            "registry": self.registry.name,
            "transport": "http",
            "protocol": "http",
        }
        node = Node(id=self.node_id, address=self.address, metadata=metadata)
        return Service(name=self.name, nodes=[node])


def _check_address(address: str) -> None:
    problem = None
    if "://" in address or "/" in address:
        problem = "give host:port, not a URL"
    else:
        try:
            host, port = split_host_port(address)
        except ValueError:
            problem = "it has no port"
        else:
            if not host:
                problem = "it has no host (other machines need one to reach the app)"
            elif not 0 < port < 65536:
                problem = f"port {port} is out of range"
    if problem is not None:
        raise ValueError(f"companion mode: {_FLAGS['address']} {address!r} is invalid: {problem}")


def _check_url(url: str) -> None:
    problem = None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "it must start with http:// or https://"
        elif not parts.hostname:
            problem = "it has no host"
    if problem is not None:
        raise ValueError(f"companion mode: {_FLAGS['url']} {url!r} is invalid: {problem}")


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified
