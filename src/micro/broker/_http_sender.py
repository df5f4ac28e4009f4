"""The HTTP broker's sending side: one kept-alive, pipelined connection per subscriber address.

Each :class:`Sender` owns a FIFO of :class:`Delivery` items for one ``host:port``. Its task
writes up to ``window`` requests, then reads their responses in order (HTTP/1.1
pipelining), so a burst of publications costs a few system calls, not a round trip each.
What happens to a delivery once answered (or failed) is the broker's business: the sender
reports each outcome through ``on_result(delivery, error)``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Callable
from typing import Any

from micro.broker._http_wire import BROKER_ID, request_head
from micro.errors import ConnectError, MicroError
from micro.transport import Message
from micro.transport._http_client import HttpClientSocket
from micro.transport._http_wire import split_address

__all__ = ["Delivery", "Sender"]

_HEADER = {"Content-Type": "application/json"}


class Delivery:
    """One publication on its way to one subscriber node."""

    __slots__ = ("attempts", "group", "message_id", "node_id", "payload", "topic", "tracker")

    def __init__(
        self,
        topic: str,
        payload: bytes,
        node_id: str,
        group: str | None,
        message_id: str,
        tracker: Any = None,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.node_id = node_id
        self.group = group  # the queue name, None for a broadcast delivery
        self.message_id = message_id
        self.tracker = tracker
        self.attempts = 0


class _Conn(HttpClientSocket):
    """A dialed connection whose requests go to ``/_sub?id=<node id>``."""

    def __init__(self, address: str, *, max_body: int, max_header: int) -> None:
        super().__init__(address, max_body=max_body, max_header=max_header)
        self._heads: dict[str, str] = {}

    async def post(self, node_id: str, body: bytes) -> None:
        head = self._heads.get(node_id)
        if head is None:
            head = request_head(self.address, node_id)
            if len(self._heads) < 1024:
                self._heads[node_id] = head
        self._prefix = head
        await self.send(Message(_HEADER, body))


Result = Callable[[Delivery, MicroError | None], None]


class Sender:
    """Delivers to one address in FIFO order over one connection."""

    def __init__(
        self,
        address: str,
        on_result: Result,
        *,
        window: int = 128,
        timeout: float = 15.0,
        max_body: int = 4 * 1024 * 1024,
    ) -> None:
        self.address = address
        self.queue: collections.deque[Delivery] = collections.deque()
        self._on_result = on_result
        self._window = window
        self._timeout = timeout
        self._max_body = max_body
        self._wake = asyncio.Event()
        self._conn: _Conn | None = None
        self.task = asyncio.create_task(self._run(), name=f"http-broker-send-{address}")

    def put(self, delivery: Delivery) -> None:
        self.queue.append(delivery)
        self._wake.set()

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        if self._conn is not None:
            await self._conn.close()

    async def _run(self) -> None:
        queue = self.queue
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [queue.popleft() for _ in range(min(self._window, len(queue)))]
            await self._send(batch)

    async def _send(self, batch: list[Delivery]) -> None:
        answered = 0
        try:
            conn = self._conn
            if conn is None or conn.closed:
                conn = self._conn = await self._dial()
            for delivery in batch:
                await conn.post(delivery.node_id, delivery.payload)
            async with asyncio.timeout(self._timeout):
                for delivery in batch:
                    response = await conn.recv()
                    answered += 1
                    self._on_result(delivery, _error_of(response))
        except asyncio.CancelledError:
            self._requeue(batch[answered:])
            raise
        except (MicroError, OSError, TimeoutError) as exc:
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
            error = _connection_error(self.address, exc)
            for delivery in batch[answered:]:
                self._on_result(delivery, error)

    def _requeue(self, rest: list[Delivery]) -> None:
        self.queue.extendleft(reversed(rest))

    async def _dial(self) -> _Conn:
        host, port = split_address(self.address, default_host="127.0.0.1")
        conn = _Conn(self.address, max_body=self._max_body, max_header=64 * 1024)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(5.0):
                await loop.create_connection(lambda: conn, host, port)
        except (OSError, TimeoutError) as exc:
            raise ConnectError(f"dial {self.address}: {exc}", id=BROKER_ID) from None
        return conn


def _error_of(response: Message) -> MicroError | None:
    text = response.header.get("Micro-Error")
    return MicroError.parse(text) if text else None


def _connection_error(address: str, exc: BaseException) -> MicroError:
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, TimeoutError):
        return ConnectError(f"{address}: no answer in time", id=BROKER_ID)
    detail = exc.detail if isinstance(exc, MicroError) else str(exc)
    return ConnectError(f"{address}: {detail}", id=BROKER_ID)
