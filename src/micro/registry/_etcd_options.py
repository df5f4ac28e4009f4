"""Parsing the etcd registry's options: endpoint lists, credentials in URLs, TLS material."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from micro.errors import RegistryError

__all__ = ["DEFAULT_ADDRESS", "Endpoints", "parse_endpoints", "tls_credentials"]

DEFAULT_ADDRESS = "127.0.0.1:2379"
DEFAULT_PORT = 2379

Pem = str | bytes | Path


@dataclass
class Endpoints:
    """What an address list says: where, whether TLS, and credentials found in URLs."""

    hosts: list[tuple[str, int]] = field(default_factory=list)
    secure: bool = False
    username: str | None = None
    password: str | None = None


def _bad(address: str, why: str) -> RegistryError:
    return RegistryError(f"etcd address {address!r}: {why}", id="go.micro.registry")


def parse_endpoints(address: str | Sequence[str] | None) -> Endpoints:
    """``"a:2379,b:2379"``, ``["https://user:pw@a:2379"]``... into :class:`Endpoints`.

    ``None`` or empty means ``127.0.0.1:2379``.

    Raises:
        RegistryError: an entry is not ``host[:port]`` or a ``http(s)://`` URL.
    """
    if not address:
        address = DEFAULT_ADDRESS
    items = address.split(",") if isinstance(address, str) else list(address)
    out = Endpoints()
    for item in (i.strip() for i in items):
        if not item:
            continue
        if not isinstance(item, str):
            raise _bad(repr(item), "not a string")
        out.hosts.append(_one(item, out))
    if not out.hosts:
        raise _bad(str(address), "no endpoint")
    return out


def _one(item: str, out: Endpoints) -> tuple[str, int]:
    url = urlsplit(item if "://" in item else f"//{item}")
    if url.scheme not in ("", "http", "https"):
        raise _bad(item, f"unsupported scheme {url.scheme!r} (use http or https)")
    if url.path not in ("", "/") or url.query or url.fragment:
        raise _bad(item, "expected host:port")
    out.secure = out.secure or url.scheme == "https"
    if url.username:
        out.username, out.password = unquote(url.username), unquote(url.password or "")
    try:
        port = url.port or DEFAULT_PORT
    except ValueError as exc:
        raise _bad(item, "bad port") from exc
    host = url.hostname
    if not host:
        raise _bad(item, "no host")
    return host, port


def _pem(value: Pem | None, what: str) -> bytes | None:
    """PEM bytes from bytes, PEM text, or a file path."""
    if value is None or isinstance(value, bytes):
        return value
    text = str(value)
    if "-----BEGIN" in text:
        return text.encode()
    try:
        return Path(text).read_bytes()
    except OSError as exc:
        raise RegistryError(f"etcd {what} {text!r}: {exc}", id="go.micro.registry") from exc


def tls_credentials(*, secure: bool, ca: Pem | None, cert: Pem | None, key: Pem | None) -> Any:
    """gRPC channel credentials, or ``None`` for plain text.

    TLS is on when ``secure`` or any material is given; without a CA the system roots
    verify the server. A client certificate needs its key and the other way round.

    Raises:
        RegistryError: a file cannot be read, or only one of certificate and key is given.
    """
    if not (secure or ca or cert or key):
        return None
    if bool(cert) != bool(key):
        raise RegistryError("etcd TLS: give both tls_cert and tls_key", id="go.micro.registry")
    import grpc  # type: ignore[import-untyped]

    return grpc.ssl_channel_credentials(
        root_certificates=_pem(ca, "tls_ca"),
        private_key=_pem(key, "tls_key"),
        certificate_chain=_pem(cert, "tls_cert"),
    )
