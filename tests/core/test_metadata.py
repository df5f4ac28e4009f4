from __future__ import annotations

import asyncio

from micro import metadata


def test_canonical_matches_go() -> None:
    assert metadata.canonical("micro-from-service") == "Micro-From-Service"
    assert metadata.canonical("X-USER-ID") == "X-User-Id"
    assert metadata.canonical("timeout") == "Timeout"


def test_context_merges_and_restores() -> None:
    assert dict(metadata.get()) == {}
    with metadata.context({"x-user": "1"}):
        with metadata.context({"x-trace": "t"}):
            assert dict(metadata.get()) == {"X-User": "1", "X-Trace": "t"}
            assert metadata.get_value("x-user") == "1"
        with metadata.context({"x-trace": "t"}, merge=False):
            assert dict(metadata.get()) == {"X-Trace": "t"}
        assert dict(metadata.get()) == {"X-User": "1"}
    assert dict(metadata.get()) == {}


def test_outgoing_adds_extra_over_current() -> None:
    with metadata.context({"X-User": "1", "X-Keep": "k"}):
        assert metadata.outgoing({"x-user": "2"}) == {"X-User": "2", "X-Keep": "k"}


async def test_set_incoming_stays_in_its_task_and_drops_hop_headers() -> None:
    seen: dict[str, str] = {}

    async def handler() -> None:
        metadata.set_incoming({"X-User": "7", "Content-Type": "a/b", "Micro-Id": "1"})
        seen.update(metadata.get())

    await asyncio.create_task(handler())
    assert seen == {"X-User": "7"}
    assert dict(metadata.get()) == {}
