"""Bytes captured from a go-micro v1.0 program, verbatim; docs/protocol.md describes them."""

from __future__ import annotations


def _http(*lines: str, body: bytes = b"") -> bytes:
    return "".join(line + "\r\n" for line in lines).encode() + b"\r\n" + body


# 5.1 unary request / response
REQUEST_5_1 = _http(
    "POST / HTTP/1.1",
    "Host: 127.0.0.1:50051",
    "User-Agent: Go-http-client/1.1",
    "Content-Length: 16",
    "Accept: application/json",
    "Content-Type: application/json",
    "Micro-Endpoint: Say.Hello",
    "Micro-From-Service: go.micro.cli.greeter",
    "Micro-Id: 0",
    "Micro-Method: Say.Hello",
    "Micro-Service: go.micro.srv.greeter",
    "Timeout: 5000000000",
    "X-Micro-Endpoint: Say.Hello",
    "X-Micro-Id: 0",
    "X-Micro-Method: Say.Hello",
    "X-Micro-Service: go.micro.srv.greeter",
    body=b'{"name":"John"}\n',
)

RESPONSE_5_1 = _http(
    "HTTP/1.1 200 OK",
    "Content-Length: 21",
    "Accept: application/json",
    "Content-Type: application/json",
    "Micro-Endpoint: Say.Hello",
    "Micro-From-Service: go.micro.cli.greeter",
    "Micro-Id: 0",
    "Micro-Method: Say.Hello",
    "Micro-Service: go.micro.srv.greeter",
    "Timeout: 5000000000",
    "User-Agent: Go-http-client/1.1",
    "X-Micro-Endpoint: Say.Hello",
    "X-Micro-Id: 0",
    "X-Micro-Method: Say.Hello",
    "X-Micro-Service: go.micro.srv.greeter",
    body=b'{"msg":"Hello John"}\n',
)

# 5.2 handler error: status 200, error only in Micro-Error / X-Micro-Error, empty body
ERROR_5_2 = (
    '{"id":"go.micro.srv.greeter","code":400,"detail":"bad name \\"John\\"","status":"Bad Request"}'
)
RESPONSE_5_2 = _http(
    "HTTP/1.1 200 OK",
    "Accept: application/json",
    "Content-Type: application/json",
    "Micro-Endpoint: Say.Fail",
    f"Micro-Error: {ERROR_5_2}",
    "Micro-From-Service: go.micro.cli.greeter",
    "Micro-Id: 1",
    "Micro-Method: Say.Fail",
    "Micro-Service: go.micro.srv.greeter",
    "Timeout: 5000000000",
    "User-Agent: Go-http-client/1.1",
    "X-Micro-Endpoint: Say.Fail",
    f"X-Micro-Error: {ERROR_5_2}",
    "X-Micro-Id: 1",
    "X-Micro-Method: Say.Fail",
    "X-Micro-Service: go.micro.srv.greeter",
    "Content-Length: 0",
)

# 5.3 stream: two POSTs back to back on a new connection, three responses, then close
_STREAM_HEADERS = (
    "Accept: application/json",
    "Content-Type: application/json",
    "Micro-Endpoint: Say.Stream",
    "Micro-From-Service: go.micro.cli.greeter",
    "Micro-Method: Say.Stream",
    "Micro-Service: go.micro.srv.greeter",
    "Timeout: 5000000000",
    "X-Micro-Endpoint: Say.Stream",
    "X-Micro-Method: Say.Stream",
    "X-Micro-Service: go.micro.srv.greeter",
)
REQUESTS_5_3 = _http(
    "POST / HTTP/1.1",
    "Host: 127.0.0.1:50051",
    "User-Agent: Go-http-client/1.1",
    "Content-Length: 12",
    *_STREAM_HEADERS,
    body=b'{"name":""}\n',
) + _http(
    "POST / HTTP/1.1",
    "Host: 127.0.0.1:50051",
    "User-Agent: Go-http-client/1.1",
    "Content-Length: 16",
    *_STREAM_HEADERS,
    body=b'{"name":"John"}\n',
)


def stream_response(n: int) -> bytes:
    body = b'{"msg":"Hello John #%d"}\n' % n
    return _http(
        "HTTP/1.1 200 OK",
        f"Content-Length: {len(body)}",
        *_STREAM_HEADERS[:7],
        "User-Agent: Go-http-client/1.1",
        *_STREAM_HEADERS[7:],
        body=body,
    )


RESPONSES_5_3 = stream_response(0) + stream_response(1) + stream_response(2)

# What a handler receives for 5.1: canonical names, X-Micro-* kept, transport headers
# (Host, Content-Length) consumed by the transport, the JSON body's trailing newline kept.
HEADER_5_1 = {
    "User-Agent": "Go-http-client/1.1",
    "Accept": "application/json",
    "Content-Type": "application/json",
    "Micro-Endpoint": "Say.Hello",
    "Micro-From-Service": "go.micro.cli.greeter",
    "Micro-Id": "0",
    "Micro-Method": "Say.Hello",
    "Micro-Service": "go.micro.srv.greeter",
    "Timeout": "5000000000",
    "X-Micro-Endpoint": "Say.Hello",
    "X-Micro-Id": "0",
    "X-Micro-Method": "Say.Hello",
    "X-Micro-Service": "go.micro.srv.greeter",
}
HEADER_5_3 = {
    "User-Agent": "Go-http-client/1.1",
    **{line.split(": ")[0]: line.split(": ")[1] for line in _STREAM_HEADERS},
}
