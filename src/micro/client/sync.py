"""A blocking client for scripts, REPLs and notebooks that do not run an event loop.

    from micro.client.sync import BlockingClient      # or: micro.Client.blocking(...)

    with BlockingClient(registry="mdns") as client:
        rsp = client.call("greeter", "Greeter.SayHello", {"name": "John"})
        for item in client.stream("counter", "Counter.Count", {"to": 3}):
            print(item)

It runs an :class:`~micro.client.rpc.RpcClient` on an event loop of its own, in a daemon
thread started on first use, and waits for each result. So it works the same from plain
code, from any thread, and inside Jupyter (whose loop runs in the main thread: the cell
blocks while the call runs on the client's loop). Metadata set with
:func:`micro.metadata.context` around a call is sent with it. Ctrl-C while waiting cancels
the call. One instance may be shared by threads.

A client never closed is closed for you when it is garbage collected or, at the latest, at
interpreter exit (a :func:`weakref.finalize`): its tasks are cancelled and its loop thread
joined, so nothing is left pending for Python to complain about.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
import weakref
from collections.abc import Coroutine, Iterator, Mapping
from typing import Any, Self, TypeVar, Unpack, overload

from micro.client import CallKeywords, Stream
from micro.client.rpc import RpcClient

__all__ = ["BlockingClient", "BlockingStream"]

T = TypeVar("T")
_CLOSE_TIMEOUT = 10.0


class BlockingClient:
    """Blocking ``call``/``stream``; ``options`` are those of :class:`RpcClient`."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._client: RpcClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer: weakref.finalize[Any, Any] | None = None  # set with the loop

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def client(self) -> RpcClient:
        """The async client underneath (use it only on :attr:`loop`)."""
        return self._ensure()[1]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the client runs on."""
        return self._ensure()[0]

    @overload
    def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: type[T],
        **options: Unpack[CallKeywords],
    ) -> T: ...

    @overload
    def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        **options: Unpack[CallKeywords],
    ) -> Any: ...

    def call(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        **options: Unpack[CallKeywords],
    ) -> Any:
        """Call and wait; arguments, result and errors as :meth:`RpcClient.call`.

        ``options`` are the per-call keywords (``timeout``, ``retries``, ``address``,
        ``content_type``, ``filters``, ``metadata``) of :meth:`micro.client.Client.call`.
        """
        client = self.client
        return self.run(
            client.call(service, endpoint, request, response_type=response_type, **options)
        )

    def publish(
        self,
        topic: str,
        message: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Publish and wait until the broker accepted it; as :meth:`RpcClient.publish`."""
        client = self.client
        self.run(client.publish(topic, message, content_type=content_type, metadata=metadata))

    def stream(
        self,
        service: str,
        endpoint: str,
        request: Any = None,
        *,
        response_type: Any = Any,
        **options: Unpack[CallKeywords],
    ) -> BlockingStream:
        """Open a stream and return it (an iterator and a context manager).

        Arguments as :meth:`RpcClient.stream`. Iterating yields the server's messages and
        closes the stream when they end.
        """
        stream = self.client.stream(
            service, endpoint, request, response_type=response_type, **options
        )
        self.run(stream.open())
        return BlockingStream(self, stream)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the client's loop, in the caller's context, and wait for it.

        Raises:
            RuntimeError: called from the client's own loop thread (it would deadlock), or
                after :meth:`close`.
        """
        try:
            loop, _ = self._ensure()
            if threading.current_thread() is self._thread:
                raise RuntimeError("BlockingClient used from inside its own event loop")
        except BaseException:
            coro.close()
            raise
        context = contextvars.copy_context()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def start() -> None:
            if not future.set_running_or_notify_cancel():  # given up before it started
                coro.close()
                return
            task = loop.create_task(coro, context=context)
            tasks.append(task)
            task.add_done_callback(lambda done: _settle(done, future))

        loop.call_soon_threadsafe(start)
        try:
            return future.result()
        except BaseException:
            # interrupted while waiting (Ctrl-C): stop the call
            if not future.cancel() and not future.done():
                loop.call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
            raise

    def close(self) -> None:
        """Close the client, stop its loop and join its thread; idempotent."""
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("BlockingClient closed from inside its own event loop")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            finalizer = self._finalizer
        if finalizer is not None:
            finalizer()

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, RpcClient]:
        with self._lock:
            if self._closed:
                raise RuntimeError("client is closed")
            if self._loop is None or self._client is None:
                client = RpcClient(**self._options)
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(
                    target=_serve, args=(loop, ready), name="micro-blocking-client", daemon=True
                )
                thread.start()
                ready.wait()
                self._client, self._loop, self._thread = client, loop, thread
                self._finalizer = weakref.finalize(self, _shutdown, client, loop, thread)
            return self._loop, self._client


class BlockingStream:
    """A stream driven from blocking code: ``send``, ``recv``, iteration, ``with``."""

    def __init__(self, owner: BlockingClient, stream: Stream) -> None:
        self._owner = owner
        self.stream = stream

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self.recv()
        except StopIteration:
            self.close()
            raise

    def send(self, obj: Any) -> None:
        self._owner.run(self.stream.send(obj))

    def recv(self, type: Any = Any) -> Any:
        """The next message; raises ``StopIteration`` once the server ended the stream."""
        try:
            return self._owner.run(self.stream.recv(type))
        except StopAsyncIteration:
            raise StopIteration from None

    def close_send(self) -> None:
        self._owner.run(self.stream.close_send())

    def close(self) -> None:
        """Close the stream; idempotent (a no-op once the client is closed)."""
        if not self._owner.closed:
            self._owner.run(self.stream.close())


def _settle(task: asyncio.Task[T], future: concurrent.futures.Future[T]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.set_exception(concurrent.futures.CancelledError())
        return
    error = task.exception()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(task.result())


def _shutdown(client: RpcClient, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Close ``client`` on ``loop``, stop the loop (its tasks are cancelled) and join it.

    Called once, by ``close()``, by the garbage collector, or at interpreter exit, while
    the daemon thread still runs; never raises.
    """
    if threading.current_thread() is thread:  # dropped by a callback on the loop itself
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            task = loop.create_task(client.close())
            task.add_done_callback(lambda _: loop.stop())
        return
    closing = client.close()
    try:
        future = asyncio.run_coroutine_threadsafe(closing, loop)
    except RuntimeError:  # the loop is already closed
        closing.close()
        return
    try:
        future.result(timeout=_CLOSE_TIMEOUT)
    except Exception:  # close never raises; the loop is stopped regardless
        future.cancel()
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=_CLOSE_TIMEOUT)


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
