"""py-consul's asyncio client on an aiohttp session built the current way.

py-consul 1.8's ``consul.aio`` passes ``verify_ssl``/``ssl_context`` to aiohttp, which
aiohttp 3.10+ deprecates; this keeps py-consul's API and replaces only its HTTP session. It
must be created inside a running event loop (aiohttp's rule for sessions).
"""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import consul.aio  # type: ignore[import-untyped,unused-ignore]
from consul import base  # type: ignore[import-untyped,unused-ignore]

__all__ = ["ConsulClient"]


class _HttpClient(consul.aio.HTTPClient):  # type: ignore[misc]
    def __init__(
        self, host: str, port: int, scheme: str, *, verify: bool | str, cert: Any, timeout: float
    ) -> None:
        base.HTTPClient.__init__(self, host, port, scheme, verify, cert)
        self.loop = None
        tls: ssl.SSLContext | bool = False
        if scheme == "https":
            tls = ssl.create_default_context()
            if isinstance(verify, str):
                tls.load_verify_locations(verify)
            elif not verify:
                tls.check_hostname = False
                tls.verify_mode = ssl.CERT_NONE
            if cert:
                tls.load_cert_chain(*cert) if isinstance(cert, tuple) else tls.load_cert_chain(cert)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=tls),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout),
        )


class ConsulClient(consul.aio.Consul):  # type: ignore[misc]
    """``consul.aio.Consul`` with a non-deprecated aiohttp session; ``await close()``."""

    def __init__(self, *, timeout: float = 5.0, **kwargs: Any) -> None:
        self._timeout = timeout
        super().__init__(**kwargs)

    def http_connect(
        self, host: str, port: int, scheme: str, verify: bool | str = True, cert: Any = None
    ) -> _HttpClient:
        return _HttpClient(host, port, scheme, verify=verify, cert=cert, timeout=self._timeout)
