"""What the dashboard serves itself: the page shells and assets of ``static/``, and the few
pages rendered on the server (the 404 page listing the web services, the proxy's error page).

Assets are read from the installed package (no CDN: the dashboard works offline), sent with
``Cache-Control: no-cache`` and an ETag, so a browser revalidates each time and gets a 304
until the file changes. Every string put into server-rendered HTML goes through
:func:`html.escape`: names and details come from the registry or the client.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import HTMLResponse, Response
from starlette.types import Scope

__all__ = [
    "SNAPSHOT_BLOCK",
    "STATIC_DIR",
    "Asset",
    "Assets",
    "error_page",
    "json_block",
    "not_found_page",
    "with_snapshot",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class Asset:
    """One file of ``static/`` in memory: its bytes, type and ETag."""

    body: bytes
    media_type: str
    etag: str
    stamp: tuple[int, int]  # (mtime_ns, size): reread when the file changes


class Assets:
    """The files under ``root``, read on first use and again when they change on disk."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, Asset] = {}

    def resolve(self, name: str) -> Path | None:
        """The file ``name`` (relative, ``/``-separated) under the root, or None.

        None for anything that could leave the root or is not a plain file: ``..``
        segments, absolute paths, backslashes, NUL, hidden files, directories.
        """
        if not name or "\\" in name or "\x00" in name or name.startswith("/"):
            return None
        parts = name.split("/")
        if any(part in ("", ".", "..") or part.startswith(".") for part in parts):
            return None
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        return path

    def get(self, name: str) -> Asset | None:
        """The asset ``name``, or None when there is no such file."""
        path = self.resolve(name)
        if path is None:
            return None
        try:
            stat = path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = self._cache.get(path)
            if cached is not None and cached.stamp == stamp:
                return cached
            body = path.read_bytes()
        except OSError:
            return None
        kind = _TYPES.get(path.suffix.lower()) or (
            mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        )
        asset = Asset(body, kind, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', stamp)
        self._cache[path] = asset
        return asset

    def response(self, scope: Scope, name: str) -> Response | None:
        """The asset as a response (304 when the client's ETag matches), None if absent."""
        asset = self.get(name)
        if asset is None:
            return None
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if asset.etag in _if_none_match(scope):
            return Response(status_code=304, headers=headers)
        body = b"" if scope.get("method") == "HEAD" else asset.body
        response = Response(body, media_type=asset.media_type, headers=headers)
        if not body:
            response.headers["content-length"] = str(len(asset.body))
        return response


SNAPSHOT_BLOCK = b'<script type="application/json" id="snapshot"></script>'
"""The empty data block of ``index.html`` that :func:`with_snapshot` fills."""

_BLOCK_ESCAPES = (
    (b"&", b"\\u0026"),
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def json_block(data: bytes) -> bytes:
    """JSON text ``data`` made safe as the content of a ``<script>`` data block.

    ``<``, ``>`` and ``&`` (and U+2028/U+2029) can only occur inside JSON strings, where
    their ``\\uXXXX`` escapes mean the same: so no ``</script``, ``<!--`` or ``<script`` can
    end the element or change how the HTML parser reads it, whatever a service is called.
    """
    for raw, escaped in _BLOCK_ESCAPES:
        data = data.replace(raw, escaped)
    return data


def with_snapshot(shell: bytes, data: bytes) -> bytes:
    """The page ``shell`` with its :data:`SNAPSHOT_BLOCK` holding the JSON ``data``
    (the shell as it is when it has no such block)."""
    filled = SNAPSHOT_BLOCK.replace(b"></", b">" + json_block(data) + b"</", 1)
    return shell.replace(SNAPSHOT_BLOCK, filled, 1)


def _if_none_match(scope: Scope) -> list[str]:
    for key, value in scope["headers"]:
        if key == b"if-none-match":
            return [tag.strip().removeprefix("W/") for tag in value.decode("latin-1").split(",")]
    return []


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} · micro web</title>\n"
        '<link rel="stylesheet" href="/static/app.css">\n'
        # app.js draws the same navigation bar as on the other pages (no inline script: CSP)
        '<script type="module" src="/static/app.js"></script>\n</head>\n'
        '<body class="server-page">\n<header class="topbar"></header>\n'
        f'<main class="page">\n{body}\n</main>\n</body>\n</html>\n'
    )


def not_found_page(path: str, services: list[tuple[str, str]], namespace: str) -> HTMLResponse:
    """404: nothing at ``path``; links to the web services ``(short name, full name)``."""
    rows = "\n".join(
        f'<li><a data-testid="web-service" href="/{html.escape(short, quote=True)}/">'
        f"{html.escape(short)}</a> <small>{html.escape(full)}</small></li>"
        for short, full in services
    )
    listing = (
        f'<ul class="web-services">\n{rows}\n</ul>'
        if rows
        else f"<p>No web service is registered in the namespace "
        f"<code>{html.escape(namespace)}</code>.</p>"
    )
    body = (
        '<h1>Not found</h1>\n<p data-testid="not-found">Nothing is served at '
        f"<code>{html.escape(path)}</code>.</p>\n"
        f"<h2>Web services</h2>\n{listing}\n"
        '<p><a href="/">All services</a></p>'
    )
    return HTMLResponse(_document("Not found", body), status_code=404)


def error_page(status: int, title: str, detail: str) -> HTMLResponse:
    """An error (the proxy's 502, 503, 504) as a small page with its detail."""
    body = (
        f"<h1>{html.escape(title)}</h1>\n"
        f'<p data-testid="error-detail">{html.escape(detail)}</p>\n'
        '<p><a href="/">All services</a></p>'
    )
    return HTMLResponse(_document(title, body), status_code=status)
