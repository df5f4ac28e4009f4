"""The laptop side's connection to a proxy (micro._proxy_link), against small aiohttp
servers that answer what a broken or refusing proxy would: address forms, TLS (system CAs,
a private CA, mutual TLS), the token header, and every failure mapped to the error tree.
Each HTTP case runs on both of the link's HTTP paths (``ask``): aiohttp's (``request``:
registry and broker) and micro's own client (``call``: ``POST /rpc``)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from micro._proxy_link import ProxyLink, ProxyUnreachable, parse_address
from micro.errors import (
    BadRequest,
    ConnectError,
    ConnectionClosed,
    InternalServerError,
    MicroError,
    NotFound,
    Timeout,
    Unauthorized,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[..., Awaitable[str]]
Ask = Callable[..., Awaitable[bytes]]


# -- address forms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("127.0.0.1:8081", "http://127.0.0.1:8081"),
        (":8081", "http://127.0.0.1:8081"),
        ("proxy.example:9000", "http://proxy.example:9000"),
        ("http://10.0.0.5:8081/", "http://10.0.0.5:8081"),
        ("https://proxy.example:8443", "https://proxy.example:8443"),
        ("https://proxy.example", "https://proxy.example:443"),
        ("https://proxy.example/micro/", "https://proxy.example:443/micro"),
        ("[::1]:8081", "http://[::1]:8081"),
    ],
)
def test_address_forms(text: str, url: str) -> None:
    assert parse_address(text).url == url


def test_tls_settings_imply_https() -> None:
    assert parse_address("proxy.example:8443", tls=True).url == "https://proxy.example:8443"
    with pytest.raises(ValueError, match="says http://"):
        parse_address("http://proxy.example:8443", tls=True)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("proxy.example", "has no port"),
        ("proxy.example:http", "has no port"),
        ("ftp://proxy.example:21", "use host:port"),
        ("http://:8081", "use host:port"),
        ("http://user:secret@proxy.example:8081", "credentials"),
        ("http://proxy.example:8081/?x=1", "query"),
        ("http://proxy.example:99999", "not a valid URL"),
    ],
)
def test_bad_addresses_are_refused_clearly(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_address(text)


def test_bad_tls_files_are_refused_clearly(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="proxy_tls_ca"):
        ProxyLink("proxy.example:8443", tls_ca=missing)
    with pytest.raises(ValueError, match="proxy_tls_cert"):
        ProxyLink("proxy.example:8443", tls_cert=missing, tls_key=missing)
    with pytest.raises(ValueError, match="without proxy_tls_cert"):
        ProxyLink("proxy.example:8443", tls_key=missing)


# -- a small server ------------------------------------------------------------------------


class Server:
    """One aiohttp app on a free loopback port, answering with ``handler``."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.seen: list[web.Request] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request)
        return await self.handler(request)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> str:
        server = Server(handler, ssl_context)
        servers.append(server)
        return await server.start()

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture(params=["request", "call"])
def ask(request: pytest.FixtureRequest) -> Ask:
    """``ask(link, timeout=None)``: one ``POST /rpc`` of ``{}`` on one of the link's paths."""

    async def through_aiohttp(link: ProxyLink, timeout: float | None = None) -> bytes:
        return await link.request("POST", "/rpc", body=b"{}", timeout=timeout)

    async def through_call(link: ProxyLink, timeout: float | None = None) -> bytes:
        return await link.call(b"{}", headers={}, timeout=timeout)

    return through_aiohttp if request.param == "request" else through_call


def _json(status: int, text: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text=text, content_type="application/json")

    return handler


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: nothing listens there


# -- error mapping -------------------------------------------------------------------------


async def test_a_service_error_keeps_its_class_code_and_detail(serve: Serve, ask: Ask) -> None:
    body = '{"id":"greeter","code":404,"detail":"no user 7","status":"Not Found"}'
    link = ProxyLink(await serve(_json(404, body)))
    try:
        with pytest.raises(NotFound) as caught:
            await ask(link)
        assert (caught.value.id, caught.value.code, caught.value.detail) == (
            "greeter",
            404,
            "no user 7",
        )
        assert caught.value.status == "Not Found"
    finally:
        await link.close()


@pytest.mark.parametrize(("code", "cls"), [(400, BadRequest), (500, InternalServerError)])
async def test_error_json_is_parsed_into_its_class(
    serve: Serve, code: int, cls: type[MicroError], ask: Ask
) -> None:
    body = f'{{"id":"go.micro.proxy","code":{code},"detail":"x","status":""}}'
    link = ProxyLink(await serve(_json(code, body)))
    try:
        with pytest.raises(cls) as caught:
            await ask(link)
        assert caught.value.code == code
    finally:
        await link.close()


async def test_a_non_json_error_body_becomes_its_status_and_text(serve: Serve, ask: Ask) -> None:
    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="upstream fell over\n")

    link = ProxyLink(await serve(bad_gateway))
    try:
        with pytest.raises(MicroError) as caught:
            await ask(link)
        assert type(caught.value) is MicroError
        assert (caught.value.code, caught.value.detail) == (502, "upstream fell over")
    finally:
        await link.close()


