"""The inputs of ``benchmarks.fuzz``: mutations of one valid request, from a seeded generator.

:class:`Mutations` yields :class:`Case` objects, each the bytes of one connection, built from a
valid :class:`Request` of the target. The kinds take turns (so every kind gets the same share
of any run), and ``random.Random(seed)`` decides every detail, so a seed replays a run.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

BODY = b'{"name": "John"}'


@dataclass(frozen=True)
class Request:
    """A request as parts; :meth:`encode` adds ``Content-Length`` unless a framing header is set."""

    method: bytes
    path: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes = BODY

    def encode(self) -> bytes:
        lines = [b"%s %s HTTP/1.1" % (self.method, self.path)]
        lines += [b"%s: %s" % (name, value) for name, value in self.headers]
        framing = {name.lower() for name, _ in self.headers}
        if not framing & {b"content-length", b"transfer-encoding"}:
            lines.append(b"Content-Length: %d" % len(self.body))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def with_header(self, name: bytes, value: bytes) -> Request:
        """This request with ``name`` set to ``value`` (replaced where present, else added)."""
        kept = tuple((n, v) for n, v in self.headers if n.lower() != name.lower())
        return replace(self, headers=(*kept, (name, value)))

    def adding(self, *headers: tuple[bytes, bytes]) -> Request:
        return replace(self, headers=(*self.headers, *headers))


@dataclass(frozen=True)
class Case:
    """One connection: send ``data``, maybe half-close, then read up to ``expect`` answers.

    ``expect=0`` closes right after sending (a client that leaves before its answers), with
    ``reset`` by a TCP reset instead of a FIN.
    """

    kind: str
    data: bytes
    half_close: bool = False
    expect: int = 1
    head_only: bool = False  # a HEAD request: answers carry no body
    reset: bool = False


# fmt: off
# Values for the headers a micro service or the gateway reads; GENERIC goes to every header.
GENERIC = [b"", b" ", b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"caf\xe9", b"\x00", b"a\x00b",
           b"\x01\x02", b"\x1b[31m", b"\x7f", b"a\rb", b"a\nb", b"\t", "グリーター".encode(),
           "\U0001f600".encode(), b"x" * 8192, b"%00", b"'\";--"]
SPECIFIC: dict[bytes, list[bytes]] = {
    b"Micro-Service": [b"other", b"greeter.", b".greeter", b"GREETER", b"go.micro.srv.greeter"],
    b"Micro-Endpoint": [b"Greeter", b"Greeter.", b".SayHello", b"Greeter.SayHello.x",
                        b"Greeter.say_hello", b"Greeter.__init__", b"Greeter.__class__",
                        b"Debug.Health", b"Debug.Stats", b"Debug.Nope", b"Nope.Nope",
                        b"Greeter..SayHello", b"Greeter.SayHello "],
    b"Content-Type": [b"application/json; charset=utf-8", b"application/json;", b"text/plain",
                      b"application/msgpack", b"application/protobuf", b"application/grpc",
                      b"application/octet-stream", b"application/grpc+json", b"*/*", b";",
                      b"application/x-www-form-urlencoded", b"multipart/form-data; boundary=x",
                      b"application/", b"application/json\x00"],
    b"Timeout": [b"-1", b"0", b"1", b"1e400", b"nan", b"inf", b"-inf", b"1e-9", b"0.000001",
                 b"99999999999999999999999999999", b"0x10", b"1_000", b" 5 ", b"5s", b"1.5",
                 b"+5", "\u0665".encode()],
    b"Micro-Id": [b"-1", b"99999999999999999999999", b"abc"],
    b"Micro-Stream": [b"1", b"yes", b""],
    b"Accept": [b"application/msgpack", b"text/html", b"*/*"],
    b"Host": [b"", b"[::1", b"a" * 300, b"127.0.0.1:99999"],
}
FUZZED = tuple(SPECIFIC)
BAD_NAMES = [b"Micro\xff-Service", b"Micro-Service\x00", b"Micro Service", b"Micro-Service ",
             b"\x01", b"", b"X-\xc3\x28", "Ünïcode".encode(), b"a" * 10_000, b"Micro-Method",
             b"X-Micro-Service", b"X-Micro-Endpoint", b"Expect", b"Connection", b"Upgrade",
             b"Transfer-Encoding"]
BAD_BODIES = [b'{"name": 1}', b'{"name": null}', b'{"name": true}', b'{"name": ["John"]}',
              b'{"name": {"first": "John"}}', b'{"name": 1e999}', b'{"name": -0.0}',
              b'{"name": ' + b"9" * 5000 + b"}", b"[]", b"[1, 2]", b'"John"', b"null", b"1",
              b"", b"{}", b'{"name": "John", "name": 2}', b'{"name": "\\ud800"}',
              b'{"name": "Jo\xffhn"}', b'\xef\xbb\xbf{"name": "John"}', b'{"name": "John"} x',
              b'{"name": "John"', b'{"name": NaN}', b'{"name": Infinity}', b"{name: 1}",
              b"{'name': 'John'}", b'{"name": "\\u0000"}', b"\x00\x00", b"\x81\xa4name\xa4John",
              b'{"name": "John", "extra": [1, {"x": null}]}',
              b'{"name": "' + b"\\" * 99 + b'"}']
CODECS = [b"application/msgpack", b"application/protobuf", b"application/octet-stream"]
METHODS = [b"GET", b"PUT", b"DELETE", b"OPTIONS", b"HEAD", b"CONNECT", b"TRACE", b"post",
           b"P\x00ST", b"POST ", b"X" * 1024]
PATHS = [b"*", b"/\xff", b"/%00", b"/../../etc/passwd", b"http://evil.example/", b"//",
         b"/?" + b"a" * 9000, b"/greeter/say-hello/../x", b"/greeter/%ff", b"",
         b"/" + b"a" * 70_000]
VERSIONS = [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/9.9", b"HTTP/1.1\x00", b"HTTP/1.", b"", b"HTTPS/1.1"]
LENGTHS = [b"-1", b"+16", b" 16", b"16 ", b"0x10", b"1e1", b"", b"16, 16", b"16\x00",
           "\u0661\u0666".encode(), b"16\r\nContent-Length: 3"]
# fmt: on


class Mutations:
    """An endless, reproducible stream of cases against ``base`` (a valid request)."""

    def __init__(self, base: Request, *, max_body: int, seed: int) -> None:
        self.base = base
        self.max_body = max_body
        self.rng = random.Random(seed)
        self.makers: list[Callable[[], Case]] = [
            self.flip, self.truncate, self.insert, self.header_value, self.header_name,
            self.request_line, self.json_type, self.nested_json, self.big_head, self.big_body,
            self.content_length, self.chunked, self.pipeline, self.half_close,
        ]  # fmt: skip

    def __iter__(self) -> Iterator[Case]:
        for make in itertools.cycle(self.makers):
            yield make()

    def _bytes(self, low: int, high: int) -> bytes:
        return self.rng.randbytes(self.rng.randint(low, high))

    # -- byte-level damage to the valid request (the client half-closes: it sends no more)

    def flip(self) -> Case:
        data = bytearray(self.base.encode())
        for _ in range(self.rng.randint(1, 8)):
            data[self.rng.randrange(len(data))] ^= self.rng.randint(1, 255)
        return Case("flip", bytes(data), half_close=True)

    def truncate(self) -> Case:
        data = self.base.encode()
        return Case("truncate", data[: self.rng.randrange(1, len(data))], half_close=True)

    def insert(self) -> Case:
        data = self.base.encode()
        for _ in range(self.rng.randint(1, 4)):
            at = self.rng.randrange(len(data) + 1)
            junk = self.rng.choice([self._bytes(1, 16), b"\r\n", b"\r\n\r\n", b":", b"\x00"])
            data = data[:at] + junk + data[at:]
        return Case("insert", data, half_close=True)

    # -- complete requests with odd headers, request lines and bodies

    def header_value(self) -> Case:
        name = self.rng.choice(FUZZED)
        pool = SPECIFIC[name] + GENERIC + [self._bytes(1, 32)]
        request = self.base.with_header(name, self.rng.choice(pool))
        return Case(f"header:{name.decode()}", request.encode(), half_close=self._coin())

    def header_name(self) -> Case:
        name = self.rng.choice([*BAD_NAMES, self._bytes(1, 24)])
        value = self.rng.choice([b"x", b"greeter", b"100-continue", b"chunked", b"\xff"])
        return Case("header-name", self.base.adding((name, value)).encode(), half_close=True)

    def request_line(self) -> Case:
        part = self.rng.randrange(3)
        method = self.rng.choice(METHODS) if part == 0 else self.base.method
        path = self.rng.choice(PATHS) if part == 1 else self.base.path
        start = b"%s %s" % (self.base.method, self.base.path)
        data = self.base.encode().replace(start, b"%s %s" % (method, path), 1)
        if part == 2:
            data = data.replace(b"HTTP/1.1", self.rng.choice(VERSIONS), 1)
        return Case("request-line", data, half_close=True, head_only=method == b"HEAD")

    def json_type(self) -> Case:
        request = replace(self.base, body=self.rng.choice([*BAD_BODIES, self._bytes(1, 64)]))
        if self.rng.random() < 0.25:  # the other codecs get the same junk
            request = request.with_header(b"Content-Type", self.rng.choice(CODECS))
        return Case("json-type", request.encode(), half_close=self._coin())

    def nested_json(self) -> Case:
        depth = self.rng.choice([64, 500, 5_000, 50_000, 200_000])
        body = self.rng.choice([
            b"[" * depth + b"]" * depth,
            b'{"name": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
            b'{"name": ' + b"[" * depth + b"]" * depth + b"}",
            b"[" * depth,
        ])  # fmt: skip
        return Case("nested-json", replace(self.base, body=body).encode(), half_close=True)

    # -- sizes and framing

    def big_head(self) -> Case:
        shape = self.rng.randrange(3)
        if shape == 0:
            request = self.base.adding((b"X-Big", b"a" * self.rng.randint(60_000, 80_000)))
        elif shape == 1:
            many = tuple((b"X-H%d" % i, b"v") for i in range(self.rng.randint(500, 5_000)))
            request = self.base.adding(*many)
        else:
            request = replace(self.base, path=b"/" + b"p" * self.rng.randint(60_000, 80_000))
        return Case("big-head", request.encode(), half_close=True)

    def big_body(self) -> Case:
        if self.rng.random() < 0.02:  # a real body one byte over the limit
            request = replace(self.base, body=b"x" * (self.max_body + 1))
        elif self.rng.random() < 0.5:  # a valid call with a long name, up to 256 KiB
            name = b"J" * self.rng.randint(1, 256 * 1024)
            request = replace(self.base, body=b'{"name": "%s"}' % name)
        else:  # a declared length over the limit, with a few bytes of it
            size = self.rng.choice([self.max_body + 1, 2**31, 2**63 - 1, 2**64, 10**30])
            request = self.base.adding((b"Content-Length", b"%d" % size))
            request = replace(request, body=self._bytes(0, 100))
        return Case("big-body", request.encode(), half_close=True)

    def content_length(self) -> Case:
        real = len(self.base.body)
        short, long = real - self.rng.randint(1, real), real + self.rng.randint(1, 99)
        value = self.rng.choice([b"%d" % short, b"%d" % long, *LENGTHS])
        request = self.base.adding((b"Content-Length", value))
        if self.rng.random() < 0.3:  # both framings: the classic smuggling shape
            request = request.adding((b"Transfer-Encoding", b"chunked"))
        return Case("content-length", request.encode(), half_close=True)

    def chunked(self) -> Case:
        body = self.base.body
        cut = self.rng.randrange(1, len(body))
        first, rest = body[:cut], body[cut:]
        valid = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(first), first, len(rest), rest)
        bad_size = self.rng.choice([b"zz", b"-1", b"f" * 20, b"10;ext=\x00", b"", b" 5"])
        chunks = self.rng.choice([
            valid,
            valid[:-5],  # no last chunk
            b"%s\r\n%s\r\n0\r\n\r\n" % (bad_size, body),
            b"3\r\n%s\r\n0\r\n\r\n" % body,  # more data than declared
            valid[:-2] + b"X-Trailer: \xff\r\n\r\n",
        ])  # fmt: skip
        coding = self.rng.choice([b"chunked", b"Chunked", b"gzip, chunked", b"chunked, identity"])
        request = replace(self.base.adding((b"Transfer-Encoding", coding)), body=chunks)
        return Case("chunked", request.encode(), half_close=True)

    # -- connection shapes

    def pipeline(self) -> Case:
        """2 to 8 requests in one write; the client leaves early, or reads some or all answers."""
        count = self.rng.randint(2, 8)
        parts = [self._mildly_wrong() for _ in range(count)]
        shape = self.rng.randrange(4)  # leave (FIN), leave (RST), read one answer, read all
        expect = (0, 0, 1, count)[shape]
        data = b"".join(parts)
        return Case("pipeline", data, half_close=shape == 3, expect=expect, reset=shape == 1)

    def half_close(self) -> Case:
        return Case("half-close", self.base.encode(), half_close=True)

    def _mildly_wrong(self) -> bytes:
        """A request with valid framing: unchanged, a bad body, or a bad routing header."""
        choice = self.rng.randrange(3)
        if choice == 0:
            return self.base.encode()
        if choice == 1:
            return replace(self.base, body=self.rng.choice(BAD_BODIES)).encode()
        name = self.rng.choice([b"Micro-Service", b"Micro-Endpoint", b"Content-Type"])
        value = self.rng.choice(SPECIFIC[name] + GENERIC[:11])  # no line breaks, no 8 KiB
        return self.base.with_header(name, value).encode()

    def _coin(self) -> bool:
        return self.rng.random() < 0.5
