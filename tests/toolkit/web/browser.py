"""Helpers for the dashboard's browser tests: Debian's Chromium driven by Playwright.

Playwright never downloads a browser here: :func:`launch` starts ``/usr/bin/chromium``
headless through ``executable_path`` (each launch gets a fresh temporary profile, and each
:meth:`Browser.page` a fresh context: no cookies or storage shared between tests).

:class:`Page` wraps a Playwright page and records what must never happen on the dashboard:
a JavaScript dialog (``alert`` from injected markup), an uncaught page error, or a console
error other than an HTTP status the test provoked.

``MICRO_WEB_SCREENSHOTS=<dir>`` makes :func:`shot` save screenshots there (the docs' images
are made this way); otherwise :func:`shot` does nothing.

Run as ``python -m tests.toolkit.web.browser register FILE`` it registers the services of
the JSON file FILE (a list of go-micro registry Service objects) over the configured
registry, keeps them registered until SIGTERM, then deregisters them: the tests use it for
services whose names and metadata no real handler could carry.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser as PwBrowser
from playwright.sync_api import (
    ConsoleMessage,
    Dialog,
    Error,
    Playwright,
    ViewportSize,
    sync_playwright,
)
from playwright.sync_api import Page as PwPage

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 375, "height": 740}
SHOTS = os.environ.get("MICRO_WEB_SCREENSHOTS", "")


@dataclass
class Page:
    """A page of a fresh browser context, with the dialogs and errors it produced."""

    page: PwPage
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("dialog", self._on_dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        self.page.on("console", self._on_console)

    def _on_dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def _on_console(self, message: ConsoleMessage) -> None:
        # A failed resource (the 400 of a call the test wanted to fail) is logged by the
        # browser as a console error; CSP violations and script errors are what count.
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    def clean(self) -> None:
        """Assert that no dialog opened and no script error happened."""
        assert not self.dialogs, f"a dialog opened: {self.dialogs}"
        assert not self.errors, f"errors in the page: {self.errors}"


class Browser:
    """One headless Chromium for a test module; :meth:`page` opens isolated pages."""

    def __init__(self, playwright: Playwright, browser: PwBrowser) -> None:
        self.playwright = playwright
        self.browser = browser
        self._pages: list[Page] = []

    def page(
        self, base_url: str, *, viewport: ViewportSize | None = None, dark: bool = False
    ) -> Page:
        """A page in a new context (own cookies and storage) whose relative URLs go to
        ``base_url``."""
        context = self.browser.new_context(
            base_url=base_url,
            viewport=viewport or DESKTOP,
            color_scheme="dark" if dark else "light",
            reduced_motion="reduce",
        )
        context.set_default_timeout(10_000)
        page = Page(context.new_page())
        self._pages.append(page)
        return page

    def close_pages(self) -> None:
        for page in self._pages:
            try:
                page.page.context.close()
            except Error:
                pass
        self._pages.clear()


@contextmanager
def launch() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the duration of the block."""
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: apt-get install chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield Browser(pw, browser)
        finally:
            browser.close()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot ``<MICRO_WEB_SCREENSHOTS>/<name>.png`` when that is set."""
    if not SHOTS:
        return
    Path(SHOTS).mkdir(parents=True, exist_ok=True)
    page.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)


# -- a registrar for services no handler could describe (names with markup) -----------------


async def _hold(raw: bytes) -> None:
    import msgspec

    from micro import plugins
    from micro.registry import Service
    from micro.settings import BACKEND_GROUPS, load

    services = msgspec.json.decode(raw, type=list[Service])
    registry = plugins.create("registry", settings=load(groups=BACKEND_GROUPS))
    await registry.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    for service in services:
        await registry.register(service)
    print("registered", json.dumps([s.name for s in services]), flush=True)
    await stop.wait()
    for service in services:
        await registry.deregister(service)
    await registry.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "register":
        print("usage: python -m tests.toolkit.web.browser register FILE", file=sys.stderr)
        return 2
    asyncio.run(_hold(Path(argv[1]).read_bytes()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
