"""A fake Kubernetes API server on loopback: the pod endpoints KubernetesRegistry uses.

Serves pods shaped like ``pod.json`` (a Pod as ``kubectl get pod -o json`` prints it) with
the API's semantics for what the registry needs: label selectors (``k=v``, ``k!=v``, ``k``,
``!k``), JSON merge patches (RFC 7386, ``null`` deletes), resource versions, watch streams
(``ADDED``/``MODIFIED``/``DELETED`` lines, resuming from ``resourceVersion``, ``410 Gone`` as
an ``ERROR`` event when that version is too old), ``timeoutSeconds``, and ``Status`` errors.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

from aiohttp import web

RECORDED_POD: dict[str, Any] = json.loads((Path(__file__).parent / "pod.json").read_text())
KEEP_EVENTS = 1000
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}  # strconv.ParseBool


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; returns a new document, ``target`` is left untouched."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def matches(labels: dict[str, str], selector: str) -> bool:
    for req in filter(None, (r.strip() for r in selector.split(","))):
        if "!=" in req:
            key, value = req.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = req.replace("==", "=").split("=", 1)
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip
    return web.json_response(body, status=code)


class FakeKubernetes:
    """``async with FakeKubernetes() as api:``, then ``api.add_pod("p1")`` and point a
    ``KubernetesRegistry(address=api.url)`` at it."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[tuple[int, str, dict[str, Any], dict[str, str]]] = []  # + old labels
        self.version = 100
        self.requests: list[tuple[str, str]] = []
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> FakeKubernetes:
        app = web.Application()
        base = "/api/v1/namespaces/{ns}/pods"
        app.add_routes([web.get(base, self._list), web.patch(base + "/{name}", self._patch)])
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        runner, self._runner = self._runner, None
        self._wake()
        if runner is not None:
            await runner.cleanup()

    # -- test controls --------------------------------------------------------------------

    def add_pod(self, name: str, namespace: str = "default", **changes: Any) -> dict[str, Any]:
        pod: dict[str, Any] = merge_patch(copy.deepcopy(RECORDED_POD), changes)
        pod["metadata"].update(name=name, namespace=namespace, uid=f"uid-{name}")
        self._store("ADDED", pod)
        return pod

    def set_pod(self, name: str, patch: dict[str, Any], namespace: str = "default") -> None:
        self._store("MODIFIED", merge_patch(self.pods[(namespace, name)], patch))

    def _labels(self, pod: dict[str, Any]) -> dict[str, str]:
        meta = pod["metadata"]
        old = self.pods.get((meta["namespace"], meta["name"]))
        return dict((old or pod)["metadata"].get("labels") or {})

    def delete_pod(self, name: str, namespace: str = "default") -> None:
        pod = self.pods.pop((namespace, name))
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        self._record("DELETED", pod, dict(pod["metadata"].get("labels") or {}))

    def send_raw(self, line: bytes) -> None:
        """Put an arbitrary line on every watch stream (corrupt-input tests)."""
        self.events.append((self.version, "RAW", {"raw": line.decode()}, {}))
        self._wake()

    def _store(self, kind: str, pod: dict[str, Any]) -> None:
        self.version += 1
        pod["metadata"]["resourceVersion"] = str(self.version)
        meta = pod["metadata"]
        old_labels = self._labels(pod)
        self.pods[(meta["namespace"], meta["name"])] = pod
        self._record(kind, pod, old_labels)

    def _record(self, kind: str, pod: dict[str, Any], old_labels: dict[str, str]) -> None:
        self.events.append((self.version, kind, copy.deepcopy(pod), old_labels))
        del self.events[:-KEEP_EVENTS]
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- handlers -------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.StreamResponse:
        ns, selector = request.match_info["ns"], request.query.get("labelSelector", "")
        self.requests.append(("GET", str(request.rel_url)))
        pods = [p for (n, _), p in sorted(self.pods.items()) if n == ns]
        pods = [p for p in pods if matches(p["metadata"].get("labels") or {}, selector)]
        if request.query.get("watch", "") in _GO_TRUE:
            try:
                return await self._watch(request, ns, selector, pods)
            except ConnectionResetError:  # the watcher went away
                return web.Response()
        body = {"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": str(self.version)}, "items": pods}  # fmt: skip
        return web.json_response(body)

    async def _watch(
        self, request: web.Request, ns: str, selector: str, pods: list[dict[str, Any]]
    ) -> web.StreamResponse:
        rsp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await rsp.prepare(request)
        since = request.query.get("resourceVersion")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(request.query.get("timeoutSeconds", "1800"))
        if since is None:
            for pod in pods:  # no version: the current state first, as ADDED
                await _send(rsp, {"type": "ADDED", "object": pod})
            position = self.version
        elif self.events and int(since) < self.events[0][0] - 1:
            gone = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                    "reason": "Expired", "message": "too old resource version"}  # fmt: skip
            await _send(rsp, {"type": "ERROR", "object": gone})
            return rsp
        else:
            position = int(since)
        while self._runner is not None and loop.time() < deadline:
            changed = self._changed
            for version, kind, pod, old_labels in [e for e in self.events if e[0] > position]:
                position = version
                if kind == "RAW":
                    await rsp.write(pod["raw"].encode() + b"\n")
                elif pod["metadata"]["namespace"] == ns:
                    seen_as = _as_seen(kind, pod, old_labels, selector)
                    if seen_as is not None:
                        await _send(rsp, {"type": seen_as, "object": pod})
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await changed.wait()
            except TimeoutError:
                break
        return rsp

    async def _patch(self, request: web.Request) -> web.Response:
        ns, name = request.match_info["ns"], request.match_info["name"]
        self.requests.append(("PATCH", request.content_type))
        if request.content_type not in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            return status(415, "UnsupportedMediaType", f"{request.content_type} not supported")
        if (ns, name) not in self.pods:
            return status(404, "NotFound", f'pods "{name}" not found')
        try:
            patch = json.loads(await request.read())
        except ValueError as exc:
            return status(400, "BadRequest", str(exc))
        self._store("MODIFIED", merge_patch(self.pods[(ns, name)], patch))
        return web.json_response(self.pods[(ns, name)])


def _as_seen(
    kind: str, pod: dict[str, Any], old_labels: dict[str, str], selector: str
) -> str | None:
    """What a watch with ``selector`` sees: objects entering or leaving it are ADDED/DELETED."""
    now = matches(pod["metadata"].get("labels") or {}, selector)
    before = matches(old_labels, selector) if kind == "MODIFIED" else now
    if kind != "MODIFIED" or now == before:
        return kind if now else None
    return "ADDED" if now else "DELETED"


async def _send(rsp: web.StreamResponse, event: dict[str, Any]) -> None:
    await rsp.write(json.dumps(event).encode() + b"\n")
