"""Sans-IO pieces of the mucp-over-HTTP/1.1 transport: message encoding, header names, addresses.

Everything here is a pure function over ``str``/``bytes`` so that it can be property-tested
without sockets. Header values travel as UTF-8 (``surrogateescape`` both ways, so any byte
string a peer sends comes back out unchanged when echoed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from micro.errors import BadRequest, ConnectError, MicroError, status_text
from micro.metadata import canonical

TRANSPORT_ID = "go.micro.transport"
DEFAULT_MAX_HEADER = 64 * 1024
DEFAULT_DIAL_TIMEOUT = 5.0
ENCODING = "utf-8"
ERRORS = "surrogateescape"

# Headers the transport itself owns: never taken from a Message on send, never put in one on
# recv (Content-Length and chunking frame the body; the others describe the hop).
HOP_SEND = frozenset(
    {
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Connection",
        "Keep-Alive",
        "Expect",
        "Upgrade",
    }
)
HOP_RECV = HOP_SEND

REQUEST_LINE = "POST / HTTP/1.1\r\nHost: "
RESPONSE_PREFIX = "HTTP/1.1 200 OK\r\nContent-Length: "
RESPONSE_CLOSE_PREFIX = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_PATH = re.compile(r"[^\x21-\x7e]")
_CACHE_LIMIT = 4096
_sendable: set[str] = set()  # header names already checked: valid tokens, not hop headers
_wire_names: dict[bytes, str] = {}  # raw wire name -> canonical name


def request_prefix(
    address: str, *, path: str = "/", headers: Mapping[str, str] | None = None
) -> str:
    """The fixed start of every request on a connection to ``address``: ``POST path``, the
    ``Host`` and the fixed ``headers``, up to ``Content-Length: ``.

    Raises:
        ValueError: ``path`` is not an absolute path of visible ASCII, or a header is not
            sendable (a bad name, a transport-owned name, a control character).
    """
    if not path.startswith("/") or _BAD_PATH.search(path) is not None:
        raise ValueError(f"request path {path!r} must start with / and be visible ASCII")
    lines = ""
    for name, value in (headers or {}).items():
        if _TOKEN.fullmatch(name) is None or canonical(name) in HOP_SEND:
            raise ValueError(f"header name {name!r} cannot be a fixed request header")
        if _BAD_VALUE.search(value) is not None:
            raise ValueError(f"header {name} holds a control character")
        lines += f"{name}: {value}\r\n"
    line = REQUEST_LINE if path == "/" else f"POST {path} HTTP/1.1\r\nHost: "
    return f"{line}{address}\r\n{lines}Content-Length: "


def header_name(raw: bytes) -> str:
    """The canonical ``str`` form of a header name as read off the wire (cached)."""
    name = _wire_names.get(raw)
    if name is None:
        name = canonical(raw.decode("latin-1"))
        if len(_wire_names) < _CACHE_LIMIT:
            _wire_names[raw] = name
    return name


def header_value(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw.decode(ENCODING, ERRORS)


class HeaderNames(dict[bytes, str]):
    """Raw wire name -> canonical name, or ``""`` for a header the transport consumes.

    Parsers look names up with ``.get``; on a miss they call :meth:`learn` (cached, bounded).
    """

    def __init__(self, consumed: frozenset[str]) -> None:
        super().__init__()
        self.consumed = consumed

    def learn(self, raw: bytes) -> str:
        name = header_name(raw)
        key = "" if name in self.consumed else name
        if len(self) < _CACHE_LIMIT:
            self[raw] = key
        return key


def _sendable_header(header: dict[str, str]) -> dict[str, str]:
    """Validate names not seen before; drop the hop headers the transport writes itself."""
    out: dict[str, str] = {}
    for name, value in header.items():
        if name not in _sendable:
            if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
                raise BadRequest(f"invalid header name {name!r}", id=TRANSPORT_ID)
            if canonical(name) in HOP_SEND:
                continue
            if len(_sendable) < _CACHE_LIMIT:
                _sendable.add(name)
        out[name] = value
    return out


def encode(prefix: str, header: dict[str, str], body: bytes) -> bytes:
    """One HTTP/1.1 message head (``prefix`` ends with ``Content-Length: ``), ready to write.

    Raises:
        BadRequest: a header name is not an HTTP token, or a value holds a control
            character (CR/LF would let a value inject headers).
    """
    if header:
        if not _sendable.issuperset(header):
            header = _sendable_header(header)
        try:
            unsafe = _BAD_VALUE.search("".join(header.values())) is not None
        except TypeError:  # a value that is not a str
            unsafe = True
        if unsafe:
            _raise_bad_value(header)
        lines = "\r\n".join(map(": ".join, header.items()))
        text = (
            f"{prefix}{len(body)}\r\n{lines}\r\n\r\n" if lines else f"{prefix}{len(body)}\r\n\r\n"
        )
    else:
        text = f"{prefix}{len(body)}\r\n\r\n"
    try:
        return text.encode(ENCODING, ERRORS)
    except UnicodeEncodeError as exc:
        raise BadRequest(f"header cannot be encoded: {exc}", id=TRANSPORT_ID) from None


def _raise_bad_value(header: dict[str, str]) -> None:
    for name, value in header.items():
        if not isinstance(value, str):
            raise BadRequest(f"header {name} is not a str: {value!r}", id=TRANSPORT_ID)
        if _BAD_VALUE.search(value) is not None:
            raise BadRequest(
                f"header {name} holds a control character: {value[:64]!r}", id=TRANSPORT_ID
            )


NAMES = HeaderNames(HOP_RECV)
"""The header names both parsers have seen (shared: they consume the same headers)."""


def error_response(status: int, detail: str, *, allow: str = "") -> bytes:
    """A complete non-200 response the transport writes before closing (400, 405, 413)."""
    body = MicroError(detail, id=TRANSPORT_ID, code=status).to_json().encode()
    extra = f"Allow: {allow}\r\n" if allow else ""
    text = body.decode()
    head = (
        f"HTTP/1.1 {status} {status_text(status)}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{extra}Micro-Error: {text}\r\n"
        f"X-Micro-Error: {text}\r\n\r\n"
    )
    return head.encode() + body


def status_error(status: int, body: bytes) -> str:
    """The ``Micro-Error`` JSON for a non-200 response that did not carry one."""
    text = body[:512].decode(ENCODING, "replace").strip()
    reason = status_text(status) or "unexpected status"
    detail = f"{status} {reason}: {text}" if text else f"{status} {reason}"
    return MicroError(detail, id=TRANSPORT_ID, code=status).to_json()


def split_address(address: str, *, default_host: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``, ``:port``) -> ``(host, port)``.

    Raises:
        ConnectError: the address has no usable port.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConnectError(f"invalid address {address!r}: want host:port", id=TRANSPORT_ID)
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or default_host, int(port)


def join_address(info: object) -> str:
    """``host:port`` from a socket name tuple (``[host]:port`` for IPv6)."""
    if isinstance(info, tuple) and len(info) >= 2:
        host = str(info[0])
        return f"[{host}]:{info[1]}" if ":" in host else f"{host}:{info[1]}"
    return "" if info is None else str(info)
