"""Printing: rich tables and trees for people, one JSON document for scripts, a spinner.

Every data command hands its result to one function here twice over: as a plain structure
for ``--output json`` and as a rich renderable for the default table output. Tables go to
stdout; the spinner goes to stderr, only on a terminal, and only once a wait passes a second.

:func:`captured` sends what one task prints (tables, JSON, plain ``print``) to a buffer of
its own instead, as plain text without colour: the web dashboard's terminal runs the same
commands for several browsers at once that way. Outside a capture nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import json
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.tree import Tree

    from micro.registry import Service, Value

__all__ = [
    "captured",
    "console",
    "dump_json",
    "health_table",
    "node_rows",
    "nodes_table",
    "print_json",
    "service_json",
    "service_view",
    "services_table",
    "stats_table",
    "waiting",
]

SPINNER_DELAY = 1.0
CAPTURE_WIDTH = 120
"""Columns of the tables printed inside :func:`captured`."""

_target: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar(
    "micro_cli_output", default=None
)
_width: contextvars.ContextVar[int] = contextvars.ContextVar(
    "micro_cli_output_width", default=CAPTURE_WIDTH
)


class _Routed(io.TextIOBase):
    """Stands for ``sys.stdout``/``sys.stderr``: writes go to the current task's capture
    buffer when it has one, to the original stream otherwise."""

    def __init__(self, original: TextIO) -> None:
        self.original = original

    def _now(self) -> TextIO:
        return _target.get() or self.original

    def write(self, text: str) -> int:
        return self._now().write(text)

    def flush(self) -> None:
        self._now().flush()

    def isatty(self) -> bool:
        return self._now().isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", None) or "utf-8"


_captures = 0


def _route(stream: TextIO) -> TextIO:
    return stream if isinstance(stream, _Routed) else _Routed(stream)  # type: ignore[return-value]


def _unroute(stream: TextIO) -> TextIO:
    return stream.original if isinstance(stream, _Routed) else stream


@contextlib.contextmanager
def captured(width: int = CAPTURE_WIDTH) -> Iterator[io.StringIO]:
    """Within this block, what the current task (and tasks it starts) prints goes to the
    yielded buffer, as plain text (tables fitted to ``width`` columns); other tasks print
    as before."""
    global _captures
    buffer = io.StringIO()
    token = _target.set(buffer)
    width_token = _width.set(width)
    if _captures == 0:
        sys.stdout, sys.stderr = _route(sys.stdout), _route(sys.stderr)
    _captures += 1
    try:
        yield buffer
    finally:
        _target.reset(token)
        _width.reset(width_token)
        _captures -= 1
        if _captures == 0:
            sys.stdout, sys.stderr = _unroute(sys.stdout), _unroute(sys.stderr)


def console(stderr: bool = False) -> Console:
    """A rich console (imported lazily: rich costs ~50 ms to import); inside
    :func:`captured`, one writing plain text to the capture buffer."""
    from rich.console import Console

    target = _target.get()
    if target is not None:
        return Console(
            file=target,
            width=_width.get(),
            color_system=None,
            force_terminal=False,
            force_interactive=False,
            highlight=False,
            soft_wrap=False,
        )
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        try:
            return obj.decode()
        except UnicodeDecodeError:
            return obj.hex()
    import msgspec

    return msgspec.to_builtins(obj)


def dump_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text for anything a codec returned (bytes as text or hex, Structs as objects)."""
    return json.dumps(obj, indent=indent, default=_default, ensure_ascii=False)


def print_json(obj: Any) -> None:
    print(dump_json(obj), file=_target.get() or sys.stdout, flush=True)


# -- registry views ----------------------------------------------------------------------


def services_table(names: Sequence[str]) -> Any:
    from rich.table import Table

    table = Table("SERVICE", box=None, pad_edge=False)
    for name in names:
        table.add_row(name)
    return table


def node_rows(services: Sequence[Service]) -> list[dict[str, Any]]:
    return [
        {"id": n.id, "address": n.address, "version": s.version, "metadata": dict(n.metadata)}
        for s in services
        for n in s.nodes
    ]


