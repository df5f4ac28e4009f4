"""micro web at scale: 1,000 services x 3 nodes in etcd, live changes, and the reverse proxy.

    .venv/bin/python -m benchmarks.web                        # 1,000 x 3, 50 changes, 5 s loads
    .venv/bin/python -m benchmarks.web --services 200 --seconds 3 --json out.json

One run: a private etcd (Debian ``etcd-server``) on free loopback ports, ``--services`` x
``--nodes`` nodes registered through micro's etcd registry (64 at a time), a small real web
app (starlette on uvicorn) registered as ``go.micro.web.benchapp``, and ``micro web`` in its
own process over the same etcd. Then:

- ``data``: ``GET /_/services`` (the services page's data), the first request and the median
  of ``--data-runs`` more, from one keep-alive client;
- ``page``: the services page loaded in Debian's Chromium (Playwright, never a downloaded
  browser), each load in a fresh browser context (nothing cached): first contentful paint,
  and the time from navigation start until every service's row is in the DOM, and until
  the frame after that has been painted (recorded in the page by a MutationObserver, then
  ``requestAnimationFrame`` and a task after it, so the figure has no CDP round trip; it can
  run up to one frame late); the median of ``--page-loads``;
- ``live``: with the page open, a service registered, then deregistered, ``--changes`` times
  in all; each change timed from the start of the register/deregister call until the page's
  DOM shows it (``page.wait_for_selector`` on the row); p50 and p99;
- ``proxy``: GETs of the web app's page at ``--connections`` in flight for ``--seconds``,
  straight to the app, then through ``micro web``'s ``/benchapp/``: wrk (Debian ``wrk``)
  when installed, else an asyncio (aiohttp) load process. With 2+ CPUs (Linux) ``micro web``
  runs alone on CPU 0, the app and the load on CPU 1 (``--no-pin``: the scheduler decides).

Goals: data and the painted page under 300 ms; a change on the page within 1 s (p99); the
proxy at least 0.5x the direct throughput. A benchmark, not a test: it prints the figures and
whether each goal was met, and exits 0 unless a phase failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.gateway import free_port

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
APP = "benchapp"
NAMESPACE = "go.micro.web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip
ROW = '[data-testid="service-row"]'
GOALS = {"data_ms": 300.0, "page_ms": 300.0, "live_p99_ms": 1000.0, "proxy_ratio": 0.5}
PAGE_PROBE = """
(() => {
  const b = (window.__bench = { first: null, rows: null, frame: null, count: 0 });
  const want = %d;
  const seen = () => {
    const n = document.querySelectorAll('%s').length;
    if (n && b.first === null) b.first = performance.now();
    if (n >= want && b.rows === null) {
      b.rows = performance.now();
      b.count = n;
      // the next frame, then a task after it: its paint is done (at most a frame late)
      requestAnimationFrame(() => {
        const after = new MessageChannel();
        after.port1.onmessage = () => { b.frame = performance.now(); };
        after.port2.postMessage(null);
      });
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(seen);
  observer.observe(document, { childList: true, subtree: true });
})();
"""
APP_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>bench app</title></head><body>"
    "<h1>bench app</h1><p>A small page, as a web service behind micro web serves it.</p>"
    + "".join(f"<p>line {i}: some text to make a realistic small page</p>" for i in range(12))
    + "</body></html>"
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Progress:
    """``label: done/total`` on stderr, at most twice a second (one line, redrawn on a TTY)."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.started = time.perf_counter()
        self._shown = 0.0
        self._tty = sys.stderr.isatty()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._shown >= 0.5 or self.done == self.total:
            self._shown = now
            self._show()

    def _show(self) -> None:
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        line = f"  {self.label}: {self.done:,}/{self.total:,} ({rate:,.0f}/s)"
        if self._tty:
            print("\r" + line, end="\n" if self.done == self.total else "", file=sys.stderr)
            sys.stderr.flush()
        else:
            say(line)


def _pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile ``q`` (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _pinned(args: list[str], cpus: set[int] | None) -> list[str]:
    """``args`` run under ``taskset`` on ``cpus`` (None: as is). taskset, not a preexec_fn:
    forking after gRPC (the etcd client) started its threads makes it log warnings."""
    if cpus is None or shutil.which("taskset") is None:
        return args
    return ["taskset", "-c", ",".join(map(str, sorted(cpus))), *args]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO_")}
    paths = [str(ROOT / "src"), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra)
    return env


# -- the web app ----------------------------------------------------------------------------


def serve_app(port: int) -> None:
    """The web app behind the proxy: ``GET /`` answers a small HTML page."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(APP_PAGE)

    async def ping(request: Any) -> JSONResponse:
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/", page), Route("/ping", ping)])
    print(f"LISTENING 127.0.0.1:{port}", flush=True)
    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http="httptools"
    )


async def _aiohttp_load(url: str, connections: int, seconds: float) -> dict[str, Any]:
    import aiohttp

    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:

        async def worker(deadline: float, out: list[float] | None) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                async with http.get(url) as rsp:
                    await rsp.read()
                    if rsp.status != 200:
                        raise RuntimeError(f"{url}: {rsp.status}")
                if out is not None:
                    out.append(time.perf_counter() - t0)

        warm = time.perf_counter() + min(seconds, 1.0)
        await asyncio.gather(*(worker(warm, None) for _ in range(connections)))
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(deadline, latencies) for _ in range(connections)))
        wall = time.perf_counter() - started
    return {
        "rps": len(latencies) / wall,
        "p50_ms": _pct(latencies, 0.5) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "requests": len(latencies),
    }


def load_http(url: str, connections: int, seconds: float) -> None:
    """The asyncio load process (when wrk is missing): prints one JSON result line."""
    print(json.dumps(asyncio.run(_aiohttp_load(url, connections, seconds))), flush=True)


class Procs:
    """Child processes, each in its own process group, all stopped at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, args: list[str], env: dict[str, str], cpus: set[int] | None = None
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            _pinned(args, cpus), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
                raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}: {err}")
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:g}s")
            await asyncio.sleep(0.1)


# -- the registry -----------------------------------------------------------------------------


def _service(i: int, j: int, nodes: int) -> Any:
    from micro.registry import Endpoint, Node, Service, Value

    name = f"bench-svc-{i:04d}"
    request = Value("Request", "Request", [Value("name", "string"), Value("count", "int64")])
    response = Value("Response", "Response", [Value("msg", "string")])
    endpoints = [
        Endpoint(f"Svc{i}.Call", request, response, {"stream": "false"}),
        Endpoint(f"Svc{i}.List", request, response, {"stream": "true"}),
    ]
    node = Node(f"{name}-{j}", f"10.{i // 250}.{i % 250}.{j + 1}:{9000 + j}", {"j": str(j)})
    return Service(name, "1.0.0", endpoints=endpoints, nodes=[node])


async def fill(registry: Any, services: int, nodes: int, concurrency: int = 64) -> float:
    """Register ``services x nodes`` nodes, ``concurrency`` at a time; returns the seconds."""
    progress = Progress("registering nodes", services * nodes)
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(i: int, j: int) -> None:
        async with gate:
            await registry.register(_service(i, j, nodes))
            progress.step()

    await asyncio.gather(*(one(i, j) for i in range(services) for j in range(nodes)))
    return time.perf_counter() - started


# -- the phases -------------------------------------------------------------------------------


async def measure_data(base: str, runs: int, want: int) -> dict[str, Any]:
    """``GET /_/services``: the first request, then the median/p90/max of ``runs`` more."""
    import httpx

    times = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            rsp = await http.get("/_/services")
            times.append((time.perf_counter() - t0) * 1000)
            rsp.raise_for_status()
            count = len(rsp.json()["services"])
            if count < want:
                raise RuntimeError(f"/_/services lists {count} services, expected {want}+")
    warm = times[1:]
    return {
        "first_ms": times[0],
        "median_ms": statistics.median(warm),
        "p90_ms": _pct(warm, 0.9),
        "max_ms": max(warm),
        "bytes": len(rsp.content),
        "services": count,
    }


async def measure_page(browser: Any, url: str, loads: int, want: int) -> dict[str, Any]:
    """The services page in fresh contexts: first paint and every row painted (median)."""
    results = []
    for _ in range(loads):
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.add_init_script(PAGE_PROBE % (want, ROW))
            await page.goto(url)
            deadline = time.monotonic() + 60
            while not await page.evaluate("() => !!(window.__bench && window.__bench.frame)"):
                if time.monotonic() > deadline:  # (polled: wait_for_function evals, which
                    raise RuntimeError("the rows never appeared")  # the page's CSP forbids)
                await asyncio.sleep(0.01)
            got = await page.evaluate(
                """() => ({...window.__bench,
                    fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime
                        ?? null})"""
            )
            results.append(got)
        finally:
            await context.close()
    return {
        "loads": loads,
        "rows": results[-1]["count"],
        "fcp_ms": statistics.median(r["fcp"] for r in results if r["fcp"] is not None)
        if any(r["fcp"] is not None for r in results)
        else None,
        "first_row_ms": statistics.median(r["first"] for r in results),
        "all_rows_ms": statistics.median(r["rows"] for r in results),
        "painted_ms": statistics.median(r["frame"] for r in results),
        "painted_max_ms": max(r["frame"] for r in results),
    }


class EventLog:
    """``/_/events`` read beside the page: when each services snapshot arrived, so that a
    change's time splits into the server's part (registry -> event) and the page's."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.events: list[tuple[float, set[str]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> EventLog:
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _read(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.base, timeout=None) as http:
            async with http.stream("GET", "/_/events") as rsp:
                event, data = "", []
                async for line in rsp.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        if event == "services":
                            names = {s["name"] for s in json.loads("".join(data))["services"]}
                            self.events.append((time.perf_counter(), names))
                        event, data = "", []

    def seen(self, since: float, name: str, present: bool) -> float | None:
        """Seconds from ``since`` to the first event showing ``name`` (or its absence)."""
        for at, names in self.events:
            if at >= since and (name in names) == present:
                return at - since
        return None


async def measure_live(browser: Any, url: str, registry: Any, changes: int) -> dict[str, Any]:
    """Register/deregister services with the page open; time until its DOM shows each."""
    from micro.registry import Node, Service

    page = await browser.new_page()
    appear: list[float] = []
    disappear: list[float] = []
    server: list[float] = []
    try:
        await page.goto(url)
        await page.wait_for_selector(ROW)
        cdp = await page.context.new_cdp_session(page)
        await cdp.send("Performance.enable")
        before = await _metrics(cdp)
        async with EventLog(url.rstrip("/")) as log:
            progress = Progress("live changes", changes)
            for i in range(changes):
                name = f"bench-live-{i // 2:04d}"
                node = Node(f"{name}-0", f"10.255.0.{i % 250}:1")
                svc = Service(name, "1.0.0", nodes=[node])
                row = f'{ROW}[data-name="{name}"]'
                adding = i % 2 == 0
                t0 = time.perf_counter()
                if adding:
                    await registry.register(svc)
                    await page.wait_for_selector(row, state="attached", timeout=30_000)
                else:
                    await registry.deregister(svc)
                    await page.wait_for_selector(row, state="detached", timeout=30_000)
                (appear if adding else disappear).append((time.perf_counter() - t0) * 1000)
                event = log.seen(t0, name, adding)
                if event is not None:
                    server.append(event * 1000)
                progress.step()
        after = await _metrics(cdp)
    finally:
        await page.close()
    both = appear + disappear
    spent = {k: (after[k] - before[k]) * 1000 / len(both) for k in BROWSER_METRICS}
    return {
        "changes": len(both),
        "p50_ms": _pct(both, 0.5),
        "p99_ms": _pct(both, 0.99),
        "max_ms": max(both),
        "appear_p50_ms": _pct(appear, 0.5),
        "disappear_p50_ms": _pct(disappear, 0.5) if disappear else None,
        "event_p50_ms": _pct(server, 0.5) if server else None,
        "event_p99_ms": _pct(server, 0.99) if server else None,
        "browser_ms_per_change": spent,
    }


BROWSER_METRICS = {
    "ScriptDuration": "script",
    "RecalcStyleDuration": "style",
    "LayoutDuration": "layout",
    "TaskDuration": "all tasks",
}
"""Chromium's own counters (CDP ``Performance.getMetrics``, seconds), read around the
changes: where the page's time per change goes."""


async def _metrics(cdp: Any) -> dict[str, float]:
    got = await cdp.send("Performance.getMetrics")
    return {m["name"]: m["value"] for m in got["metrics"] if m["name"] in BROWSER_METRICS}


def measure_proxy(
    direct: str, proxied: str, opts: argparse.Namespace, cpus: set[int] | None
) -> dict[str, Any]:
    """Throughput straight to the app and through ``micro web``, same load, same CPUs."""
    use_wrk = shutil.which("wrk") is not None and not opts.no_wrk
    rows = {}
    for target, url in (("direct", direct), ("proxied", proxied)):
        if use_wrk:
            result = _wrk_get(url, opts.connections, opts.seconds, cpus)
        else:
            args = [PY, "-m", "benchmarks.web", "--load-http", url, str(opts.connections),
                    str(opts.seconds)]  # fmt: skip
            out = subprocess.run(
                _pinned(args, cpus), capture_output=True, env=_env(), cwd=ROOT,
                timeout=opts.seconds + 60, check=False,
            )  # fmt: skip
            if out.returncode:
                raise RuntimeError(out.stderr.decode()[-2000:])
            result = json.loads(out.stdout.decode().strip().splitlines()[-1])
        rows[target] = result
        say(
            f"  {target:8} {result['rps']:>9,.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
            f"p99 {result['p99_ms']:.2f} ms"
        )
    return {
        "tool": "wrk -t1" if use_wrk else "asyncio aiohttp",
        "connections": opts.connections,
        "seconds": opts.seconds,
        **{f"{t}_{k}": v for t, r in rows.items() for k, v in r.items()},
        "ratio": rows["proxied"]["rps"] / rows["direct"]["rps"],
    }


def _wrk_get(url: str, connections: int, seconds: float, cpus: set[int] | None) -> dict[str, Any]:
    """wrk GETs: a 1 s warm-up, then the measured run; p50/p99 from its latency table."""
    base = _pinned(["wrk", "-t1", f"-c{connections}"], cpus)
    subprocess.run([*base, "-d1s", url], capture_output=True, timeout=30, check=True)
    out = subprocess.run(
        [*base, f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        timeout=seconds + 30,
        check=True,
    ).stdout.decode()
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {
        m[0]: float(m[1]) * units[m[2]]
        for m in re.findall(r"^\s+(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if failed:
        raise RuntimeError(f"{url}: {failed.group(1)} failed responses")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None or "50" not in pct or "99" not in pct:
        raise RuntimeError(f"wrk's output not understood: {out[-500:]}")
    rps = float(found.group(1))
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"], "requests": int(rps * seconds)}


# -- the run ------------------------------------------------------------------------------------


async def _phase(name: str, run: Callable[[], Awaitable[Any]], out: dict[str, Any]) -> None:
    say(f"{name}...")
    started = time.perf_counter()
    try:
        out[name] = await run()
    except Exception as exc:  # one failed phase must not hide the others
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"  {name} failed: {exc}")
    say(f"  ({time.perf_counter() - started:.1f} s)")


async def run(opts: argparse.Namespace, etcd: str) -> dict[str, Any]:
    from micro.registry import Node, Service
    from micro.registry.etcd import EtcdRegistry

    pins = opts.pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
    web_cpus, other_cpus = ({0}, {1}) if pins else (None, None)
    out: dict[str, Any] = {
        "config": {
            "services": opts.services, "nodes": opts.nodes, "changes": opts.changes,
            "page_loads": opts.page_loads, "connections": opts.connections,
            "seconds": opts.seconds, "pin": bool(pins), "cpus": os.cpu_count(),
        },
        "goals": GOALS,
    }  # fmt: skip
    procs = Procs()
    registry = EtcdRegistry(address=etcd)
    await registry.start()
    try:
        say(f"registering {opts.services:,} services x {opts.nodes} nodes in etcd {etcd}")
        out["fill_s"] = await fill(registry, opts.services, opts.nodes)
        app_port, web_port = free_port(), free_port()
        app = procs.start(
            [PY, "-m", "benchmarks.web", "--serve-app", str(app_port)], _env(), other_cpus
        )
        web = procs.start(
            [PY, "-m", "micro.toolkit.web", "--address", f"127.0.0.1:{web_port}",
             "--no-access-log", "--log-level", "warning"],
            _env(MICRO_REGISTRY="etcd", MICRO_REGISTRY_ADDRESS=etcd),
            web_cpus,
        )  # fmt: skip
        direct, base = f"http://127.0.0.1:{app_port}/", f"http://127.0.0.1:{web_port}"
        await _wait_http(direct, app)
        node = Node(f"{APP}-0", f"127.0.0.1:{app_port}")
        await registry.register(Service(f"{NAMESPACE}.{APP}", "latest", nodes=[node]))
        await _wait_http(f"{base}/health", web)
        want = opts.services + 1  # and the web app
        say(f"micro web on {base}, the web app on {direct}")
        await _phase("data", lambda: measure_data(base, opts.data_runs, want), out)
        if opts.no_browser:
            say("page, live: skipped (--no-browser)")
        else:
            from playwright.async_api import async_playwright

            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
                )
                try:
                    page = lambda: measure_page(browser, f"{base}/", opts.page_loads, want)  # noqa: E731
                    await _phase("page", page, out)
                    live = lambda: measure_live(browser, f"{base}/", registry, opts.changes)  # noqa: E731
                    await _phase("live", live, out)
                finally:
                    await browser.close()
        say(f"proxy: {opts.connections} in flight, {opts.seconds:g} s each")
        proxied = f"{base}/{APP}/"
        await _phase(
            "proxy",
            lambda: asyncio.to_thread(measure_proxy, direct, proxied, opts, other_cpus),
            out,
        )
    finally:
        procs.stop()
        await registry.close()
    return out


def _fmt(value: Any, unit: str = " ms") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _met(value: float | None, goal: float, below: bool = True) -> str:
    if value is None:
        return "n/a"
    return "met" if (value < goal if below else value >= goal) else "MISSED"


def report(r: dict[str, Any]) -> str:
    c = r["config"]
    lines = [
        f"micro web: {c['services']:,} services x {c['nodes']} nodes in etcd "
        f"(registered in {r.get('fill_s', 0):.1f} s); {c['cpus']} CPUs, "
        f"pinned: {'yes' if c['pin'] else 'no'}",
        "",
        "| measure | value | goal |",
        "|---|---:|---|",
    ]
    data, page, live, proxy = (r.get(k, {}) for k in ("data", "page", "live", "proxy"))
    for name, part in (("data", data), ("page", page), ("live", live), ("proxy", proxy)):
        if "error" in part:
            lines.append(f"| {name} | failed: {part['error']} | |")
    if data and "error" not in data:
        lines += [
            f"| `GET /_/services` first request | {_fmt(data['first_ms'])} | |",
            f"| `GET /_/services` median (p90, max) of {c.get('data_runs', '')}".rstrip()
            + f" | {_fmt(data['median_ms'])} ({_fmt(data['p90_ms'])}, {_fmt(data['max_ms'])})"
            f" | < 300 ms: {_met(data['median_ms'], GOALS['data_ms'])} |",
            f"| `/_/services` size, services | {data['bytes']:,} B, {data['services']:,} | |",
        ]
    if page and "error" not in page:
        lines += [
            f"| page first contentful paint (median of {page['loads']}) | {_fmt(page['fcp_ms'])}"
            " | |",
            f"| page: first row in the DOM | {_fmt(page['first_row_ms'])} | |",
            f"| page: all {page['rows']:,} rows painted (median, max) | {_fmt(page['painted_ms'])} "
            f"({_fmt(page['painted_max_ms'])}) | < 300 ms: "
            f"{_met(page['painted_ms'], GOALS['page_ms'])} |",
        ]
    if live and "error" not in live:
        lines += [
            f"| change visible on the page, p50 / p99 / max ({live['changes']} changes) | "
            f"{_fmt(live['p50_ms'])} / {_fmt(live['p99_ms'])} / {_fmt(live['max_ms'])} | "
            f"p99 < 1 s: {_met(live['p99_ms'], GOALS['live_p99_ms'])} |",
            f"| appear p50 / disappear p50 | {_fmt(live['appear_p50_ms'])} / "
            f"{_fmt(live['disappear_p50_ms'])} | |",
            f"| of which registry -> `/_/events` event, p50 / p99 | "
            f"{_fmt(live['event_p50_ms'])} / {_fmt(live['event_p99_ms'])} | |",
            "| page's main thread per change: "
            + ", ".join(f"{BROWSER_METRICS[k]}" for k in BROWSER_METRICS)
            + " | "
            + " / ".join(_fmt(live["browser_ms_per_change"][k]) for k in BROWSER_METRICS)
            + " | |",
        ]
    if proxy and "error" not in proxy:
        lines += [
            f"| web app direct, {proxy['connections']} in flight ({proxy['tool']}) | "
            f"{proxy['direct_rps']:,.0f} req/s, p50 {_fmt(proxy['direct_p50_ms'])} | |",
            f"| through `micro web` `/{APP}/` | {proxy['proxied_rps']:,.0f} req/s, "
            f"p50 {_fmt(proxy['proxied_p50_ms'])} | |",
            f"| proxied / direct throughput | {proxy['ratio']:.2f}x | >= 0.5x: "
            f"{_met(proxy['ratio'], GOALS['proxy_ratio'], below=False)} |",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.web", description=__doc__.split("\n")[0])
    p.add_argument("--services", type=int, default=1000, help="services to register (1000)")
    p.add_argument("--nodes", type=int, default=3, help="nodes per service (3)")
    p.add_argument("--data-runs", type=int, default=20, help="timed /_/services requests (20)")
    p.add_argument("--page-loads", type=int, default=5, help="page loads to time (5)")
    p.add_argument("--changes", type=int, default=50, help="registry changes to time (50)")
    p.add_argument("--connections", type=int, default=32, help="proxy load in flight (32)")
    p.add_argument("--seconds", type=float, default=5.0, help="each proxy load run (5)")
    p.add_argument("--no-wrk", action="store_true", help="asyncio load even if wrk exists")
    p.add_argument("--no-browser", action="store_true", help="skip the page and live phases")
    p.add_argument(
        "--pin", action=argparse.BooleanOptionalAction, default=True,
        help="micro web on CPU 0, the app and the load on CPU 1 (default: on with 2+ CPUs)",
    )  # fmt: skip
    p.add_argument("--json", help="also write the figures here")
    p.add_argument("--serve-app", type=int, help=argparse.SUPPRESS)
    p.add_argument("--load-http", nargs=3, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.serve_app:
        serve_app(opts.serve_app)
        return 0
    if opts.load_http:
        url, c, s = opts.load_http
        load_http(url, int(c), float(s))
        return 0
    if min(opts.services, opts.nodes, opts.page_loads, opts.changes, opts.data_runs) < 1:
        p.error("--services, --nodes, --page-loads, --changes and --data-runs must be >= 1")
    from micro.testing.etcd import EtcdServer

    with EtcdServer() as etcd:
        say(f"etcd {etcd.address} in {etcd.dir}")
        result = asyncio.run(run(opts, etcd.address))
    result["config"]["data_runs"] = opts.data_runs
    print(report(result))
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))
    failed = [k for k in ("data", "page", "live", "proxy") if "error" in result.get(k, {})]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