async def test_401_is_unauthorized_naming_the_token(serve: Serve, ask: Ask) -> None:
    body = '{"id":"go.micro.proxy","code":401,"detail":"bad token","status":"Unauthorized"}'
    address = await serve(_json(401, body))
    with_token, without = ProxyLink(address, token="t0k"), ProxyLink(address)
    try:
        with pytest.raises(Unauthorized, match="refused the token"):
            await ask(with_token)
        with pytest.raises(Unauthorized, match="requires a token"):
            await ask(without)
    finally:
        await with_token.close()
        await without.close()


async def test_the_token_goes_in_the_authorization_header(serve: Serve, ask: Ask) -> None:
    seen: list[str | None] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.json_response({})

    address = await serve(record)
    for link in (ProxyLink(address, token="s3cret"), ProxyLink(address)):
        try:
            assert await ask(link) == b"{}"
        finally:
            await link.close()
    assert seen == ["Bearer s3cret", None]


async def test_a_refused_connection_is_one_clear_error_fast(ask: Ask) -> None:
    port = _free_port()
    link = ProxyLink(f"127.0.0.1:{port}")
    started = time.monotonic()
    try:
        with pytest.raises(ConnectError) as caught:
            await ask(link)
    finally:
        await link.close()
    assert time.monotonic() - started < 2
    assert isinstance(caught.value, ProxyUnreachable)
    assert caught.value.retryable
    detail = caught.value.detail
    assert detail.startswith(f"cannot reach the proxy at http://127.0.0.1:{port}: "), detail
    assert "\n" not in detail


async def test_a_connection_cut_after_the_request_left_is_connection_closed(
    serve: Serve, ask: Ask
) -> None:
    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.json_response({})

    link = ProxyLink(await serve(hang_up))
    try:
        with pytest.raises(ConnectionClosed) as caught:
            await ask(link)
        assert not isinstance(caught.value, ProxyUnreachable)  # it left: never sent again
        assert "the connection to the proxy at" in caught.value.detail
    finally:
        await link.close()


async def test_no_answer_within_the_timeout_is_a_timeout(serve: Serve, ask: Ask) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    link = ProxyLink(await serve(slow))
    started = time.monotonic()
    try:
        with pytest.raises(Timeout, match=r"did not answer within 0\.2s"):
            await ask(link, timeout=0.2)
    finally:
        await link.close()
    assert time.monotonic() - started < 2


async def test_a_refused_websocket_upgrade_carries_its_status(serve: Serve) -> None:
    body = '{"id":"go.micro.proxy","code":401,"detail":"no token","status":"Unauthorized"}'
    link = ProxyLink(await serve(_json(401, body)))
    try:
        with pytest.raises(Unauthorized, match="requires a token"):
            await link.websocket("/broker", params={"topic": "t"})
    finally:
        await link.close()
    link = ProxyLink(await serve(_json(403, "{}")))
    try:
        with pytest.raises(MicroError) as caught:
            await link.websocket("/broker", params={"topic": "t"})
        assert caught.value.code == 403
    finally:
        await link.close()


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server_context(ca: trustme.CA, *, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def test_tls_verifies_the_proxy_with_the_given_ca(
    serve: Serve, ca: trustme.CA, tmp_path: Path, ask: Ask
) -> None:
    address = await serve(_ok, _server_context(ca))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    trusted = ProxyLink(address, tls_ca=str(ca_file))
    assert trusted.url.startswith("https://")
    try:
        assert await ask(trusted) == b'{"status": "ok"}'
    finally:
        await trusted.close()
    # the system's CAs do not know this one: refused, one line, not worth a retry
    untrusted = ProxyLink(f"https://{address}")
    try:
        with pytest.raises(ProxyUnreachable) as caught:
            await ask(untrusted)
    finally:
        await untrusted.close()
    assert caught.value.detail.startswith(f"cannot reach the proxy at https://{address}: ")
    assert "certificate" in caught.value.detail
    assert not caught.value.retryable


async def test_tls_checks_the_host_name(
    serve: Serve, ca: trustme.CA, tmp_path: Path, ask: Ask
) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("proxy.example").configure_cert(context)  # not 127.0.0.1
    address = await serve(_ok, context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    link = ProxyLink(address, tls_ca=str(ca_file))
    try:
        with pytest.raises(ProxyUnreachable, match="certificate"):
            await ask(link)
    finally:
        await link.close()


async def test_mutual_tls_presents_the_client_certificate(
    serve: Serve, ca: trustme.CA, tmp_path: Path, ask: Ask
) -> None:
    client_ca = trustme.CA()
    address = await serve(_ok, _server_context(ca, client_ca=client_ca))
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client_ca.issue_cert("laptop@example").private_key_and_cert_chain_pem.write_to_path(
        str(cert_file)
    )
    with_cert = ProxyLink(address, tls_ca=str(ca_file), tls_cert=str(cert_file))
    try:
        assert await ask(with_cert) == b'{"status": "ok"}'
    finally:
        await with_cert.close()
    without = ProxyLink(address, tls_ca=str(ca_file))
    try:
        with pytest.raises(ConnectError) as caught:  # refused in the handshake, or cut after
            await ask(without)
    finally:
        await without.close()
    assert "--proxy-tls-cert" in caught.value.detail, caught.value.detail  # what is missing
