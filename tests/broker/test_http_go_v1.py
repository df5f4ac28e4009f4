"""HttpBroker against go-micro v1.0 publishers and subscribers (simulated in go_v1.py).

Queue groups: one member of a group gets each message, whichever side subscribed.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import pytest

from micro.broker.http import HttpBroker
from micro.registry.memory import MemoryRegistry
from micro.transport import Message
from tests.broker.go_v1 import (
    GoNode,
    GoV1Subscriber,
    go_body,
    go_url,
)
from tests.broker.helpers import Inbox
from tests.broker.test_http import GO_BODY, GO_ID

TOPIC = "go.micro.topic.greeting"


def test_the_simulated_publisher_sends_the_captured_bytes() -> None:
    """The simulation's body and URL are the ones a v1.0 program was seen sending."""
    body = go_body(
        TOPIC,
        b'{"id":"evt-1","message":"hi from go client"}\n',
        message_id="9b7d40bc-51dc-4f13-bbde-f17774ccad97",
        service="go.micro.cli.greeter",
    )
    assert body == GO_BODY
    assert go_url(GoNode(GO_ID, "127.0.0.1", 50052)) == f"http://127.0.0.1:50052/_sub?id={GO_ID}"


@pytest.fixture
async def registry() -> AsyncIterator[MemoryRegistry]:
    async with MemoryRegistry() as reg:
        yield reg


async def test_python_publisher_and_a_group_of_go_v1_and_python_members(
    registry: MemoryRegistry,
) -> None:
    """Go v1.0 members are registered as ``topic:<topic>``, a Python member as well, all with
    version ``workers``: each message goes to exactly one of them."""
    total, python_member, watcher = 60, Inbox(), Inbox()
    async with (
        GoV1Subscriber(TOPIC, queue="workers") as go_a,
        GoV1Subscriber(TOPIC, queue="workers") as go_b,
        GoV1Subscriber(TOPIC) as go_watcher,
        HttpBroker(registry=registry) as subscriber,
        HttpBroker(registry=registry) as publisher,
    ):
        for go in (go_a, go_b, go_watcher):
            await registry.register(go.entry())
        await subscriber.subscribe(TOPIC, python_member, queue="workers")
        await subscriber.subscribe(TOPIC, watcher)
        for n in range(total):
            await publisher.publish(
                TOPIC, Message({"Micro-Id": f"m{n}"}, f"{n}".encode()), wait=True
            )
    everyone = list(range(total))
    go_ids = [p["Header"]["Micro-Id"] for go in (go_a, go_b) for p in go.received]
    counts = collections.Counter(go_ids + [e.id for e in python_member.events])
    assert sorted(counts) == sorted(f"m{n}" for n in everyone)
    assert set(counts.values()) == {1}
    assert [int(b) for b in watcher.bodies] == everyone
    assert [p["Header"]["Micro-Id"] for p in go_watcher.received] == [f"m{n}" for n in everyone]
    took_part = [bool(go_a.received), bool(go_b.received), bool(python_member.events)]
    assert took_part == [True, True, True]
