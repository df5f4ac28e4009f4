"""NATS transport: RPC over NATS subjects instead of TCP connections (go-plugins' ``nats``).

    transport = NatsTransport(address="nats://127.0.0.1:4222")

A listener is a subscription on the node's own subject, and that subject is the address the
node registers (``listen(":0")`` picks ``_INBOX.<unique>``; ``listen("nats://orders")``
uses ``orders``). A dial is a virtual connection: the dialer's own inbox subject, an
``open`` the listener answers (or the server answers "no responders": ``ConnectError`` at
once), then every message published with the inbox as reply subject. The listener hands one
accepted socket per dialer inbox to its handler, so unary calls and streams both work.
Either side's ``close`` reaches the other as ``ConnectionClosed``; a socket waiting in
``recv`` pings its peer every ``ping_interval`` and fails when the peer's subject is gone
(a killed node), and every socket fails at once when the NATS connection drops.

Messages use go-plugins v1's layout (JSON ``{"Header", "Body"}`` in the NATS body), so a Go
service on its nats transport is reachable; micro's own signals travel in NATS headers. A
message larger than the server's ``max_payload`` is sent in pieces. See
``docs/transport-nats.md``.
"""

from __future__ import annotations

import asyncio
import logging

import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from micro._nats import Lease, Options, connect, parse_servers, settle
from micro.errors import ConnectError, ConnectionClosed
from micro.transport import DEFAULT_MAX_BODY, Handler, Listener, Socket, Transport
from micro.transport._nats_conn import Inboxes, NatsSocket
from micro.transport._nats_wire import ACK, CLOSE, CONTROL, INBOX, OPEN, PART, PING
from micro.transport._tls import client_context

__all__ = ["DEFAULT_ADDRESS", "NatsTransport"]

log = logging.getLogger("micro.transport.nats")

DEFAULT_ADDRESS = "nats://127.0.0.1:4222"
DEFAULT_PING_INTERVAL = 2.0
ACK_WAIT = 1.0  # seconds a dial waits for a listener's ack once "no responders" is ruled out
_ERR_ID = "go.micro.transport"


def _subject(address: str) -> str:
    """The subject a dial targets: ``nats://x`` or ``x``."""
    return address[len("nats://") :] if address.startswith("nats://") else address


def _check_subject(subject: str, address: str) -> None:
    if not subject or any(c.isspace() for c in subject) or "*" in subject or ">" in subject:
        raise ConnectError(
            f"nats transport: {address!r} is not a NATS subject (no spaces or wildcards)",
            id=_ERR_ID,
        )


class _NatsListener(Listener):
    """A subscription on the node's subject; one accepted socket per dialer inbox."""

    def __init__(
        self, transport: NatsTransport, inboxes: Inboxes, subject: str, handler: Handler
    ) -> None:
        self._transport = transport
        self._inboxes = inboxes
        self._subject = subject
        self._handler = handler
        self._sockets: dict[str, NatsSocket] = {}  # by dialer inbox
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: NatsSubscription | None = None

    @property
    def address(self) -> str:
        """``nats://<subject>``; the server registers the bare subject, as go-plugins does."""
        return f"nats://{self._subject}"

    async def start(self) -> None:
        nc = self._inboxes.nc
        self._sub = await nc.subscribe(self._subject, cb=self._on_msg)
        await settle(nc)

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is None:
            return
        self._transport.listeners.discard(self)
        try:
            await sub.unsubscribe()
            await settle(self._inboxes.nc)
        except Exception as exc:  # never raises: the connection may be gone
            log.debug("nats transport: unsubscribe %s: %r", self._subject, exc)

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        kind = headers.get(CONTROL)
        if kind == PING or self._sub is None:
            return
        key = headers.get(INBOX, "") if kind == OPEN else msg.reply
        if not key:
            return
        sock = self._sockets.get(key)
        if sock is None:
            if kind == CLOSE or not headers.get(PART, "0/").startswith("0/"):
                return  # the end of a connection already gone
            sock = self._accept(key, ours=kind is not None)
        if kind == OPEN:
            try:
                await self._inboxes.nc.publish(
                    msg.reply, b"", reply=sock.inbox, headers={CONTROL: ACK}
                )
            except Exception as exc:
                log.debug("nats transport: ack to %s not sent: %r", key, exc)
            return
        sock.feed(msg)

    def _accept(self, dialer: str, *, ours: bool) -> NatsSocket:
        token, _ = self._inboxes.new()
        t = self._transport
        sock = NatsSocket(
            self._inboxes,
            token,
            target=dialer,
            remote=dialer,
            dialed=False,
            max_body=t.max_body,
            ping_interval=t.ping_interval,
            ours=ours,
        )
        self._sockets[dialer] = sock

        def forget() -> None:
            self._sockets.pop(dialer, None)

        sock.on_close = forget
        task = asyncio.get_running_loop().create_task(self._serve(sock))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return sock

    async def _serve(self, sock: NatsSocket) -> None:
        try:
            await self._handler(sock)
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("nats transport: connection handler failed")
        finally:
            await sock.close()


