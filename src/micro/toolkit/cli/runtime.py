"""What commands share: the registry and client they talk through, input parsing, errors.

A :class:`Runtime` owns one registry and one :class:`micro.Client` for a command (or for a
whole ``micro cli`` session). Failures become :class:`CliError` lines that name what was
tried: ``service not found: foo``, ``timeout after 5s calling greeter Greeter.SayHello``,
``cannot reach registry etcd at 127.0.0.1:2379: ...``. Through a proxy (``--proxy-address``)
they name it instead: ``cannot reach the proxy at http://10.0.0.5:8081: Connection refused``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shlex
import sys
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, TypeVar

from micro import plugins
from micro.errors import (
    ConnectError,
    MicroError,
    RegistryError,
    ServiceNotFound,
    Timeout,
)
from micro.settings import BACKEND_GROUPS, Settings, load
from micro.toolkit.cli.app import CliError

__all__ = [
    "JSON_COMMANDS",
    "Runtime",
    "call_error",
    "one_line",
    "parse_metadata",
    "read_json",
    "read_json_docs",
    "split_line",
]

T = TypeVar("T")
REGISTRY_START_TIMEOUT = 10.0
UNREACHABLE_PROXY = "cannot reach the proxy at "
"""How the proxy backends' error for a proxy that does not answer begins."""
JSON_COMMANDS = frozenset({"call", "stream", "publish"})
"""Commands whose request (or message) may be typed as JSON without quotes in a shell line."""


class Runtime:
    """The registry and (lazily) the client of one command or shell session.

    Backends come from ``settings`` (the command's global options and ``MICRO_*`` env).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load(groups=BACKEND_GROUPS)
        self.registry_name: str = self.settings["registry"]
        self.registry_address: str = self.settings["registry_address"] or ""
        self.proxy_address: str = self.settings.get("proxy_address") or ""
        if self.proxy_address:  # the proxy stands in for the remote registry
            self.registry_name = "proxy"
        elif self.registry_name == "proxy":
            self.proxy_address = self.registry_address
        self.registry: Any = None
        self._client: Any = None

    def where(self) -> str:
        """The registry and where it was looked for, for error lines."""
        if self.registry_name == "proxy":
            return f"the proxy at {getattr(self.registry, 'url', None) or self.proxy_address}"
        if self.registry_address:
            return f"{self.registry_name} at {self.registry_address}"
        if self.registry_name == "mdns":
            pinned = ",".join(self.settings["mdns_interfaces"] or ()) or "all interfaces"
            return f"mdns on {pinned}"
        return self.registry_name

    async def __aenter__(self) -> Runtime:
        try:
            self.registry = plugins.create("registry", settings=self.settings)
        except ValueError as exc:  # a malformed address or an unreadable TLS file
            raise CliError(f"{self.registry_name} registry: {exc}", code=2) from None
        await self.registry_op(
            asyncio.wait_for(self.registry.start(), REGISTRY_START_TIMEOUT), "connect"
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
        if self.registry is not None and not plugins.is_shared(self.registry):
            await self.registry.close()

    @property
    def client(self) -> Any:
        """A :class:`micro.Client` over this runtime's registry (built on first use)."""
        if self._client is None:
            from micro.client.rpc import RpcClient

            self._client = RpcClient(registry=self.registry, settings=self.settings)
        return self._client

    async def registry_op(self, op: Awaitable[T], what: str = "") -> T:
        """Await a registry call; unreachable-registry failures name the registry tried."""
        try:
            return await op
        except ServiceNotFound:
            raise
        except (RegistryError, ConnectError, OSError, TimeoutError) as exc:
            detail = exc.detail if isinstance(exc, MicroError) else str(exc) or type(exc).__name__
            if detail.startswith(UNREACHABLE_PROXY):
                raise CliError(detail) from exc
            if self.registry_name == "proxy":
                raise CliError(f"registry error through {self.where()}: {detail}") from exc
            raise CliError(f"cannot reach registry {self.where()}: {detail}") from exc

    async def services(self, name: str) -> list[Any]:
        """Every version of ``name``; ``service not found: name`` when there is none."""
        try:
            found: list[Any] = await self.registry_op(self.registry.get_service(name))
        except ServiceNotFound:
            raise CliError(f"service not found: {name}") from None
        if not found:
            raise CliError(f"service not found: {name}")
        return found


