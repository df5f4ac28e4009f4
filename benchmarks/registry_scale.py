"""Service discovery at scale: 1,000 services x 10 nodes in a private etcd.

    .venv/bin/python -m benchmarks.registry_scale                   # defaults below
    .venv/bin/python -m benchmarks.registry_scale --services 200 --nodes 5 --json out.json

Starts its own etcd (Debian ``etcd-server``) on free loopback ports in a temp dir, registers
``services x nodes`` nodes with a TTL lease each, then measures:

- ``list``: ``list_services()`` over everything (median of 5), and one ``get_service``;
- ``watch``: how long from the start of a register/deregister call until a watching client's
  ``RegistrySelector`` cache shows the change (median and p99 over ``--changes``; polled
  through the public ``select`` every 0.2 ms, so the figures include up to that much);
- ``cached lookup``: ``select()`` + ``next()`` on a warm cache, per call, with a count of
  registry calls made meanwhile (it must be 0: the call path never touches the network).

Goals: a watcher sees a change within 100 ms median; a cached lookup costs under
20 us. A benchmark, not a test: it prints the figures and whether each goal was met, and exits
non-zero only when the cached lookup touched the registry.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from typing import Any

from micro.errors import NoneAvailable
from micro.registry import Node, Service
from micro.registry.etcd import EtcdRegistry
from micro.selector.cache import RegistrySelector
from micro.testing.etcd import EtcdServer


class CountingRegistry(EtcdRegistry):
    """An EtcdRegistry that counts the lookups made through it."""

    calls = 0

    async def get_service(self, name: str) -> list[Service]:
        self.calls += 1
        return await super().get_service(name)

    async def list_services(self) -> list[Service]:
        self.calls += 1
        return await super().list_services()


def _service(i: int, j: int) -> Service:
    node = Node(f"svc-{i:04d}-node-{j:02d}", f"10.0.{i % 250}.{j + 1}:{8000 + i}", {"i": str(i)})
    return Service(f"svc-{i:04d}", "1.0.0", nodes=[node])


async def _fill(registry: EtcdRegistry, services: int, nodes: int, ttl: int) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(64)

    async def one(i: int, j: int) -> None:
        async with gate:
            await registry.register(_service(i, j), ttl=ttl)

    await asyncio.gather(*(one(i, j) for i in range(services) for j in range(nodes)))
    return time.perf_counter() - started


async def _timed(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def _node_ids(selector: RegistrySelector, name: str) -> set[str]:
    nxt = await selector.select(name)
    ids = set()
    for _ in range(100):
        try:
            ids.add(nxt().id)
        except NoneAvailable:  # the walk is over: every node was offered once
            break
    return ids


async def _watch_latency(
    writer: EtcdRegistry, selector: RegistrySelector, name: str, changes: int
) -> list[float]:
    latencies = []
    for k in range(changes):
        extra = Service(name, "1.0.0", nodes=[Node(f"{name}-extra-{k // 2}", "10.9.9.9:1")])
        adding = k % 2 == 0
        started = time.perf_counter()
        if adding:
            await writer.register(extra, ttl=60)
        else:
            await writer.deregister(extra)
        node_id = extra.nodes[0].id
        while (node_id in await _node_ids(selector, name)) != adding:
            if time.perf_counter() - started > 5:
                raise RuntimeError(f"the watcher never saw change {k}")
            await asyncio.sleep(0.0002)
        latencies.append(time.perf_counter() - started)
    return latencies


async def _lookup_cost(selector: RegistrySelector, name: str, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        (await selector.select(name))()
    return (time.perf_counter() - started) / count


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace, address: str) -> dict[str, Any]:
    out: dict[str, Any] = {"services": args.services, "nodes": args.nodes}
    async with EtcdRegistry(address=address, timeout=10) as writer:
        out["register_s"] = await _fill(writer, args.services, args.nodes, ttl=120)
        listed = await writer.list_services()
        assert len(listed) == args.services, len(listed)
        out["list_s"] = await _timed(writer.list_services, 5)
        out["get_service_s"] = await _timed(
            lambda: writer.get_service(f"svc-{args.services // 2:04d}"), 20
        )
        reader = CountingRegistry(address=address, timeout=10)
        selector = RegistrySelector(reader)
        try:
            await reader.start()
            await selector.start()
            name = f"svc-{args.services // 2:04d}"
            await selector.select(name)  # warm: one get_service, then the watch keeps it
            await asyncio.sleep(0.2)
            latencies = await _watch_latency(writer, selector, name, args.changes)
            out["watch_median_s"] = statistics.median(latencies)
            out["watch_p99_s"] = _pct(latencies, 0.99)
            out["watch_max_s"] = max(latencies)
            before = reader.calls
            await _lookup_cost(selector, name, 1000)  # warm the code path
            out["lookup_s"] = await _lookup_cost(selector, name, args.lookups)
            out["lookup_registry_calls"] = reader.calls - before
        finally:
            await selector.close()
            await reader.close()
    return out


def report(r: dict[str, Any]) -> str:
    us, ms = 1e6, 1e3
    lines = [
        f"etcd registry at scale: {r['services']} services x {r['nodes']} nodes "
        f"= {r['services'] * r['nodes']} keys with leases",
        f"  register all (64 in flight)   {r['register_s']:8.2f} s",
        f"  list_services (all)            {r['list_s'] * ms:8.1f} ms",
        f"  get_service (10 nodes)         {r['get_service_s'] * ms:8.2f} ms",
        f"  watcher sees a change, median  {r['watch_median_s'] * ms:8.2f} ms   (goal < 100 ms: "
        f"{'met' if r['watch_median_s'] < 0.1 else 'MISSED'})",
        f"  watcher sees a change, p99     {r['watch_p99_s'] * ms:8.2f} ms   "
        f"(max {r['watch_max_s'] * ms:.2f} ms)",
        f"  cached lookup (select + next)  {r['lookup_s'] * us:8.2f} us   (goal < 20 us: "
        f"{'met' if r['lookup_s'] < 20e-6 else 'MISSED'}); registry calls meanwhile: "
        f"{r['lookup_registry_calls']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.registry_scale")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    with EtcdServer() as etcd:
        print(f"etcd {etcd.address} in {etcd.dir}", file=sys.stderr)
        result = asyncio.run(run(args, etcd.address))
    print(report(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return 1 if result["lookup_registry_calls"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