class NatsTransport(Transport):
    """Dials and listens on NATS subjects, through one NATS connection per instance.

    Args:
        address: NATS server URL(s), comma-separated (``nats://`` added where missing).
        username, password, token: NATS authentication.
        creds: a user credentials file (JWT and NKey seed, ``.creds``).
        nkey: an NKey seed file.
        tls_ca, tls_cert, tls_key: TLS to the NATS servers (CA file, client cert and key).
        max_body: the largest body sent or accepted, both ways (default 4 MiB). A body over
            the server's ``max_payload`` goes in pieces.
        ping_interval: seconds a socket waits in ``recv`` before it pings its peer, to fail
            when the peer is gone (0: never; only micro peers are pinged).
        connect_timeout: seconds for the first connection to the NATS servers.
        name: the connection name the NATS server shows.
    """

    name = "nats"

    def __init__(
        self,
        *,
        address: str = DEFAULT_ADDRESS,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        creds: str | None = None,
        nkey: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        connect_timeout: float = 5.0,
        name: str = "micro-transport",
    ) -> None:
        if max_body <= 0:
            raise ValueError("max_body must be positive")
        if ping_interval < 0:
            raise ValueError("ping_interval must not be negative")
        self.servers = parse_servers(address)
        self.max_body = max_body
        self.ping_interval = ping_interval
        self._options = Options(
            servers=tuple(self.servers),
            user=username,
            password=password,
            token=token,
            creds=creds,
            nkey=nkey,
            tls=client_context(tls_cert, tls_key, tls_ca),
            tls_files=(tls_cert, tls_key, tls_ca),
            name=name,
            connect_timeout=connect_timeout,
        )
        self._lease: Lease | None = None
        self._inboxes: Inboxes | None = None
        self._lock = asyncio.Lock()
        self._closing = False
        self.listeners: set[_NatsListener] = set()

    def __repr__(self) -> str:
        return f"NatsTransport(address={','.join(self.servers)!r}, max_body={self.max_body})"

    @property
    def address(self) -> str:
        return ",".join(self.servers)

    async def _connection(self) -> Inboxes:
        async with self._lock:
            if self._inboxes is not None and not self._inboxes.nc.is_closed:
                return self._inboxes
            self._closing = False
            try:
                lease = await connect(self._options, self)
            except Exception as exc:
                raise ConnectError(
                    f"cannot connect to NATS at {self.address}: {exc!r}", id=_ERR_ID
                ) from exc
            inboxes = Inboxes(lease.nc)
            try:
                await inboxes.start()
            except BaseException as exc:
                await lease.release()
                if isinstance(exc, Exception):
                    raise ConnectError(
                        f"cannot subscribe on NATS at {self.address}: {exc!r}", id=_ERR_ID
                    ) from exc
                raise
            self._lease, self._inboxes = lease, inboxes
            return inboxes

    async def on_disconnect(self) -> None:
        if self._inboxes is not None:
            self._inboxes.fail_all(ConnectionClosed("the NATS connection was lost", id=_ERR_ID))
        if not self._closing:
            log.warning("NATS %s: disconnected, reconnecting", self.address)

    async def on_reconnect(self) -> None:
        log.info("NATS %s: reconnected", self.address)

    async def dial(self, address: str, *, timeout: float = 5.0) -> Socket:
        subject = _subject(address)
        _check_subject(subject, address)
        inboxes = await self._connection()
        nc = inboxes.nc
        if not nc.is_connected:
            raise ConnectError(f"dial {address}: the NATS connection is down", id=_ERR_ID)
        token, inbox = inboxes.new()
        sock = NatsSocket(
            inboxes,
            token,
            target=subject,
            remote=subject,
            dialed=True,
            max_body=self.max_body,
            ping_interval=self.ping_interval,
        )
        try:
            async with asyncio.timeout(timeout):
                await nc.publish(
                    subject, b"", reply=inbox + ".p", headers={CONTROL: OPEN, INBOX: inbox}
                )
                await settle(nc)  # a "no responders" answer is in by now
                try:
                    async with asyncio.timeout(ACK_WAIT):
                        await sock.opened.wait()
                except TimeoutError:
                    pass  # subscribed, but no micro listener: a go-plugins node
        except (TimeoutError, nats.errors.Error) as exc:
            await sock.close()
            raise ConnectError(f"dial {address}: {exc!r}", id=_ERR_ID) from exc
        except BaseException:
            await sock.close()
            raise
        if sock.refused:
            await sock.close()
            raise ConnectError(f"dial {address}: no listener on NATS subject {subject}", id=_ERR_ID)
        return sock

    async def listen(self, address: str, handler: Handler) -> Listener:
        inboxes = await self._connection()
        if address.startswith("nats://"):
            subject = address[len("nats://") :]
        elif ":" in address:
            port = address.rpartition(":")[2]
            if port not in ("", "0"):
                raise ConnectError(
                    f"nats transport: cannot listen on {address!r}: give a NATS subject "
                    "(nats://name) or :0 for a unique one",
                    id=_ERR_ID,
                )
            subject = inboxes.nc.new_inbox()
        else:
            subject = address
        _check_subject(subject, address)
        listener = _NatsListener(self, inboxes, subject, handler)
        try:
            await listener.start()
        except Exception as exc:
            raise ConnectError(f"cannot listen on {subject}: {exc!r}", id=_ERR_ID) from exc
        self.listeners.add(listener)
        return listener

    async def close(self) -> None:
        self._closing = True
        for listener in list(self.listeners):
            await listener.close()
        inboxes, self._inboxes = self._inboxes, None
        if inboxes is None:
            return
        for sock in list(inboxes.sockets.values()):
            await sock.close()
        await inboxes.stop()
        lease, self._lease = self._lease, None
        if lease is not None:
            await lease.release()
