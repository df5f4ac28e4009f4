"""A stand-in Consul agent: the HTTP endpoints :class:`~micro.registry.consul.ConsulRegistry`
uses, served for real on a loopback port, written from Consul's documented HTTP API.

Consul is not installable on this project's machines, so the Consul registry is tested
against this. It is a real HTTP server (aiohttp) that behaves as a single dev-mode agent:

- ``PUT /v1/agent/service/register`` (keys case-insensitive, as Consul decodes them; a TTL
  check in ``Check``/``Checks``, ``CheckID`` defaulting to ``service:<ID>``, initial status
  ``critical`` unless ``Status`` says otherwise), ``PUT /v1/agent/service/deregister/<id>``,
- ``PUT /v1/agent/check/{pass,warn,fail}/<check id>`` (``note`` query parameter),
- ``GET /v1/health/service/<name>`` (``passing`` filter) and ``GET /v1/catalog/services``,
  both blocking queries: ``index`` + ``wait`` (Go duration, default 5 m, at most 10 m, plus
  up to wait/16 of jitter), and an ``X-Consul-Index`` header that is never 0,
- ``GET /v1/agent/services`` and ``GET /v1/status/leader``.

TTL checks turn ``critical`` (output ``TTL expired``) when not passed in time, and a service
whose check stays critical for ``DeregisterCriticalServiceAfter`` is removed. Unknown IDs give
404, malformed bodies 400, as Consul does. Not modelled: ACLs, datacenters, other check kinds
(accepted, always passing), KV, sessions, Connect. Run it alone with
``python -m tests.registry.consul.agent --port 8500`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["ConsulAgent", "parse_duration"]

NODE = "micro-standin"
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
MAX_WAIT, DEFAULT_WAIT = 600.0, 300.0


def parse_duration(text: str) -> float:
    """A Go duration (``"10s"``, ``"1m30s"``, ``"500ms"``) in seconds.

    Raises:
        ValueError: not a Go duration.
    """
    text = text.strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"time: invalid duration {text!r}")
    return total


@dataclass
class _Check:
    id: str
    name: str
    service_id: str
    ttl: float | None
    deregister_after: float | None
    status: str = "critical"
    output: str = ""
    timer: asyncio.TimerHandle | None = None
    reaper: asyncio.TimerHandle | None = None


@dataclass
class _Service:
    id: str
    name: str
    tags: list[str]
    address: str
    port: int
    meta: dict[str, str]
    checks: list[str] = field(default_factory=list)
    create_index: int = 0
    modify_index: int = 0


def _fold(value: Any) -> Any:
    """Lower-case keys without ``_``: Consul decodes JSON keys case-insensitively."""
    if isinstance(value, dict):
        return {k.lower().replace("_", ""): v for k, v in value.items()}
    return value


class ConsulAgent:
    """A stand-in Consul agent on ``127.0.0.1``; ``async with ConsulAgent() as agent: ...``.

    Args:
        port: the port to bind (0: a free one, see :attr:`address`).
    """

    def __init__(self, *, port: int = 0) -> None:
        self.port = port
        self._services: dict[str, _Service] = {}
        self._checks: dict[str, _Check] = {}
        self._index = 1
        self._service_index: dict[str, int] = {}
        self._catalog_index = 1
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> ConsulAgent:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Serve on the loopback port (state starts empty, like a fresh dev agent)."""
        app = web.Application()
        app.add_routes(
            [
                web.put("/v1/agent/service/register", self._register),
                web.put("/v1/agent/service/deregister/{id:.+}", self._deregister),
                web.put("/v1/agent/check/{status:pass|warn|fail}/{id:.+}", self._update_check),
                web.get("/v1/health/service/{name:.+}", self._health),
                web.get("/v1/catalog/services", self._catalog),
                web.get("/v1/agent/services", self._agent_services),
                web.get("/v1/status/leader", self._leader),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving and forget every registration (like killing a dev agent)."""
        for check in self._checks.values():
            for timer in (check.timer, check.reaper):
                if timer is not None:
                    timer.cancel()
        self._services.clear()
        self._checks.clear()
        self._bump(None)  # wake blocking queries so they return before the server closes
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- state ----------------------------------------------------------------------------

    def _bump(self, name: str | None, *, catalog: bool = False) -> None:
        self._index += 1
        if name is not None:
            self._service_index[name] = self._index
        if catalog:
            self._catalog_index = self._index
        self._changed.set()
        self._changed = asyncio.Event()

    def _set_status(self, check: _Check, status: str, output: str) -> None:
        changed = (check.status, check.output) != (status, output)
        check.status, check.output = status, output
        loop = asyncio.get_running_loop()
        if check.timer is not None:
            check.timer.cancel()
            check.timer = None
        if check.ttl and status != "critical":
            check.timer = loop.call_later(check.ttl, self._expire, check.id)
        if check.reaper is not None:
            check.reaper.cancel()
            check.reaper = None
        if status == "critical" and check.deregister_after is not None:
            check.reaper = loop.call_later(check.deregister_after, self._reap, check.service_id)
        if changed and (svc := self._services.get(check.service_id)) is not None:
            svc.modify_index = self._index + 1
            self._bump(svc.name)

    def _expire(self, check_id: str) -> None:
        if (check := self._checks.get(check_id)) is not None:
            self._set_status(check, "critical", "TTL expired")

    def _reap(self, service_id: str) -> None:
        self._remove(service_id)

    def _remove(self, service_id: str) -> bool:
        svc = self._services.pop(service_id, None)
        if svc is None:
            return False
        for check_id in svc.checks:
            check = self._checks.pop(check_id, None)
            for timer in (check.timer, check.reaper) if check else ():
                if timer is not None:
                    timer.cancel()
        still_listed = any(s.name == svc.name for s in self._services.values())
        self._bump(svc.name, catalog=not still_listed)
        return True

    # -- handlers -------------------------------------------------------------------------

    async def _register(self, request: web.Request) -> web.Response:
        try:
            body = _fold(json.loads(await request.read()))
            svc, checks = self._parse_service(body)
        except (ValueError, TypeError, AttributeError) as exc:
            return web.Response(status=400, text=f"Request decode failed: {exc}")
        old = self._services.get(svc.id)
        if old is not None:
            self._remove(svc.id)
        new_name = not any(s.name == svc.name for s in self._services.values())
        svc.create_index = old.create_index if old else self._index + 1
        svc.modify_index = self._index + 1
        self._services[svc.id] = svc
        for check in checks:
            svc.checks.append(check.id)
            self._checks[check.id] = check
        self._bump(svc.name, catalog=new_name or old is None or old.tags != svc.tags)
        for check in checks:
            self._set_status(check, check.status, check.output)
        return web.Response(status=200)

    def _parse_service(self, body: dict[str, Any]) -> tuple[_Service, list[_Check]]:
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("Missing service name")
        sid = body.get("id") or name
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError("Tags must be a list of strings")
        port = body.get("port") or 0
        if not isinstance(port, int):
            raise ValueError("Port must be an integer")
        svc = _Service(sid, name, tags, body.get("address") or "", port, body.get("meta") or {})
        raw = [body["check"]] if body.get("check") else []
        raw += body.get("checks") or []
        checks = []
        for n, item in enumerate(raw):
            spec = _fold(item)
            default_id = f"service:{sid}" if len(raw) == 1 else f"service:{sid}:{n + 1}"
            ttl = parse_duration(spec["ttl"]) if spec.get("ttl") else None
            after = spec.get("deregistercriticalserviceafter")
            status = spec.get("status") or ("critical" if ttl else "passing")
            if status not in ("passing", "warning", "critical"):
                raise ValueError(f"invalid initial health check status {status!r}")
            checks.append(
                _Check(
                    id=spec.get("checkid") or spec.get("id") or default_id,
                    name=spec.get("name") or f"Service '{name}' check",
                    service_id=sid,
                    ttl=ttl,
                    deregister_after=max(parse_duration(after), 60.0) if after else None,
                    status=status,
                )
            )
        return svc, checks

    async def _deregister(self, request: web.Request) -> web.Response:
        sid = request.match_info["id"]
        if not self._remove(sid):
            return web.Response(status=404, text=f'Unknown service ID "{sid}"')
        return web.Response(status=200)

    async def _update_check(self, request: web.Request) -> web.Response:
        check_id = request.match_info["id"]
        check = self._checks.get(check_id)
        if check is None:
            return web.Response(status=404, text=f'Unknown check ID "{check_id}"')
        if check.ttl is None:
            return web.Response(
                status=500, text=f'CheckID "{check_id}" does not have associated TTL'
            )
        status = {"pass": "passing", "warn": "warning", "fail": "critical"}[
            request.match_info["status"]
        ]
        self._set_status(check, status, request.query.get("note", ""))
        return web.Response(status=200)

    async def _health(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        failed = await self._block(request, lambda: self._service_index.get(name, 1))
        if failed is not None:
            return failed
        passing_only = "passing" in request.query
        entries = []
        for svc in self._services.values():
            if svc.name != name:
                continue
            checks = [self._serf_check()] + [self._check_json(svc, c) for c in svc.checks]
            if passing_only and any(c["Status"] != "passing" for c in checks):
                continue
            entries.append(
                {"Node": self._node_json(), "Service": _service_json(svc), "Checks": checks}
            )
        return self._json(entries, self._service_index.get(name, 1))

    async def _catalog(self, request: web.Request) -> web.Response:
        failed = await self._block(request, lambda: self._catalog_index)
        if failed is not None:
            return failed
        names: dict[str, list[str]] = {"consul": []}
        for svc in self._services.values():
            tags = names.setdefault(svc.name, [])
            tags.extend(t for t in svc.tags if t not in tags)
        return self._json(names, self._catalog_index)

    async def _agent_services(self, request: web.Request) -> web.Response:
        services = {sid: _service_json(svc) for sid, svc in self._services.items()}
        return self._json(services, None)

    async def _leader(self, request: web.Request) -> web.Response:
        return self._json(f"127.0.0.1:{self.port}", None)

    async def _block(self, request: web.Request, index: Any) -> web.Response | None:
        """Hold a blocking query until its resource index passes ``?index=`` or ``wait`` ends."""
        try:
            since = int(request.query.get("index", "0"))
            wait = parse_duration(request.query.get("wait", "")) or DEFAULT_WAIT
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        if since <= 0:
            return None
        wait = min(wait, MAX_WAIT)
        deadline = asyncio.get_running_loop().time() + wait + random.uniform(0, wait / 16)
        while index() <= since and self._runner is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                break
        return None

    def _json(self, data: Any, index: int | None) -> web.Response:
        headers = {"X-Consul-Index": str(max(index, 1))} if index is not None else {}
        headers |= {"X-Consul-KnownLeader": "true", "X-Consul-LastContact": "0"}
        return web.json_response(data, headers=headers)

    def _node_json(self) -> dict[str, Any]:
        return {
            "ID": "00000000-0000-0000-0000-000000000001",
            "Node": NODE,
            "Address": "127.0.0.1",
            "Datacenter": "dc1",
            "TaggedAddresses": {"lan": "127.0.0.1", "wan": "127.0.0.1"},
            "Meta": {"consul-network-segment": ""},
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def _serf_check(self) -> dict[str, Any]:
        return {
            "Node": NODE,
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "passing",
            "Notes": "",
            "Output": "Agent alive and reachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "CreateIndex": 1,
            "ModifyIndex": 1,
        }

    def _check_json(self, svc: _Service, check_id: str) -> dict[str, Any]:
        check = self._checks[check_id]
        return {
            "Node": NODE,
            "CheckID": check.id,
            "Name": check.name,
            "Status": check.status,
            "Notes": "",
            "Output": check.output,
            "ServiceID": svc.id,
            "ServiceName": svc.name,
            "ServiceTags": svc.tags,
            "Type": "ttl" if check.ttl else "",
            "CreateIndex": svc.create_index,
            "ModifyIndex": svc.modify_index,
        }


def _service_json(svc: _Service) -> dict[str, Any]:
    return {
        "ID": svc.id,
        "Service": svc.name,
        "Tags": svc.tags,
        "Address": svc.address,
        "Meta": svc.meta,
        "Port": svc.port,
        "Weights": {"Passing": 1, "Warning": 1},
        "EnableTagOverride": False,
        "CreateIndex": svc.create_index,
        "ModifyIndex": svc.modify_index,
    }


async def _main(port: int) -> None:
    async with ConsulAgent(port=port) as agent:
        print(f"stand-in consul agent on http://{agent.address}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8500)
    asyncio.run(_main(parser.parse_args().port))
