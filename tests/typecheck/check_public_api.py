"""Checked by mypy, never run: the public surface keeps its types (tests/typecheck/test_mypy.py).

Every ``assert_type`` fails if an attribute regresses to ``Any``; every ``type: ignore`` marks
a call mypy must reject (strict mode reports an ignore that is no longer needed).
"""

from __future__ import annotations

from typing import Any, assert_type

import msgspec

import micro
from micro import plugins
from micro.broker import Broker
from micro.client import CallFunc
from micro.client.rpc import RpcClient
from micro.errors import MicroError, Timeout
from micro.registry import Registry
from micro.selector import Selector
from micro.server import HandlerFunc, SubscriberFunc
from micro.server.rpc import RpcServer
from micro.testing import serve
from micro.transport import Transport


class Reply(msgspec.Struct):
    msg: str


def handler_wrapper(next_handler: HandlerFunc) -> HandlerFunc:
    return next_handler


def call_wrapper(next_call: CallFunc) -> CallFunc:
    return next_call


def subscriber_wrapper(next_subscriber: SubscriberFunc) -> SubscriberFunc:
    return next_subscriber


def not_a_wrapper(count: int) -> int:
    return count


async def service_surface() -> None:
    service = micro.Service(
        "greeter",
        wrappers=[handler_wrapper],
        call_wrappers=[call_wrapper],
        subscriber_wrappers=[subscriber_wrapper],
    )
    assert_type(service.client, RpcClient)
    assert_type(service.server, RpcServer)
    assert_type(service.broker, Broker)
    micro.Service("greeter", wrappers=[not_a_wrapper])  # type: ignore[list-item]
    async with serve(wrappers=[handler_wrapper], call_wrappers=[call_wrapper]) as client:
        assert_type(client, RpcClient)
    async with serve(call_wrappers=[not_a_wrapper]):  # type: ignore[list-item]
        pass
    micro.Service("greeter", call_wrappers=[handler_wrapper])  # type: ignore[list-item]


async def client_calls(service: micro.Service) -> None:
    typed = await service.client.call("greeter", "Greeter.Hello", {}, response_type=Reply)
    assert_type(typed, Reply)
    untyped = await service.client.call("greeter", "Greeter.Hello", {"name": "a"}, timeout=1.0)
    assert_type(untyped, Any)
    await service.client.call("greeter", "Greeter.Hello", timeout="1s")  # type: ignore[call-overload]
    await service.client.call("greeter", "Greeter.Hello", retry=2)  # type: ignore[call-overload]
    await service.client.publish("topic", Reply(msg="hi"))
    await service.broker.publish("topic", Reply(msg="hi"))  # type: ignore[arg-type]


def plugins_by_kind() -> None:
    assert_type(plugins.create("registry"), Registry)
    assert_type(plugins.create("selector"), Selector)
    assert_type(plugins.create("transport", "memory"), Transport)
    assert_type(plugins.create("broker", "memory"), Broker)
    assert_type(plugins.create_broker("memory"), Broker)
    plugins.create("registy")  # type: ignore[call-overload]


def errors_in_sets(error: MicroError) -> None:
    assert_type({error, Timeout("late")}, set[MicroError])
