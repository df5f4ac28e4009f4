"""Handler introspection: public methods -> endpoint specs, checked at ``handle()`` time.

A method becomes endpoint ``<Handler>.<CamelCaseMethod>``. Its shape is read from its
signature and annotations (resolved with :func:`typing.get_type_hints`):

==================================================  ==========================================
signature                                           endpoint
==================================================  ==========================================
``async def m(self, req: Req) -> Rsp``              unary (also with no ``req``)
``def m(self, req: Req) -> Rsp``                    unary, run in a thread
``async def m(self, req: Req) -> AsyncIterator[R]`` server stream (async generator, or a
                                                    coroutine returning an async iterator)
``async def m(self, stream: Stream[Req, Rsp])``     bidirectional stream
==================================================  ==========================================

``req: Req | None`` makes the request optional: an empty body gives ``None``. Anything else
(``*args``, required keyword-only parameters, sync generators, ...) is a :class:`TypeError`
naming the method.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from micro.server import Stream

__all__ = ["EndpointSpec", "Kind", "camel_case", "introspect", "wire_types"]

Kind = Literal["unary", "server_stream", "bidi"]

NO_REQUEST: Any = object()
"""``EndpointSpec.request_type`` of a method that takes no request."""

_ITERATOR_ORIGINS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
)


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """What the server needs to know about one endpoint."""

    name: str
    func: Any
    kind: Kind
    request_type: Any  # NO_REQUEST when the method takes none
    response_type: Any
    is_async: bool = True
    optional: bool = False  # an empty body gives None
    awaits_iterator: bool = False  # server stream from a coroutine returning an iterator
    internal: bool = False
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.kind != "unary"


def camel_case(name: str) -> str:
    """``say_hello`` -> ``SayHello``; ``sayHello`` -> ``SayHello``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def introspect(handler: object, *, name: str | None = None) -> list[EndpointSpec]:
    """The endpoints of ``handler``'s public methods, sorted by name.

    Raises:
        TypeError: a method's signature cannot be served, or two methods map to one name.
    """
    handler_name = name or type(handler).__name__
    specs: dict[str, EndpointSpec] = {}
    for attr in sorted(dir(handler)):
        if attr.startswith("_") or not _is_method(handler, attr):
            continue
        spec = _spec(handler_name, getattr(handler, attr), attr)
        if spec.name in specs:
            raise TypeError(f"{handler_name}.{attr}: endpoint {spec.name} is already defined")
        specs[spec.name] = spec
    if not specs:
        raise TypeError(f"handler {handler_name} has no public methods to serve")
    return sorted(specs.values(), key=lambda s: s.name)


def _is_method(handler: object, attr: str) -> bool:
    try:
        raw = inspect.getattr_static(handler, attr)
    except AttributeError:
        return False
    if isinstance(raw, staticmethod | classmethod):
        return True
    return inspect.isfunction(raw)


def _spec(handler_name: str, func: Any, attr: str) -> EndpointSpec:
    where = f"{handler_name}.{attr}"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: cannot read its signature ({exc})") from None
    hints = _hints(func, where)
    params = _params(signature, where)
    endpoint = f"{handler_name}.{camel_case(attr)}"
    returns = hints.get("return", Any)
    is_gen = inspect.isasyncgenfunction(func)
    is_async = is_gen or inspect.iscoroutinefunction(func)
    if inspect.isgeneratorfunction(func):
        raise TypeError(f"{where}: sync generators are not served; use an async generator")

    if params and (args := _stream_args(hints.get(params[0].name))) is not None:
        req, rsp = args
        if not is_async or is_gen:
            raise TypeError(f"{where}: a Stream handler must be a plain `async def`")
        return EndpointSpec(endpoint, func, "bidi", req, rsp)

    request_type = NO_REQUEST
    optional = False
    if params:
        request_type = hints.get(params[0].name, Any)
        optional = _is_optional(request_type)
    item = _iterator_item(returns)
    if is_gen or (is_async and item is not None):
        return EndpointSpec(
            endpoint,
            func,
            "server_stream",
            request_type,
            Any if item is None else item,
            optional=optional,
            awaits_iterator=not is_gen,
        )
    if item is not None:
        raise TypeError(f"{where}: a streaming method must be `async def`")
    return EndpointSpec(
        endpoint, func, "unary", request_type, returns, is_async=is_async, optional=optional
    )


def _hints(func: Any, where: str) -> dict[str, Any]:
    target = getattr(func, "__func__", func)
    owner = getattr(func, "__self__", None)
    localns: dict[str, Any] = {}
    if owner is not None:
        localns = dict(vars(owner if isinstance(owner, type) else type(owner)))
    globalns = getattr(sys.modules.get(getattr(target, "__module__", "") or ""), "__dict__", None)
    try:
        return typing.get_type_hints(target, globalns, localns, include_extras=True)
    except Exception as exc:  # NameError for a forward reference, TypeError for bad syntax
        raise TypeError(
            f"{where}: cannot resolve its annotations ({type(exc).__name__}: {exc}); "
            "define the request and response types at module level"
        ) from None


def _params(signature: inspect.Signature, where: str) -> list[inspect.Parameter]:
    positional = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{where}: *args and **kwargs parameters are not supported")
        if param.kind is param.KEYWORD_ONLY:
            if param.default is param.empty:
                raise TypeError(f"{where}: keyword-only parameter {param.name!r} needs a default")
            continue
        positional.append(param)
    required = [p for p in positional[1:] if p.default is p.empty]
    if required:
        names = ", ".join(p.name for p in required)
        raise TypeError(
            f"{where}: a handler method takes at most one argument (the request or a Stream); "
            f"also required: {names}"
        )
    return positional[:1]


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _stream_args(tp: Any) -> tuple[Any, Any] | None:
    tp = _strip_annotated(tp)
    if tp is Stream or (isinstance(tp, type) and issubclass(tp, Stream)):
        return Any, Any
    origin = typing.get_origin(tp)
    if isinstance(origin, type) and issubclass(origin, Stream):
        args = typing.get_args(tp)
        return (args[0], args[1]) if len(args) == 2 else (Any, Any)
    return None


def _iterator_item(tp: Any) -> Any | None:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp) or tp
    if origin not in _ITERATOR_ORIGINS:
        return None
    args = typing.get_args(tp)
    return args[0] if args else Any


def wire_types(spec: EndpointSpec) -> tuple[Any, ...]:
    """The types a codec must carry to serve ``spec``: its request's and its response's.

    ``Annotated`` is unwrapped and a union counts each member; ``None`` needs no carrying.
    """
    found: list[Any] = []
    for tp in (spec.request_type, spec.response_type):
        if tp is NO_REQUEST:
            continue
        tp = _strip_annotated(tp)
        origin = typing.get_origin(tp)
        members = typing.get_args(tp) if origin in (typing.Union, types.UnionType) else (tp,)
        found.extend(_strip_annotated(m) for m in members if m not in (None, type(None)))
    return tuple(found)


def _is_optional(tp: Any) -> bool:
    tp = _strip_annotated(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return type(None) in typing.get_args(tp)
    return False