def call_error(exc: MicroError, service: str, endpoint: str, timeout: float) -> CliError:
    """The one-line error for a failed call or stream."""
    if isinstance(exc, ConnectError) and exc.detail.startswith(UNREACHABLE_PROXY):
        return CliError(exc.detail)
    if isinstance(exc, ServiceNotFound):
        return CliError(f"service not found: {service}")
    if isinstance(exc, Timeout):
        return CliError(f"timeout after {timeout:g}s calling {service} {endpoint}")
    if isinstance(exc, RegistryError):
        return CliError(f"registry error while calling {service} {endpoint}: {exc.detail}")
    status = f" ({exc.code} {exc.status})" if exc.code else ""
    return CliError(f"error calling {service} {endpoint}: {exc.detail or exc}{status}")


def one_line(exc: BaseException) -> str:
    """An unexpected exception as one line (the traceback is for ``--debug``)."""
    if isinstance(exc, MicroError):
        return exc.detail or str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''} (--debug shows the traceback)"


def _source(text: str) -> tuple[str, str]:
    """``(content, where)`` for an argument, ``@file`` or ``-`` (stdin)."""
    if text == "-":
        return sys.stdin.read(), "stdin"
    if text.startswith("@"):
        path = text[1:]
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as f:
                return f.read(), path
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    return text, "argument"


def _json_error(where: str, what: str, exc: json.JSONDecodeError) -> CliError:
    return CliError(
        f"invalid JSON {what} ({where}) at line {exc.lineno}, column {exc.colno}: {exc.msg}"
    )


def read_json(text: str, what: str = "request") -> Any:
    """One JSON document from an argument, ``@file.json`` or ``-``; errors say where."""
    content, where = _source(text)
    try:
        return json.loads(content)
    except json.JSONDecodeError as exc:
        raise _json_error(where, what, exc) from None


def read_json_docs(text: str, what: str = "request") -> list[Any]:
    """One or more JSON documents (whitespace or newline separated), for streams."""
    content, where = _source(text)
    return list(_documents(content, where, what))


def _documents(content: str, where: str, what: str) -> Iterator[Any]:
    decoder = json.JSONDecoder()
    pos, end = 0, len(content)
    while True:
        while pos < end and content[pos].isspace():
            pos += 1
        if pos >= end:
            return
        try:
            doc, pos = decoder.raw_decode(content, pos)
        except json.JSONDecodeError as exc:
            raise _json_error(where, what, exc) from None
        yield doc


def split_line(line: str) -> list[str]:
    """The words of one line typed in ``micro cli`` or the web terminal, as ``shlex.split``
    makes them, except that a JSON request may go unquoted, as go-micro's shell took it.

    After ``call``, ``stream`` or ``publish``, a word that starts with ``{`` or ``[`` is JSON
    taken as it was typed (``call greeter Say.Hello {"name": "John"}``; shlex would drop its
    double quotes): it runs to the end of its JSON value, or of several values for a stream's
    requests, and options may follow it. JSON that does not parse takes the rest of the line,
    so that reading the request reports where it is wrong. Quoted words, ``@file.json`` and
    ``-`` are split as before.

    Raises:
        CliError: the line's quotes do not close (code 2).
    """
    words: list[str] = []
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""
    json_allowed = False
    while True:
        start = _skip_space(line, stream.tell())
        if json_allowed and line[start : start + 1] in ("{", "["):
            end = _json_end(line, start)
            words.append(line[start:end])
            stream.seek(end)
            continue
        try:
            word = lexer.get_token()
        except ValueError as exc:
            raise CliError(f"cannot parse the line: {exc}", code=2) from None
        if word is None:  # the lexer's end of input (an empty "" word is a word)
            return words
        words.append(word)
        json_allowed = json_allowed or word in JSON_COMMANDS


def _skip_space(line: str, pos: int) -> int:
    while pos < len(line) and line[pos].isspace():
        pos += 1
    return pos


def _json_end(line: str, start: int) -> int:
    """Where the JSON values from ``start`` end; the line's end when they do not parse or
    something other than a space follows them."""
    decoder, pos = json.JSONDecoder(), start
    while pos < len(line) and line[pos] in "{[":
        try:
            _, pos = decoder.raw_decode(line, pos)
        except json.JSONDecodeError:
            return len(line)
        if pos < len(line) and not line[pos].isspace():
            return len(line)
        end, pos = pos, _skip_space(line, pos)
    return end


def parse_metadata(pairs: Sequence[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; a pair without ``=`` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(f"metadata must be key=value, got {pair!r}")
        out[key.strip()] = value
    return out
