"""The Kubernetes registry: services as labels and annotations on the pods that run them.

go-plugins' layout (docs/registry-kubernetes.md; keys in :mod:`micro.registry._k8s_pods`): a
service registers by patching its own pod (``POD_NAME``/``POD_NAMESPACE`` from the downward
API), lookups list pods by label, and watches watch pods. Kubernetes itself is the liveness
check: a pod that dies is deleted (or leaves phase ``Running``) and its services go with it,
so register TTLs are not needed and are ignored. One pod carries one version of a service.

RBAC: the pod's service account needs ``get``, ``list``, ``watch`` and ``patch`` on ``pods``
in its namespace (``deploy/kubernetes/rbac.yaml``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import socket
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from micro.errors import RegistryError, ServiceNotFound
from micro.registry import Registry, Result, Service, group_by_version
from micro.registry._k8s_pods import LABEL_TYPE, SELECTOR_PREFIX, key_name, pod_services
from micro.registry._k8s_pods import register_patch as _patch
from micro.registry._watch import WatchQueue, diff, watch_queue

__all__ = ["KubernetesRegistry"]

log = logging.getLogger("micro.registry.kubernetes")

_SA_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_ID = "go.micro.registry"
_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError, ValueError)
_MERGE = "application/merge-patch+json"

PodKey = tuple[str, str]  # (pod name, service name)


class KubernetesRegistry(Registry):
    """Registry on the Kubernetes API (pods in one namespace).

    Args:
        address: the API server URL; default: in-cluster config when running in a pod,
            else the current kubeconfig context (``MICRO_REGISTRY_ADDRESS`` also works).
        namespace: default: the service account's namespace, else ``default`` (a service
            passes the ``registry_namespace`` setting, which reads ``POD_NAMESPACE``).
        pod_name: this process's pod (needed to register); default: the host name, which
            Kubernetes sets to the pod name (setting ``registry_pod_name``, ``POD_NAME``).
        token: a bearer token for ``address``.
        verify_tls: verify the API server's certificate.
        watch_timeout: seconds one watch request lasts before it is renewed.
    """

    name = "kubernetes"

    def __init__(
        self,
        *,
        address: str | Sequence[str] | None = None,
        namespace: str | None = None,
        pod_name: str | None = None,
        token: str | None = None,
        verify_tls: bool = True,
        watch_timeout: int = 300,
    ) -> None:
        first = (
            (address.split(",") if isinstance(address, str) else list(address))[0]
            if address
            else None
        )
        self.address = _url(first.strip()) if first else None
        self.namespace = namespace or _sa_namespace()
        self.pod_name = pod_name or socket.gethostname()  # a pod's hostname is its name
        self._token, self._verify, self.watch_timeout = token, verify_tls, watch_timeout
        self._api: client.ApiClient | None = None
        self._mine: dict[str, Service] = {}  # what this pod carries
        self._watchers: set[WatchQueue] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the API configuration (idempotent).

        Raises:
            RegistryError: no API server configured or reachable configuration.
        """
        if self._api is not None:
            return
        cfg = client.Configuration()
        try:
            if self.address:
                cfg.host = self.address
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            else:
                await config.load_kube_config(client_configuration=cfg)
        except (config.ConfigException, OSError) as exc:
            raise RegistryError(f"kubernetes registry: no API server: {exc}", id=_ID) from exc
        if self._token:
            cfg.api_key = {"authorization": self._token}
            cfg.api_key_prefix = {"authorization": "Bearer"}
        cfg.verify_ssl = self._verify
        self._api = client.ApiClient(cfg)

    async def close(self) -> None:
        for queue in list(self._watchers):
            queue.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        api, self._api = self._api, None
        if api is not None:
            with contextlib.suppress(*_ERRORS):
                await api.close()

    async def _core(self) -> Any:
        """CoreV1Api, typed loosely: raw responses (``_preload_content=False``) are used."""
        await self.start()
        return client.CoreV1Api(self._api)

    # -- registering ----------------------------------------------------------------------

    async def register(self, service: Service, *, ttl: float | None = None) -> None:
        """Put ``service`` on this pod (``ttl`` is ignored: the pod's life is the TTL)."""
        key_name(service.name)  # fail early on a name that cannot be a label
        async with self._lock:
            old = self._mine.get(service.name)
            nodes = {n.id: n for n in old.nodes} if old and old.version == service.version else {}
            nodes.update((n.id, n) for n in service.nodes)
            new = msgspec.structs.replace(service, nodes=list(nodes.values()))
            if new != old:
                await self._patch({service.name: new})
                self._mine[service.name] = new

    async def deregister(self, service: Service) -> None:
        async with self._lock:
            old = self._mine.get(service.name)
            if old is None:
                return
            gone = {n.id for n in service.nodes}
            left = [n for n in old.nodes if n.id not in gone]
            if len(left) == len(old.nodes):
                return
            new = msgspec.structs.replace(old, nodes=left) if left else None
            await self._patch({service.name: new})
            if new is None:
                del self._mine[service.name]
            else:
                self._mine[service.name] = new

    async def _patch(self, services: dict[str, Service | None]) -> None:
        if not self.pod_name:
            raise RegistryError("kubernetes registry: set POD_NAME to register", id=_ID)
        core = await self._core()
        try:
            await core.patch_namespaced_pod(
                self.pod_name, self.namespace, _patch(services), _content_type=_MERGE
            )
        except _ERRORS as exc:
            raise RegistryError(
                f"kubernetes registry: patch pod {self.pod_name}: {_why(exc)}"
            ) from exc

    # -- looking up -----------------------------------------------------------------------

    async def get_service(self, name: str) -> list[Service]:
        try:
            selector = f"{SELECTOR_PREFIX}{key_name(name)}=service"
        except ValueError:
            raise ServiceNotFound(f"service {name}: not found", id=_ID) from None
        _, pods = await self._list(selector)
        found = [svc for pod in pods if (svc := pod_services(pod).get(name)) is not None]
        if not found:
            raise ServiceNotFound(f"service {name}: not found", id=_ID)
        return group_by_version(found)

    async def list_services(self) -> list[Service]:
        _, pods = await self._list(f"{LABEL_TYPE}=service")
        names = {name for pod in pods for name in pod_services(pod)}
        return [Service(name) for name in sorted(names)]

    async def _list(self, selector: str) -> tuple[str | None, list[Any]]:
        """(resourceVersion, raw pods) matching a label selector."""
        core = await self._core()
        try:
            rsp = await core.list_namespaced_pod(
                self.namespace, label_selector=selector, _preload_content=False
            )
            body = json.loads(await rsp.read())
        except _ERRORS as exc:
            raise RegistryError(f"kubernetes registry: list pods: {_why(exc)}", id=_ID) from exc
        items = body.get("items") if isinstance(body, dict) else None
        version = (body.get("metadata") or {}).get("resourceVersion") if items is not None else None
        return version, items if isinstance(items, list) else []

    # -- watching -------------------------------------------------------------------------

    async def watch(self, service: str | None = None) -> AsyncGenerator[Result, None]:
        selector = f"{LABEL_TYPE}=service"
        if service is not None:
            selector = f"{SELECTOR_PREFIX}{key_name(service)}=service"
        follow = functools.partial(self._follow, selector, service)
        async with contextlib.aclosing(watch_queue(self._watchers, follow, self._tasks)) as results:
            async for result in results:
                yield result

    async def _follow(
        self,
        selector: str,
        only: str | None,
        queue: WatchQueue,
        ready: asyncio.Future[None],
    ) -> None:
        """List, then watch from that version; on any break list again and report the diff."""
        known: dict[PodKey, Service] | None = None
        failures = 0
        while True:
            try:
                version, pods = await self._list(selector)
                now = _index(pods, only)
                if known is not None:
                    for result in diff(known, now):
                        queue.put_nowait(result)
                known = now
                if not ready.done():
                    ready.set_result(None)
                failures = 0
                started = asyncio.get_running_loop().time()
                await self._stream(selector, only, version, known, queue)
                if asyncio.get_running_loop().time() - started < 1.0:
                    await asyncio.sleep(0.5)  # a stream that ends at once: do not spin
            except (RegistryError, *_ERRORS) as exc:
                failures += 1
                delay = min(5.0, 0.1 * 2**failures)
                log.warning("kubernetes registry: watch: %s; retry in %.1f s", _why(exc), delay)
                await asyncio.sleep(delay)

    async def _stream(
        self,
        selector: str,
        only: str | None,
        version: str | None,
        known: dict[PodKey, Service],
        queue: WatchQueue,
    ) -> None:
        core = await self._core()
        rsp = await core.list_namespaced_pod(
            self.namespace,
            label_selector=selector,
            watch=True,
            resource_version=version,
            timeout_seconds=self.watch_timeout,
            _preload_content=False,
        )
        async with rsp:
            while line := await rsp.content.readline():
                event = _event(line)
                if event is None:
                    continue
                kind, pod = event
                if kind == "ERROR":
                    return  # e.g. 410 Gone: list again
                pod_name = _pod_name(pod)
                services = {} if kind == "DELETED" else pod_services(pod)
                now = {(pod_name, n): s for n, s in services.items() if only in (None, n)}
                was = {k: v for k, v in known.items() if k[0] == pod_name}
                for result in diff(was, now):
                    queue.put_nowait(result)
                for key in was:
                    known.pop(key, None)
                known.update(now)


def _event(line: bytes) -> tuple[str, dict[str, Any]] | None:
    try:
        event = json.loads(line)
        kind, pod = event["type"], event["object"]
        if not isinstance(kind, str) or not isinstance(pod, dict):
            raise TypeError("not an event")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("kubernetes registry: skipped a malformed watch event: %s", exc)
        return None
    return kind, pod


def _index(pods: list[Any], only: str | None) -> dict[PodKey, Service]:
    out: dict[PodKey, Service] = {}
    for pod in pods:
        name = _pod_name(pod)
        for svc_name, svc in pod_services(pod).items():
            if only in (None, svc_name):
                out[(name, svc_name)] = svc
    return out


def _pod_name(pod: Any) -> str:
    meta = pod.get("metadata") if isinstance(pod, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def _why(exc: BaseException) -> str:
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return str(exc) or type(exc).__name__


def _url(address: str) -> str:
    return address if "://" in address else f"http://{address}"


def _sa_namespace() -> str:
    try:
        return _SA_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"
