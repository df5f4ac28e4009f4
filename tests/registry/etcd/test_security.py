"""Username/password auth and TLS (server and client certificates) against real etcd servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from micro.errors import RegistryError
from micro.registry import Node, Service
from micro.registry.etcd import EtcdRegistry
from micro.testing.etcd import EtcdServer
from tests.registry.etcd.conftest import etcdctl

pytestmark = pytest.mark.integration

SERVICE = Service("secure", nodes=[Node("n1", "127.0.0.1:1")])


async def test_username_and_password() -> None:
    with EtcdServer() as server:
        for args in (("user", "add", "root:s3cret"), ("user", "grant-role", "root", "root")):
            await etcdctl(server.address, *args)
        await etcdctl(server.address, "auth", "enable")
        async with EtcdRegistry(address=server.address, username="root", password="s3cret") as r:
            await r.register(SERVICE, ttl=10)
            assert (await r.get_service("secure"))[0].nodes == SERVICE.nodes
        async with EtcdRegistry(address=f"http://root:s3cret@{server.address}") as r:
            assert (await r.get_service("secure"))[0].nodes == SERVICE.nodes
        for bad in (f"http://root:wrong@{server.address}", server.address):
            async with EtcdRegistry(address=bad) as r:
                with pytest.raises(RegistryError, match=r"INVALID_ARGUMENT|UNAUTHENTICATED"):
                    await r.get_service("secure")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = str(d / "ca.pem"), str(d / "ca.key")
    _openssl("req", "-x509", *EC, "-keyout", ca_key, "-out", ca, "-days", "1", "-subj", "/CN=ca")
    ext = d / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for who in ("server", "client"):
        key, csr, pem = (str(d / f"{who}.{x}") for x in ("key", "csr", "pem"))
        _openssl("req", *EC, "-keyout", key, "-out", csr, "-subj", f"/CN={who}")
        _openssl(
            "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", pem, "-days", "1", "-extfile", str(ext),
        )  # fmt: skip
    return d


@pytest.mark.slow
async def test_tls_with_client_certificates(pki: Path) -> None:
    tls = (str(pki / "server.pem"), str(pki / "server.key"), str(pki / "ca.pem"))
    with EtcdServer(tls=tls) as server:
        good = EtcdRegistry(
            address=f"https://{server.address}",
            tls_ca=pki / "ca.pem",
            tls_cert=str(pki / "client.pem"),
            tls_key=(pki / "client.key").read_bytes(),
        )
        async with good as r:
            await r.register(SERVICE, ttl=10)
            assert (await r.get_service("secure"))[0].nodes == SERVICE.nodes
        no_client_cert = EtcdRegistry(address=server.address, tls_ca=pki / "ca.pem", timeout=1)
        plain = EtcdRegistry(address=server.address, timeout=1)
        for registry in (no_client_cert, plain):
            async with registry as r:
                with pytest.raises(RegistryError, match="UNAVAILABLE"):
                    await r.get_service("secure")


def test_unreadable_tls_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="tls_ca"):
        EtcdRegistry(tls_ca=str(tmp_path / "missing.pem"))
