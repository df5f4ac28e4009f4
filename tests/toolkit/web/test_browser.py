"""The dashboard in a real browser: Debian's Chromium (Playwright) against a real
``micro web`` process and real service processes over mDNS on loopback.

One browser, one dashboard and one set of services serve the whole module (fast: the
services start in parallel while Chromium launches); each test opens fresh pages.
``MICRO_WEB_SCREENSHOTS=docs/web`` makes the tests save the docs' screenshots on the way.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Route, ViewportSize

from tests.toolkit.web.browser import PHONE, SHOTS, Browser, Page, launch, shot
from tests.toolkit.web.harness import DATA_SERVICE, GREETER, base_env, records, unique

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).absolute().parents[3]
PY = sys.executable
WEBAPP = Path(__file__).absolute().with_name("webapp.py")
TOKEN = "s3cret-token"
EVIL = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2;alert(2)</script>'


def name(prefix: str, readable: str) -> str:
    """A name of its own for this run; a readable fixed one when taking the docs' screenshots."""
    return readable if SHOTS else unique(prefix)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    """Processes of the module, stopped (SIGTERM, then kill) at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.tmp / f"{name}.log").open("wb") as log:  # the child keeps its own copy
            proc = subprocess.Popen(
                [PY, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=base_env(**(env or {})),
                cwd=ROOT,
            )
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:  # all at once: their graceful stops overlap
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            self.stop(proc)


@dataclass
class Env:
    """What the module's tests share."""

    url: str  # the dashboard
    ns: str  # the web namespace
    data: str  # the data service's name (greeter, Calc, Ticker, a subscriber)
    topic: str  # the data service's subscriber topic
    record: Path  # what the data service saw
    web_name: str  # the web app's short name: /<web_name>/ proxies to it
    auth_url: str  # a second dashboard, with auth on (token TOKEN)
    procs: Procs
    browser: Browser


