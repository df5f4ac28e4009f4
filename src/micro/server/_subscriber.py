"""Subscribers: functions and methods that receive broker events, checked at ``subscribe()``.

A subscriber takes the event (decoded into its annotation, like a handler's request) and,
optionally, a parameter annotated :class:`micro.broker.Event` for the raw event::

    async def on_created(event: UserCreated) -> None: ...                # endpoint "Func"
    def on_created(event: dict) -> None: ...                              # sync: in a thread
    async def on_job(job: Job, raw: Event) -> None: await raw.ack()       # manual ack

An object subscribes each public method (``<Type>.<Method>``). The broker handler built here
decodes with the codec of the message's ``Content-Type``, puts the headers in
:mod:`micro.metadata` and runs the wrappers; an event that does not decode is logged with its
message id and nacked without requeue (dead-lettered where the engine can), so a poison
message never stops the subscription. A subscriber that raises lets the broker nack it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from micro import metadata as md
from micro.broker import Event, Handler
from micro.codec import DEFAULT_CONTENT_TYPE, CodecError, lookup
from micro.codec.schema import json_schema, value_tree
from micro.registry import Endpoint
from micro.server import Publication, SubscriberFunc, SubscriberWrapper
from micro.server.handler import _hints, _is_method, camel_case

__all__ = ["SubscriberSpec", "broker_handler", "endpoint_record", "introspect_subscriber"]

log = logging.getLogger("micro.server")

NO_EVENT: Any = object()
_json = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class SubscriberSpec:
    """What the server needs to know about one subscriber."""

    name: str
    topic: str
    func: Any
    event_type: Any  # NO_EVENT when the subscriber takes only the raw Event
    raw_at: int  # position of the Event parameter, -1 when there is none
    arity: int
    is_async: bool
    queue: str | None = None
    auto_ack: bool = True


def introspect_subscriber(
    topic: str, target: object, *, queue: str | None = None, auto_ack: bool = True
) -> list[SubscriberSpec]:
    """The subscribers in ``target``: a function/method, or an object's public methods.

    Raises:
        TypeError: a signature cannot be served, or the object has no public method.
    """
    if not topic:
        raise TypeError("a subscriber needs a topic")
    options = {"queue": queue, "auto_ack": auto_ack}
    if inspect.isfunction(target) or inspect.ismethod(target):
        owner = getattr(target, "__self__", None)
        if owner is None or isinstance(owner, type):
            name = "Func"
        else:
            name = f"{type(owner).__name__}.{camel_case(target.__name__)}"
        return [_spec(name, topic, target, options)]
    if callable(target) and not _public_methods(target):
        return [_spec("Func", topic, target, options)]
    methods = _public_methods(target)
    if not methods:
        raise TypeError(f"subscriber {type(target).__name__} has no public methods")
    kind = type(target).__name__
    return [
        _spec(f"{kind}.{camel_case(attr)}", topic, getattr(target, attr), options)
        for attr in methods
    ]


def _public_methods(target: object) -> list[str]:
    return [a for a in sorted(dir(target)) if not a.startswith("_") and _is_method(target, a)]


def _spec(name: str, topic: str, func: Any, options: dict[str, Any]) -> SubscriberSpec:
    where = f"subscriber {name} ({getattr(func, '__qualname__', func)!r})"
    try:
        params = [
            p
            for p in inspect.signature(func).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot read its signature ({exc})") from None
    hints = _hints(func, where)
    if len(params) > 2 or not params:
        raise TypeError(f"{where}: takes the event and optionally a raw `Event`, got {params}")
    raw_at, event_type = -1, NO_EVENT
    for i, param in enumerate(params):
        tp = hints.get(param.name, Any)
        if isinstance(tp, type) and issubclass(tp, Event):
            raw_at = i
        elif event_type is NO_EVENT:
            event_type = tp
        else:
            raise TypeError(f"{where}: two event parameters; annotate one as micro.broker.Event")
    call = func if inspect.isroutine(func) else type(func).__call__
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)
    if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
        raise TypeError(f"{where}: a subscriber cannot be a generator")
    return SubscriberSpec(name, topic, func, event_type, raw_at, len(params), is_async, **options)


def endpoint_record(spec: SubscriberSpec) -> Endpoint:
    """The registry endpoint of a subscriber, as go-micro advertises it."""
    meta = {"subscriber": "true", "topic": spec.topic}
    if spec.queue:
        meta["queue"] = spec.queue
    request = None
    if spec.event_type is not NO_EVENT:
        request = value_tree(spec.event_type)
        meta["request_schema"] = _json.encode(json_schema(spec.event_type)).decode()
    return Endpoint(name=spec.name, request=request, response=None, metadata=meta)


def inner_call(spec: SubscriberSpec) -> SubscriberFunc:
    """The innermost ``SubscriberFunc``: calls the function with the event (and raw event)."""
    func, raw_at, arity = spec.func, spec.raw_at, spec.arity

    def args(pub: Publication) -> Sequence[Any]:
        if arity == 1:
            return (pub.event,) if raw_at == 0 else (pub.body,)
        return (pub.event, pub.body) if raw_at == 0 else (pub.body, pub.event)

    if spec.is_async:

        async def call(pub: Publication) -> None:
            await func(*args(pub))

    else:

        async def call(pub: Publication) -> None:
            await asyncio.to_thread(func, *args(pub))

    return call


def broker_handler(spec: SubscriberSpec, wrappers: Sequence[SubscriberWrapper]) -> Handler:
    """The broker handler of one subscriber: decode, metadata, wrappers, call."""
    call = inner_call(spec)
    for wrapper in reversed(wrappers):
        call = wrapper(call)
    event_type = Any if spec.event_type is NO_EVENT else spec.event_type
    decode = spec.event_type is not NO_EVENT

    async def handle(event: Event) -> None:
        header = event.message.header
        content_type = header.get("Content-Type") or DEFAULT_CONTENT_TYPE
        body: Any = None
        if decode:
            try:
                body = lookup(content_type).decode(event.message.body, event_type)
            except CodecError as exc:
                log.error(
                    "%s: message %s on %s does not decode (%s); nacked without requeue",
                    spec.name,
                    event.id or "(no id)",
                    event.topic,
                    exc.detail,
                )
                await event.nack(requeue=False)
                return
        md.set_incoming(header)
        pub = Publication(
            topic=event.topic,
            endpoint=spec.name,
            content_type=content_type,
            header=header,
            metadata=md.get(),
            body=body,
            event=event,
        )
        await call(pub)

    return handle
