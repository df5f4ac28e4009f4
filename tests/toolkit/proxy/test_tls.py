"""The proxy over TLS and mutual TLS, with certificates made by trustme: in-process with the
proxy's server config, and the real ``micro proxy`` process."""

from __future__ import annotations

import json
import ssl
import time
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.toolkit.api.test_process import PY, Proc, free_port
from tests.toolkit.proxy.conftest import ProxyStack

pytestmark = pytest.mark.integration


class Pki:
    """A CA with a server certificate for 127.0.0.1, and client certificates from it and
    from a CA the proxy does not trust."""

    def __init__(self, tmp: Path) -> None:
        self.ca = trustme.CA()
        self.server = self.ca.issue_cert("127.0.0.1", "localhost")
        self.client = self.ca.issue_cert("laptop.example")
        self.stranger = trustme.CA().issue_cert("laptop.example")
        self.ca_file = str(tmp / "ca.pem")
        self.cert_file, self.key_file = str(tmp / "server.pem"), str(tmp / "server.key")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.server.cert_chain_pems[0].write_to_path(self.cert_file)
        self.server.private_key_pem.write_to_path(self.key_file)

    def context(self, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert is not None:
            client_cert.configure_cert(ctx)
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_https_and_wss(stack: ProxyStack, pki: Pki) -> None:
    app = stack.app()
    address = await stack.served(app, ssl_certfile=pki.cert_file, ssl_keyfile=pki.key_file)
    async with httpx.AsyncClient(base_url=f"https://{address}", verify=pki.context()) as http:
        call = {"service": "greeter", "endpoint": "Greeter.SayHello", "request": {"name": "T"}}
        assert (await http.post("/rpc", json=call)).json() == {"msg": "Hello T"}
    url = f"wss://{address}/rpc?service=greeter&endpoint=Counter.Count"
    async with connect(url, ssl=pki.context()) as ws:
        await ws.send(json.dumps({"to": 2, "delay": 0.01}))
        assert [json.loads(await ws.recv()) for _ in range(2)] == [{"n": 1}, {"n": 2}]
    # a client that does not trust the CA, or speaks plain http, gets nothing
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(verify=ssl.create_default_context()) as http:
            await http.get(f"https://{address}/health")
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://{address}/health")


async def test_mutual_tls_requires_a_client_certificate_of_the_ca(
    stack: ProxyStack, pki: Pki
) -> None:
    app = stack.app()
    address = await stack.served(
        app, ssl_certfile=pki.cert_file, ssl_keyfile=pki.key_file, ssl_ca_certs=pki.ca_file
    )
    url = f"https://{address}/health"
    async with httpx.AsyncClient(verify=pki.context(pki.client)) as http:
        assert (await http.get(url)).status_code == 200
    for refused in (pki.context(), pki.context(pki.stranger)):
        with pytest.raises(httpx.HTTPError):
            async with httpx.AsyncClient(verify=refused) as http:
                await http.get(url)
    async with connect(f"wss://{address}/registry", ssl=pki.context(pki.client)) as ws:
        assert ws.protocol.state.name == "OPEN"


@pytest.mark.slow
def test_the_micro_proxy_process_with_mutual_tls_and_a_token(tmp_path: Path, pki: Pki) -> None:
    port = free_port()
    args = [
        *(PY, "-m", "micro.toolkit.proxy", "--address", f"127.0.0.1:{port}"),
        *("--tls-cert-file", pki.cert_file, "--tls-key-file", pki.key_file),
        *("--tls-client-ca-file", pki.ca_file, "--auth-tokens", "s3cret"),
    ]
    proc = Proc(args, tmp_path / "proxy.log", {"MICRO_REGISTRY": "memory"})
    base = f"https://127.0.0.1:{port}"
    try:
        with httpx.Client(verify=pki.context(pki.client), timeout=2) as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    assert http.get(base + "/health").status_code == 200
                    break
                except httpx.TransportError:
                    assert proc.proc.poll() is None, proc.text()
                    assert time.monotonic() < deadline, proc.text()
                    time.sleep(0.1)
            assert http.get(base + "/registry").status_code == 401
            ok = http.get(base + "/registry", headers={"Authorization": "Bearer s3cret"})
            assert (ok.status_code, ok.json()) == (200, [])
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=pki.context()) as http:
            http.get(base + "/health")
    finally:
        proc.stop()