def wait_until(check: Callable[[], object], timeout: float = 20.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def names(url: str) -> set[str]:
    try:
        return {s["name"] for s in httpx.get(url + "/_/services", timeout=2).json()["services"]}
    except (httpx.HTTPError, ValueError, KeyError):
        return set()


def start_dashboard(procs: Procs, ns: str, *flags: str) -> str:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = procs.start(
        f"web-{port}",
        "-m",
        "micro.toolkit.web",
        "--address",
        f"127.0.0.1:{port}",
        "--namespace",
        ns,
        "--stats-interval",
        "0.5",
        "--no-access-log",
        *flags,
    )

    def up() -> bool:
        assert proc.poll() is None, procs.log(f"web-{port}")
        try:
            return httpx.get(url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, what="micro web")
    return url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("browser")
    procs = Procs(tmp)
    ns = name("web", "go.micro.web")
    data, topic = name("data", "go.micro.srv.demo"), name("events", "demo.events")
    record = tmp / "record.jsonl"
    try:
        procs.start(
            "data",
            str(DATA_SERVICE),
            "--server_name",
            data,
            "--record",
            str(record),
            "--topic",
            topic,
        )
        web_name = name("app", "hello")
        procs.start("webapp", str(WEBAPP), "--name", web_name, "--namespace", ns)
        url = start_dashboard(procs, ns)
        auth_url = start_dashboard(procs, ns, "--auth-tokens", TOKEN)
        with launch() as browser:
            wanted = {data, f"{ns}.{web_name}"}
            wait_until(lambda: wanted <= names(url), what="the services in the dashboard")
            yield Env(url, ns, data, topic, record, web_name, auth_url, procs, browser)
    finally:
        procs.stop_all()


@pytest.fixture
def browser(site: Env) -> Iterator[Browser]:
    yield site.browser
    site.browser.close_pages()


def open_page(
    site: Env,
    path: str,
    base: str = "",
    viewport: ViewportSize | None = None,
    dark: bool = False,
) -> Page:
    """A fresh page of the dashboard (``base``: another one) at ``path``."""
    page = site.browser.page(base or site.url, viewport=viewport, dark=dark)
    page.page.goto(path)
    return page


def row(name: str) -> str:
    return f'[data-testid="service-row"][data-name="{name}"]'


# -- services page -------------------------------------------------------------------------


def test_services_page_is_live(site: Env, browser: Browser) -> None:
    page = open_page(site, "/")
    p = page.page
    p.wait_for_selector(row(site.data))
    p.evaluate("window.__same_page = true")  # gone if the page reloads
    shot(page, "services")

    name = unique("live")
    proc = site.procs.start(name, str(GREETER), "--server_name", name)
    # Registered (the dashboard's own list has it) -> in the page within a second.
    wait_until(lambda: name in names(site.url), what=f"{name} registered")
    t0 = time.monotonic()
    p.wait_for_selector(row(name), timeout=3000)
    appeared = time.monotonic() - t0
    assert appeared < 1.0, f"{name} took {appeared:.2f}s to appear"

    Procs.stop(proc)  # SIGTERM: the service deregisters before it exits
    t0 = time.monotonic()
    p.wait_for_selector(row(name), state="detached", timeout=3000)
    gone = time.monotonic() - t0
    assert gone < 1.0, f"{name} took {gone:.2f}s to leave"
    assert p.evaluate("window.__same_page") is True
    page.clean()


def test_filter_box(site: Env, browser: Browser) -> None:
    page = open_page(site, "/")
    p = page.page
    p.wait_for_selector(row(site.data))
    p.keyboard.press("/")
    assert p.evaluate("document.activeElement.dataset.testid") == "filter"
    p.keyboard.type(site.data)
    rows = p.locator('[data-testid="service-row"]')
    assert [r.get_attribute("data-name") for r in rows.all()] == [site.data]
    assert re.fullmatch(r"1 of \d+", p.text_content('[data-testid="service-count"]') or "")
    p.keyboard.type("-nothing-like-this")
    p.wait_for_selector('[data-testid="empty"]')
    p.keyboard.press("Escape")
    p.wait_for_selector(row(site.data))
    page.clean()


def test_rows_come_with_the_page_before_the_event_stream(
    site: Env, browser: Browser, tmp_path: Path
) -> None:
    """The page draws the services it was served with (its data block) while the event
    stream and /_/services answer nothing but 503; once the stream answers, the page goes
    live. A name that would end the data block as it is shows as text, and runs nothing."""
    tricky = f"{unique('block')}</script><script>window.__pwned=3</script>"
    registrar = register(site, tmp_path, "block", plain_service(tricky, "t-1"))
    try:
        wait_until(lambda: tricky in names(site.url), what="the service with </script>")
        page = site.browser.page(site.url)
        p = page.page
        blocked = {"on": True}
        refused: list[str] = []

        def gate(route: Route) -> None:
            if blocked["on"]:
                refused.append(route.request.url)
                route.fulfill(status=503, body="held back by the test")
            else:
                route.continue_()

        p.route("**/_/events", gate)
        p.route("**/_/services", gate)
        p.goto("/")
        p.wait_for_selector(row(site.data))
        p.wait_for_selector(row(tricky))
        assert p.text_content(f'{row(tricky)} [data-testid="service-link"]') == tricky
        p.wait_for_selector('[data-testid="live"][data-state="error"]')  # a stream refused
        assert refused
        assert all("/_/events" in url for url in refused)  # and no /_/services fallback
        assert p.evaluate("window.__pwned") is None

        blocked["on"] = False  # the stream's next try gets through: the page goes live
        p.wait_for_selector('[data-testid="live"][data-state="open"]', timeout=15_000)
        late = unique("late")
        proc = site.procs.start(late, str(GREETER), "--server_name", late)
        try:
            p.wait_for_selector(row(late), timeout=15_000)
        finally:
            Procs.stop(proc)
        p.wait_for_selector(row(late), state="detached", timeout=15_000)
        assert p.evaluate("window.__pwned") is None
        assert not page.dialogs
        # (the browser logs the refused streams on the console: the test provoked those)
        assert not [e for e in page.errors if e.startswith("page error")]
    finally:
        Procs.stop(registrar)


GROUPS = """() => Array.from(document.querySelectorAll("table.services tbody"),
    (g) => Array.from(g.children, (tr) => tr.dataset.name))"""
ROWS = "Array.from(document.querySelectorAll('[data-testid=service-row]'))"


def test_row_groups_follow_big_changes(site: Env, browser: Browser) -> None:
    """With hundreds of services the rows sit in row groups (tbody) of at most 100 rows,
    none empty, in name order across them; a filter and its clearing, and a snapshot that
    drops and adds a hundred services, keep that and keep the row elements of the services
    that stay. The event stream is the test's own here (synthetic snapshots)."""
    page = site.browser.page(site.url)
    p = page.page
    want: dict[str, list[dict[str, object]]] = {"snapshot": []}  # sent at each (re)connection

    def summary(name: str) -> dict[str, object]:
        return {"name": name, "versions": ["1"], "nodes": 1, "endpoints": 1}

    def stream(route: Route) -> None:
        data = json.dumps({"services": want["snapshot"], "web": []})
        body = f"retry: 100\nevent: services\ndata: {data}\n\n"
        route.fulfill(status=200, headers={"content-type": "text/event-stream"}, body=body)

    def shown() -> list[str]:
        return list(p.evaluate(f"() => {ROWS}.map((tr) => tr.dataset.name)"))

    def check(names: list[str]) -> None:
        wait_until(lambda: shown() == names, what=f"{len(names)} rows in order")
        groups = p.evaluate(GROUPS)
        assert [n for g in groups for n in g] == names
        assert all(1 <= len(g) <= 100 for g in groups), [len(g) for g in groups]

    first = [f"svc-{i:03d}" for i in range(260)]
    want["snapshot"] = [summary(n) for n in first]
    p.route("**/_/events", stream)
    p.goto("/")
    check(first)
    assert len(p.evaluate(GROUPS)) >= 3
    p.evaluate(f"() => {ROWS}.forEach((tr) => {{ tr.__tag = tr.dataset.name; }})")
    tags = f"() => {ROWS}.map((tr) => tr.__tag || null)"

    p.fill('[data-testid="filter"]', "svc-13")
    check([f"svc-13{i}" for i in range(10)])
    p.press('[data-testid="filter"]', "Escape")
    check(first)
    assert p.evaluate(tags) == first  # the same row elements, back in place

    second = [f"svc-{i:03d}" for i in range(100, 260)] + [f"svc-{i:03d}" for i in range(300, 420)]
    want["snapshot"] = [summary(n) for n in second]
    check(second)
    assert p.evaluate(tags)[:160] == first[100:]
    assert p.evaluate(tags)[160:] == [None] * 120
    page.clean()


def plain_service(name: str, node: str) -> dict[str, object]:
    """go-micro registry JSON of a service with one endpoint and the node ``node``."""
    return {
        "name": name,
        "version": "1.0.0",
        "metadata": {},
        "endpoints": [{"name": "Keyed.Call", "request": None, "response": None, "metadata": {}}],
        "nodes": [{"id": node, "address": "127.0.0.1:9", "metadata": {}}],
    }


def register(
    site: Env, tmp: Path, label: str, *services: dict[str, object]
) -> subprocess.Popen[bytes]:
    """A process holding ``services`` registered until it is stopped (it deregisters them)."""
    (tmp / f"{label}.json").write_text(json.dumps(list(services)))
    return site.procs.start(
        label, "-m", "tests.toolkit.web.browser", "register", str(tmp / f"{label}.json")
    )


def test_a_change_redraws_only_its_row(site: Env, browser: Browser, tmp_path: Path) -> None:
    """Rows are kept by service name: an event adds, updates or removes the rows of the
    services that changed, in their sorted place, and leaves every other row element as it
    was, filter or not; the filter shows and hides rows without making new ones."""
    page = open_page(site, "/")
    p = page.page
    prefix = unique("keyed")
    b, c, d = f"{prefix}-b", f"{prefix}-c", f"{prefix}-d"
    mark = "([sel, tag]) => { document.querySelector(sel).__tag = tag; }"
    tag = "(sel) => document.querySelector(sel).__tag || null"
    shown = p.locator('[data-testid="service-row"]')

    p.wait_for_selector(row(site.data))
    p.evaluate(mark, [row(site.data), "data"])
    first = register(site, tmp_path, "keyed-bd", plain_service(b, "b-1"), plain_service(d, "d-1"))
    p.fill('[data-testid="filter"]', prefix)  # the data service's row leaves the table
    p.wait_for_selector(row(d))
    assert [r.get_attribute("data-name") for r in shown.all()] == [b, d]
    p.evaluate(mark, [row(b), "b"])
    p.evaluate(mark, [row(d), "d"])
    p.wait_for_selector(f"{row(b)}.flash", state="detached")  # new rows flash for a moment

    # A service added while the filter is on: in its sorted place, flashed; b and d untouched.
    second = register(site, tmp_path, "keyed-c1", plain_service(c, "c-1"))
    p.wait_for_selector(f"{row(c)}.flash", state="attached")
    assert [r.get_attribute("data-name") for r in shown.all()] == [b, c, d]
    assert (p.evaluate(tag, row(b)), p.evaluate(tag, row(d))) == ("b", "d")
    assert p.locator(f"{row(b)}.flash, {row(d)}.flash").count() == 0
    assert re.fullmatch(r"3 of \d+", p.text_content('[data-testid="service-count"]') or "")
    p.evaluate(mark, [row(c), "c"])

    # A second node of c: its node count changes in the same row element.
    third = register(site, tmp_path, "keyed-c2", plain_service(c, "c-2"))
    p.wait_for_selector(f'{row(c)} [data-testid="service-nodes"]:text-is("2")')
    assert p.evaluate(tag, row(c)) == "c"

    # b and d deregister: their rows go, c's stays the same element.
    Procs.stop(first)
    p.wait_for_selector(row(b), state="detached")
    p.wait_for_selector(row(d), state="detached")
    assert [r.get_attribute("data-name") for r in shown.all()] == [c]
    assert p.evaluate(tag, row(c)) == "c"

    # Clearing the filter brings back the very row element the data service had.
    p.press('[data-testid="filter"]', "Escape")
    p.wait_for_selector(row(site.data))
    assert p.evaluate(tag, row(site.data)) == "data"
    assert p.evaluate(tag, row(c)) == "c"
    for proc in (second, third):
        Procs.stop(proc)
    p.wait_for_selector(row(c), state="detached")
    page.clean()


def test_phone_width_and_dark_mode(site: Env, browser: Browser) -> None:
    phone = open_page(site, "/", viewport=PHONE)
    phone.page.wait_for_selector(row(site.data))
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(phone, "services-phone", full_page=False)

    light = open_page(site, f"/registry?service={site.data}")
    dark = open_page(site, f"/registry?service={site.data}", dark=True)
    bg = "getComputedStyle(document.body).backgroundColor"
    for page in (light, dark):
        page.page.wait_for_selector('[data-testid="node-row"]')
    assert light.page.evaluate(bg) != dark.page.evaluate(bg)
    dark.page.wait_for_selector('[data-testid="chart"]')
    shot(dark, "service-dark")
    phone.clean()
    dark.clean()


# -- service page --------------------------------------------------------------------------


def test_service_page(site: Env, browser: Browser) -> None:
    page = open_page(site, f"/registry?service={site.data}")
    p = page.page
    assert p.text_content('[data-testid="service-name"]') == site.data
    p.wait_for_selector('[data-testid="node-row"]')
    p.wait_for_selector('[data-testid="node-health"].ok')
    add = p.locator('[data-testid="endpoint"][data-name="Calc.Add"]')
    assert add.locator('[data-testid="request-tree"] [data-field="a"]').count() == 1
    assert p.locator(f'[data-testid="subscriber-row"][data-topic="{site.topic}"]').count() == 1
    # Stats are polled every 0.5 s: the charts get a few samples.
    p.wait_for_selector('[data-chart="memory"] polyline', state="attached", timeout=5000)
    # every Debug.Stats field is listed, the ones added after go-micro v1's included
    stats = p.locator('[data-testid="node-stats"]').first
    stats.locator('[data-stat="latency_p99_us"]').wait_for(timeout=5000)
    listed = stats.locator("dt").all_text_contents()
    assert {"memory", "requests", "in_flight", "latency_p50_us", "latency_p99_us"} <= set(listed)
    assert int(stats.locator('[data-stat="threads"]').text_content() or "0") >= 1
    shot(page, "service")
    page.clean()


def test_a_page_back_from_the_history_cache_is_live_again(site: Env, browser: Browser) -> None:
    # Playwright's Chromium keeps no back/forward cache, so the page is sent the events a
    # browser sends when it keeps the page (pagehide) and shows it again (pageshow)
    page = open_page(site, f"/registry?service={site.data}")
    p = page.page
    p.wait_for_selector('[data-testid="live"][data-state="open"]')
    p.evaluate(
        """() => {
        window.__opened = 0;
        window.EventSource = class extends window.EventSource {
          constructor(...args) { super(...args); window.__opened += 1; }
        };
        const event = (type) => new PageTransitionEvent(type, { persisted: true });
        window.dispatchEvent(event("pagehide"));
        window.dispatchEvent(event("pageshow"));
      }"""
    )
    p.wait_for_function("window.__opened === 1", timeout=5000)  # its event stream again
    p.wait_for_selector('[data-testid="live"][data-state="open"]')
    page.clean()


# -- call page -----------------------------------------------------------------------------


def call_page(site: Env, endpoint: str) -> Page:
    page = open_page(site, f"/call?service={site.data}&endpoint={endpoint}")
    page.page.wait_for_selector('[data-testid="call-form"] [data-path]')
    return page


def test_call_form_from_a_typed_endpoint(site: Env, browser: Browser) -> None:
    page = call_page(site, "Calc.Add")
    p = page.page
    p.fill('[data-path="a"]', "2")
    p.fill('[data-path="b"]', "3")
    p.fill('[data-path="scale"]', "1.5")
    p.check('[data-path="negate"]')
    # The raw JSON view shows the same request and comes back to the form intact.
    p.check('[data-testid="call-raw-toggle"]')
    assert json.loads(p.input_value('[data-testid="call-raw"]')) == {
        "a": 2,
        "b": 3,
        "scale": 1.5,
        "negate": True,
    }
    p.fill('[data-testid="call-raw"]', '{"a": 4, "b": 3, "scale": 1.5, "negate": true}')
    p.uncheck('[data-testid="call-raw-toggle"]')
    assert p.input_value('[data-path="a"]') == "4"
    p.click('[data-testid="call-submit"]')
    p.wait_for_selector('[data-testid="call-result"]')
    assert json.loads(p.text_content('[data-testid="call-result"]') or "") == {"total": -10.5}
    assert f"node {site.data}-" in (p.text_content('[data-testid="call-node"]') or "")
    assert re.fullmatch(r"[\d.]+ (ms|s)", p.text_content('[data-testid="call-duration"]') or "")
    shot(page, "call")
    page.clean()


def test_call_validation_error_shows_the_field(site: Env, browser: Browser) -> None:
    page = call_page(site, "Calc.Add")
    p = page.page
    p.fill('[data-path="b"]', "3")  # "a" is required and left empty
    p.click('[data-testid="call-submit"]')
    p.wait_for_selector('[data-testid="call-error"]')
    assert p.text_content('[data-testid="call-error"] [data-testid="error-code"]') == "400"
    p.wait_for_selector('[data-path="a"][aria-invalid="true"]')
    assert p.locator('[aria-invalid="true"]').count() == 1
    assert p.evaluate("document.activeElement.dataset.path") == "a"
    shot(page, "call-error")
    page.clean()


def test_stream_shows_messages_and_cancel_stops_it(site: Env, browser: Browser) -> None:
    page = call_page(site, "Ticker.Ticks")
    p = page.page
    p.fill('[data-path="to"]', "3")
    p.click('[data-testid="call-submit"]')
    p.wait_for_selector('[data-testid="stream-status"][data-state="ended"]')
    texts = [
        json.loads(m.text_content() or "")
        for m in p.locator('[data-testid="stream-message"] pre').all()
    ]
    assert texts == [{"n": 1}, {"n": 2}, {"n": 3}]

    p.fill('[data-path="to"]', "100000")
    p.fill('[data-path="delay"]', "0.05")
    p.click('[data-testid="call-submit"]')
    p.wait_for_selector('[data-testid="stream-message"] >> nth=4')
    shot(page, "call-stream")
    p.click('[data-testid="call-cancel"]')
    p.wait_for_selector('[data-testid="stream-status"][data-state="cancelled"]')
    shown = p.locator('[data-testid="stream-message"]').count()
    # The service saw the cancel: its generator ended there.
    wait_until(lambda: any("cancelled" in r for r in records(site.record)), 10, "the cancel")
    time.sleep(0.3)
    assert p.locator('[data-testid="stream-message"]').count() == shown
    page.clean()


# -- publish page --------------------------------------------------------------------------


def test_publish_reaches_a_subscriber_service(site: Env, browser: Browser) -> None:
    page = open_page(site, f"/publish?topic={site.topic}")
    p = page.page
    assert p.input_value('[data-testid="publish-topic"]') == site.topic
    p.fill('[data-testid="publish-body"]', '{"name": "John"')
    assert p.text_content('[data-testid="publish-body-error"]')
    p.fill('[data-testid="publish-body"]', '{"name": "John", "n": 1}')
    p.click('[data-testid="publish-submit"]')
    p.wait_for_selector('[data-testid="publish-result"]')
    wait_until(lambda: {"event": {"name": "John", "n": 1}} in records(site.record), 10, "the event")
    page.clean()


def test_topic_tail_shows_an_event_from_another_process(site: Env, browser: Browser) -> None:
    topic = name("tail", "demo.news")
    page = open_page(site, f"/publish?topic={topic}")
    p = page.page
    p.click('[data-testid="tail-toggle"]')
    p.wait_for_selector('[data-testid="tail-status"][data-state="open"]')
    # The subscription is registered once the SSE stream is open; publish from a CLI process.
    out = subprocess.run(
        [PY, "-m", "micro.toolkit.cli", "publish", topic, '{"from": "cli", "n": 7}'],
        env=base_env(),
        cwd=ROOT,
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    p.wait_for_selector('[data-testid="tail-message"]')
    body = p.text_content('[data-testid="tail-message"] pre') or ""
    assert json.loads(body) == {"from": "cli", "n": 7}
    # One more from the page itself: listed first (newest on top).
    p.fill('[data-testid="publish-body"]', '{"from": "page"}')
    p.click('[data-testid="publish-submit"]')
    p.wait_for_selector('[data-testid="tail-message"] >> nth=1')
    first = p.locator('[data-testid="tail-message"] pre').first.text_content() or ""
    assert json.loads(first) == {"from": "page"}
    shot(page, "publish")
    p.click('[data-testid="tail-toggle"]')
    p.wait_for_selector('[data-testid="tail-status"][data-state="stopped"]')
    page.clean()


# -- terminal ------------------------------------------------------------------------------


def run_line(p: object, line: str, n: int) -> str:
    from playwright.sync_api import Page as PwPage

    assert isinstance(p, PwPage)
    p.fill('[data-testid="terminal-input"]', line)
    p.press('[data-testid="terminal-input"]', "Enter")
    # (no wait_for_function: a string predicate is eval(), which the page's CSP refuses)
    p.wait_for_selector(f'[data-testid="terminal-result"] >> nth={n - 1}')
    return p.locator('[data-testid="terminal-result"]').nth(n - 1).text_content() or ""


def test_terminal_runs_list_and_call(site: Env, browser: Browser) -> None:
    page = open_page(site, "/terminal")
    p = page.page
    assert p.evaluate("document.activeElement.dataset.testid") == "terminal-input"
    assert site.data in run_line(p, "list services", 1)
    # JSON goes as typed, without quotes as in go-micro's shell, or in single quotes.
    out = run_line(p, f'call {site.data} Greeter.SayHello {{"name": "John"}}', 2)
    assert json.loads(out) == {"msg": "Hello John"}
    out = run_line(p, f'call {site.data} Greeter.SayHello \'{{"name": "Jane"}}\'', 3)
    assert json.loads(out) == {"msg": "Hello Jane"}
    # History: Up brings back the last line, and it survives a reload (localStorage).
    p.reload()
    p.wait_for_selector('[data-testid="terminal-input"]')
    p.press('[data-testid="terminal-input"]', "ArrowUp")
    assert p.input_value('[data-testid="terminal-input"]').startswith(f"call {site.data}")
    p.press('[data-testid="terminal-input"]', "ArrowDown")
    assert p.input_value('[data-testid="terminal-input"]') == ""
    run_line(p, "list services", 1)
    shot(page, "terminal", full_page=False)
    p.fill('[data-testid="terminal-input"]', "clear")
    p.press('[data-testid="terminal-input"]', "Enter")
    p.wait_for_selector('[data-testid="terminal-result"]', state="detached")
    page.clean()


# -- escaping ------------------------------------------------------------------------------


def evil_service(name: str) -> dict[str, object]:
    """go-micro registry JSON of a service with markup in every string it holds."""
    return {
        "name": name,
        "version": EVIL,
        "metadata": {EVIL: EVIL},
        "endpoints": [
            {
                "name": f"Evil.{EVIL}",
                "request": {
                    "name": EVIL,
                    "type": EVIL,
                    "values": [{"name": EVIL, "type": "string", "values": None}],
                },
                "response": None,
                "metadata": {EVIL: EVIL},
            }
        ],
        "nodes": [{"id": f"n-{EVIL}", "address": "127.0.0.1:9", "metadata": {EVIL: EVIL}}],
    }


def test_markup_from_the_registry_never_runs(site: Env, browser: Browser, tmp_path: Path) -> None:
    """A service registered with markup in its name, version, metadata, node, endpoint
    and field names: every page shows it as text; nothing runs, nothing is injected."""
    from urllib.parse import quote

    evil = f"{unique('evil')}{EVIL}"
    (tmp_path / "evil.json").write_text(json.dumps([evil_service(evil)]))
    registrar = site.procs.start(
        "evil", "-m", "tests.toolkit.web.browser", "register", str(tmp_path / "evil.json")
    )
    try:
        wait_until(lambda: evil in names(site.url), what="the service with markup")
        checks = [
            ("/", row(evil.replace('"', '\\"'))),
            (f"/registry?service={quote(evil)}", '[data-testid="node-row"]'),
            (
                f"/call?service={quote(evil)}&endpoint={quote('Evil.' + EVIL)}",
                '[data-testid="call-form"] [data-path]',
            ),
        ]
        for path, ready in checks:
            page = open_page(site, path)
            p = page.page
            p.wait_for_selector(ready)
            p.wait_for_timeout(200)  # an onerror would fire on the next task
            assert p.evaluate("window.__pwned") is None
            assert p.locator("main img, main script, main iframe, main svg[onload]").count() == 0
            assert EVIL in (p.text_content("main") or "")
            page.clean()
        page = open_page(site, "/terminal")
        out = run_line(page.page, f"get service '{evil}'", 1)
        assert EVIL in out
        assert page.page.evaluate("window.__pwned") is None
        page.clean()
    finally:
        Procs.stop(registrar)


# -- reverse proxy -------------------------------------------------------------------------


def test_reverse_proxy_serves_a_web_app(site: Env, browser: Browser) -> None:
    page = open_page(site, "/")
    p = page.page
    # The services page lists the web app apart; its link goes through the proxy.
    p.click(f'[data-testid="web-link"][data-name="{site.web_name}"]')
    p.wait_for_url(f"**/{site.web_name}/")
    assert p.text_content('[data-testid="webapp-title"]') == f"webapp at /{site.web_name}"
    p.click('[data-testid="webapp-about"]')  # a relative link stays under the prefix
    p.wait_for_url(f"**/{site.web_name}/about")
    assert p.text_content('[data-testid="webapp-about-title"]') == "about"

    # A POST from the app's page (same origin as the dashboard: the check lets it through).
    echo = p.evaluate(
        """async () => {
            const r = await fetch("echo/x?q=1", {method: "POST", body: "hello"});
            return [r.status, await r.json()];
        }"""
    )
    assert echo[0] == 200
    assert (echo[1]["method"], echo[1]["path"], echo[1]["query"], echo[1]["body"]) == (
        "POST",
        "/echo/x",
        "q=1",
        "hello",
    )
    assert echo[1]["headers"]["x-micro-web-base-path"] == f"/{site.web_name}"

    # A WebSocket echo through the proxy, both ways.
    got = p.evaluate(
        """(name) => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/${name}/ws`);
            const seen = [];
            ws.onopen = () => { ws.send("one"); ws.send("two"); };
            ws.onmessage = (e) => {
                seen.push(e.data);
                if (seen.length === 2) { ws.close(); resolve(seen); }
            };
            ws.onerror = () => reject(new Error("websocket failed"));
        })""",
        site.web_name,
    )
    assert got == ["echo:one", "echo:two"]
    page.clean()


def test_unknown_name_gets_the_404_page(site: Env, browser: Browser) -> None:
    page = site.browser.page(site.url)
    p = page.page
    response = p.goto("/no-such-app-here/")
    assert response is not None
    assert response.status == 404
    p.wait_for_selector('[data-testid="not-found"]')
    links = p.locator('[data-testid="web-service"]')
    assert f"/{site.web_name}/" in [a.get_attribute("href") for a in links.all()]
    p.wait_for_selector('[data-testid="nav-services"]')  # the pages' navigation, drawn by app.js
    shot(page, "not-found", full_page=False)
    page.clean()


# -- auth ----------------------------------------------------------------------------------


def test_auth_off_needs_no_login(site: Env, browser: Browser) -> None:
    page = open_page(site, "/login")
    p = page.page
    p.wait_for_url(f"{site.url}/")  # nothing to sign in to: /login goes home
    p.wait_for_selector(row(site.data))
    assert p.locator('[data-testid="logout"]').count() == 0
    page.clean()


def test_auth_on_redirects_to_login_and_a_token_signs_in(site: Env, browser: Browser) -> None:
    page = open_page(site, f"/registry?service={site.data}", base=site.auth_url)
    p = page.page
    p.wait_for_url("**/login?**")
    assert p.evaluate("document.activeElement.dataset.testid") == "login-token"
    assert httpx.get(site.auth_url + "/_/services", timeout=5).status_code == 401

    p.fill('[data-testid="login-token"]', "wrong")
    p.click('[data-testid="login-submit"]')
    p.wait_for_selector('[data-testid="login-error"]:visible')
    shot(page, "login", full_page=False)

    p.fill('[data-testid="login-token"]', TOKEN)
    p.click('[data-testid="login-submit"]')
    p.wait_for_url(f"**/registry?service={site.data}")  # back where it was going
    assert p.text_content('[data-testid="service-name"]') == site.data
    p.wait_for_selector('[data-testid="node-row"]')
    # The cookie is HttpOnly: the page's scripts cannot read the token.
    assert TOKEN not in p.evaluate("document.cookie")

    p.click('[data-testid="logout"]')
    p.wait_for_url("**/login**")
    p.goto("/")
    p.wait_for_url("**/login?**")
    page.clean()