def nodes_table(rows: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("ID", "ADDRESS", "VERSION", "METADATA", box=None, pad_edge=False)
    for row in rows:
        meta = ", ".join(f"{k}={v}" for k, v in sorted(row["metadata"].items()))
        table.add_row(row["id"], row["address"], row["version"], meta, style=None)
    for column in table.columns:
        column.overflow = "fold"
    return table


def service_json(services: Sequence[Service]) -> list[Any]:
    """go-micro's registry JSON for each version of a service."""
    import msgspec

    return [msgspec.to_builtins(s) for s in services]


def _value_tree(label: str, value: Value | None) -> Tree:
    from rich.tree import Tree

    root = Tree(f"{label}: [bold]{value.type if value else '-'}[/]")
    if value is not None:
        _add_fields(root, value.values or [], depth=0)
    return root


def _add_fields(tree: Tree, values: Sequence[Value], depth: int) -> None:
    for field in values:
        branch = tree.add(f"{field.name} [dim]{field.type}[/]")
        if field.values and depth < 8:  # recursive types are cut off, not followed forever
            _add_fields(branch, field.values, depth + 1)


def service_view(services: Sequence[Service]) -> Any:
    """``get service``: per version the nodes table and each endpoint's field trees."""
    from rich.console import Group
    from rich.text import Text

    parts: list[Any] = [Text.from_markup(f"[bold]service[/]  {services[0].name}")]
    for svc in services:
        parts.append(Text.from_markup(f"\n[bold]version[/]  {svc.version}\n"))
        parts.append(nodes_table(node_rows([svc])))
        for ep in svc.endpoints:
            parts.append(Text.from_markup(f"\n[bold]Endpoint:[/] {ep.name}"))
            meta = {k: v for k, v in ep.metadata.items() if not k.endswith("_schema")}
            if meta:
                parts.append(Text("Metadata: " + ", ".join(f"{k}={v}" for k, v in meta.items())))
            parts.append(_value_tree("Request", ep.request))
            parts.append(_value_tree("Response", ep.response))
    return Group(*parts)


# -- debug views -------------------------------------------------------------------------


def health_table(rows: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table("NODE", "ADDRESS", "STATUS", box=None, pad_edge=False)
    for row in rows:
        status = row.get("status") or f"[red]error: {row.get('error')}[/]"
        table.add_row(row["node"], row["address"], status)
    for column in table.columns:
        column.overflow = "fold"
    return table


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


_STATS_SHOWN = ("started", "uptime", "memory", "threads", "gc", "requests", "errors", "in_flight")


def stats_table(rows: Sequence[dict[str, Any]]) -> Any:
    """go-micro v1's fields, the request counts, then every other field ``Debug.Stats``
    returns (newer servers add counters at the end), each a column named by its key.

    A further field that is zero (or empty) on every node gets no column, so that the table
    fits a terminal (a service reports 20 or so counters, most of them 0 most of the time):
    a line under the table names those fields.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    cols = ("NODE", "ADDRESS", "STARTED", "UPTIME", "MEMORY", "THREADS", "GC")
    counts = ("REQUESTS", "ERRORS", "IN FLIGHT")  # not from go-micro v1 peers: shown as -
    extra: list[str] = []  # in the order the servers send them
    for row in rows:
        for key in row.get("stats") or {}:
            if key not in _STATS_SHOWN and key not in extra:
                extra.append(key)
    zero = [k for k in extra if not any((r.get("stats") or {}).get(k) for r in rows)]
    extra = [k for k in extra if k not in zero]
    table = Table(*cols, *counts, *(key.upper() for key in extra), box=None, pad_edge=False)
    for row in rows:
        stats = row.get("stats")
        if not stats:
            table.add_row(row["node"], row["address"], f"[red]error: {row.get('error')}[/]")
            continue
        started = datetime.fromtimestamp(stats.get("started", 0), UTC)
        table.add_row(
            row["node"],
            row["address"],
            started.strftime("%Y-%m-%d %H:%M:%S"),
            f"{stats.get('uptime', 0)}s",
            _size(int(stats.get("memory", 0))),
            str(stats.get("threads", "")),
            str(stats.get("gc", "")),
            *(str(stats.get(key, "-")) for key in ("requests", "errors", "in_flight")),
            *(_cell(stats.get(key, "-")) for key in extra),
        )
    for column in table.columns:
        column.overflow = "fold"
    if not zero:
        return table
    note = Text(f"0 on every node: {', '.join(zero)} (-o json shows every field)", style="dim")
    return Group(table, note)


def _cell(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


# -- waiting -----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def waiting(text: str) -> AsyncIterator[None]:
    """Show a spinner on stderr if the wait inside takes over a second (TTY only)."""
    if not sys.stderr.isatty():
        yield
        return
    status: Any = None

    async def later() -> None:
        nonlocal status
        await asyncio.sleep(SPINNER_DELAY)
        status = console(stderr=True).status(text)
        status.start()

    task = asyncio.create_task(later())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if status is not None:
            status.stop()
