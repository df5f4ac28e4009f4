"""What the NATS registry and broker share about nats-py.

:func:`settle` waits until the server has processed every command this connection sent so
far. ``Client.flush()`` alone does not promise that in nats-py 2.16: it writes its PING
straight to the socket, ahead of commands still queued for the client's flusher task (a SUB
just made, a PUB just published), so its PONG can come back before the server saw them, and
a lookup made right after a ``register`` then finds "no responders" (seen about 1 run in 10
on a fresh server). Handing the queue to the flusher first and then pinging keeps the order.
"""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient

__all__ = ["SETTLE_TIMEOUT", "settle"]

SETTLE_TIMEOUT = 2  # seconds; nats-py wants an int


async def settle(nc: NatsClient, timeout: int = SETTLE_TIMEOUT) -> None:
    """Return once the server has processed everything sent on ``nc`` before the call.

    Raises:
        TimeoutError: the queued commands were not written within ``timeout`` seconds (an
            int: nats-py wants one), e.g. while the connection is down.
        nats.errors.Error: the PING was not answered in time, or the connection is closed.
    """
    flush_queued = getattr(nc, "_flush_pending", None)  # private: absent, the PING is all
    if flush_queued is not None:
        async with asyncio.timeout(timeout):  # its own wait has no limit by default
            await flush_queued(force_flush=True)
    await nc.flush(timeout=timeout)
