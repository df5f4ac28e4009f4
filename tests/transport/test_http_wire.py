"""The sans-IO encoders of the HTTP transport."""

from __future__ import annotations

import pytest

from micro.errors import BadRequest, ConnectError, MicroError
from micro.transport._http_wire import (
    RESPONSE_PREFIX,
    encode,
    error_response,
    header_name,
    join_address,
    request_prefix,
    split_address,
    status_error,
)


def test_request_bytes() -> None:
    head = encode(request_prefix("127.0.0.1:50051"), {"Micro-Id": "0", "X-A": "b"}, b"{}")
    assert head == (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:50051\r\nContent-Length: 2\r\n"
        b"Micro-Id: 0\r\nX-A: b\r\n\r\n"
    )


def test_a_request_path_and_fixed_headers() -> None:
    prefix = request_prefix("proxy:8081", path="/micro/rpc", headers={"Authorization": "Bearer t"})
    assert encode(prefix, {"Timeout": "5"}, b"{}") == (
        b"POST /micro/rpc HTTP/1.1\r\nHost: proxy:8081\r\nAuthorization: Bearer t\r\n"
        b"Content-Length: 2\r\nTimeout: 5\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("rpc", None),  # not absolute
        ("/a b", None),  # a space would end the request target
        ("/rpc\r\nX: 1", None),
        ("/rpc", {"Authorization": "Bearer t\r\nX-Evil: 1"}),
        ("/rpc", {"Bad Name": "v"}),
        ("/rpc", {"Content-Length": "3"}),  # the transport's own
    ],
)
def test_a_bad_request_path_or_fixed_header_is_refused(
    path: str, headers: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError, match=r"path|header"):
        request_prefix("proxy:8081", path=path, headers=headers)


def test_response_bytes_and_empty_header() -> None:
    assert encode(RESPONSE_PREFIX, {}, b"") == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    only_hop = {"Content-Length": "5", "Connection": "close"}
    assert encode(RESPONSE_PREFIX, only_hop, b"ab") == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    )


def test_utf8_values() -> None:
    head = encode(RESPONSE_PREFIX, {"X-Name": "J\u00f6rg \u2713"}, b"")
    assert b"X-Name: J\xc3\xb6rg \xe2\x9c\x93\r\n" in head


@pytest.mark.parametrize(
    "header",
    [{"X": "a\r\nB: c"}, {"X": "\x7f"}, {"X Y": "z"}, {"X:": "z"}, {"X": 1}, {1: "x"}],
)
def test_unsafe_headers_raise(header: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        encode(RESPONSE_PREFIX, header, b"")


def test_error_response() -> None:
    raw = error_response(405, "nope", allow="POST")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 Method Not Allowed\r\nConnection: close\r\n")
    assert b"\r\nAllow: POST\r\n" in head
    assert b"\r\nMicro-Error: " + body + b"\r\n" in head + b"\r\n"
    error = MicroError.parse(body)
    assert (error.code, error.id, error.detail, error.status) == (
        405,
        "go.micro.transport",
        "nope",
        "Method Not Allowed",
    )


def test_status_error() -> None:
    error = MicroError.parse(status_error(502, b"  upstream down\n"))
    assert (error.code, error.detail) == (502, "502 Bad Gateway: upstream down")
    assert MicroError.parse(status_error(599, b"")).detail == "599 unexpected status"


def test_header_names_are_canonical() -> None:
    assert header_name(b"micro-from-service") == "Micro-From-Service"
    assert header_name(b"X-MICRO-ID") == "X-Micro-Id"
    assert header_name(b"micro-from-service") is header_name(b"micro-from-service")


def test_addresses() -> None:
    assert split_address("127.0.0.1:80", default_host="h") == ("127.0.0.1", 80)
    assert split_address(":80", default_host="h") == ("h", 80)
    assert split_address("[::1]:80", default_host="h") == ("::1", 80)
    for bad in ("", "host", "host:", "host:x", "host:70000"):
        with pytest.raises(ConnectError):
            split_address(bad, default_host="h")
    assert join_address(("127.0.0.1", 80)) == "127.0.0.1:80"
    assert join_address(("::1", 80, 0, 0)) == "[::1]:80"
    assert join_address(None) == ""
