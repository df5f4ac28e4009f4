"""The ``/docs`` page: the OpenAPI document as one self-contained HTML page with a form."""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["docs_page"]

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>micro api</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}}
section{{border:1px solid #ccc;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}}
pre{{background:#f6f6f6;padding:.5rem;overflow:auto}} textarea{{width:100%;height:5rem}}
code.m{{background:#2b6;color:#fff;padding:0 .4rem;border-radius:3px}}
</style></head><body>
<h1>micro api</h1><p>{description} <a href="/openapi.json">openapi.json</a></p>
{sections}
<h2>Streams (WebSocket)</h2><ul>{streams}</ul>
<script>
async function send(path, id) {{
  const out = document.getElementById("out-" + id);
  const body = document.getElementById("in-" + id).value;
  const rsp = await fetch(path, {{method: "POST", body: body,
    headers: {{"Content-Type": "application/json"}}}});
  out.textContent = rsp.status + "\\n" + await rsp.text();
}}
</script></body></html>"""

_SECTION = """<section><h3><code class="m">{method}</code> {path}</h3><p>{summary}</p>
<details><summary>request schema</summary><pre>{request}</pre></details>
<details><summary>response schema</summary><pre>{response}</pre></details>
<textarea id="in-{id}">{{}}</textarea><button onclick="send('{path}', {id})">send</button>
<pre id="out-{id}"></pre></section>"""


def _schema(op: dict[str, Any], components: dict[str, Any], *keys: str) -> str:
    node: Any = op
    for key in keys:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    ref = node.get("$ref", "") if isinstance(node, dict) else ""
    if ref.startswith("#/components/schemas/"):
        node = components.get(ref.rsplit("/", 1)[-1], node)
    return html.escape(json.dumps(node, indent=2))


def docs_page(doc: dict[str, Any]) -> str:
    """The page for an OpenAPI document built by :func:`build_document`."""
    components = doc.get("components", {}).get("schemas", {})
    sections = []
    for n, (path, ops) in enumerate(sorted(doc.get("paths", {}).items())):
        for method, op in ops.items():
            sections.append(
                _SECTION.format(
                    method=method.upper(),
                    path=html.escape(path),
                    summary=html.escape(op.get("summary", "")),
                    request=_schema(
                        op, components, "requestBody", "content", "application/json", "schema"
                    ),
                    response=_schema(
                        op, components, "responses", "200", "content", "application/json", "schema"
                    ),
                    id=n,
                )
            )
    streams = "".join(
        f"<li><code>{html.escape(s['path'])}</code> {html.escape(s['endpoint'])}</li>"
        for s in doc.get("x-micro-streams", [])
    )
    return _PAGE.format(
        description=html.escape(doc.get("info", {}).get("description", "")),
        sections="".join(sections),
        streams=streams or "<li>none</li>",
    )
