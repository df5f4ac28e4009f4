"""TLS contexts from certificate, key and CA files, for the transports that take them."""

from __future__ import annotations

import ssl

__all__ = ["client_context", "server_context"]


def client_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A dialer's context: verify the peer with ``ca`` (else the system's CAs), present
    ``cert`` when given; ``None`` when neither is set (no TLS)."""
    if not ca and not cert:
        return None
    context = ssl.create_default_context(cafile=ca or None)
    if cert:
        context.load_cert_chain(cert, key or None)
    return context


def server_context(cert: str | None, key: str | None, ca: str | None) -> ssl.SSLContext | None:
    """A listener's context serving ``cert``, asking dialers for a certificate ``ca``
    signed when ``ca`` is given; ``None`` without ``cert`` (no TLS)."""
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    if ca:
        context.load_verify_locations(cafile=ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
