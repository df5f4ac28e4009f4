"""The rpc hot path: bytes through untouched, errors still mapped, routes cached safely."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest

from micro import metadata
from micro.client.deadline import TaskDeadline
from micro.errors import BadRequest, PayloadTooLarge, RequestTimeout
from micro.toolkit.api import _http, handlers
from micro.toolkit.api._http import read_body
from tests.toolkit.api.conftest import Stack


class Echo:
    async def raw(self, req: msgspec.Raw) -> msgspec.Raw:
        """Answer the request body exactly as it arrived."""
        return req


async def test_response_is_the_services_bytes(stack: Stack) -> None:
    _, http = await stack.gateway()
    direct = await stack.client.call(
        "go.micro.api.calc", "Calc.Add", {"a": 2, "b": 3}, response_type=msgspec.Raw
    )
    rsp = await http.post("/calc/add", content=b'{"a": 2, "b": 3}')
    assert rsp.status_code == 200
    assert rsp.content == bytes(direct)
    assert rsp.headers["content-type"] == "application/json"
    assert rsp.headers["content-length"] == str(len(rsp.content))


@pytest.mark.parametrize(
    "body",
    [
        b'{ "z" : 1,\n  "a": [1, 2.50, "\\u00e9"], "nested": {"k": null} }',
        b"[3, 2, 1]",
        b'"just a string"',
        b"42",
    ],
)
async def test_json_body_reaches_the_service_byte_for_byte(stack: Stack, body: bytes) -> None:
    await stack.serve("go.micro.api.echo", Echo())
    _, http = await stack.gateway()
    rsp = await http.post("/echo/raw", content=body)
    assert rsp.status_code == 200
    assert rsp.content == body


async def test_forms_and_empty_bodies_still_become_objects(stack: Stack) -> None:
    await stack.serve("go.micro.api.echo", Echo())
    _, http = await stack.gateway()
    rsp = await http.post("/echo/raw", data={"a": "1", "b": "x"})
    assert rsp.json() == {"a": "1", "b": "x"}
    rsp = await http.post("/echo/raw", content=b"  ")
    assert rsp.json() == {}


@pytest.mark.parametrize(
    ("path", "body", "status", "error_id"),
    [
        ("/calc/add", b'{"a": 1', 400, "go.micro.api"),  # checked by the gateway
        ("/calc/add", b'{"a": "one"}', 400, None),  # valid JSON, refused by the service
        ("/failing/forbid", b"{}", 403, "failing"),
        ("/failing/crash", b"{}", 500, None),
    ],
)
async def test_errors_on_the_hot_path_keep_their_status(
    stack: Stack, path: str, body: bytes, status: int, error_id: str | None
) -> None:
    _, http = await stack.gateway()
    for _ in range(2):  # the second request takes the cached route
        rsp = await http.post(path, content=body)
        assert rsp.status_code == status
        assert rsp.headers["content-type"] == "application/json"
        err = json.loads(rsp.content)
        assert err["code"] == status
        if error_id is not None:
            assert err["id"] == error_id


async def test_route_cache_follows_the_catalog(stack: Stack) -> None:
    gw, http = await stack.gateway()
    rsp = await http.post("/late", json={})
    assert rsp.status_code == 404  # the rpc rules: no service go.micro.api.late
    version = gw.catalog.version
    meta = {"Echo.Raw": {"path": "^/late$", "handler": "rpc"}}
    await stack.serve("go.micro.api.echo", Echo(), meta=meta)
    async with asyncio.timeout(5):
        while gw.catalog.version == version or not gw.catalog.meta:
            await asyncio.sleep(0.01)
    rsp = await http.post("/late", content=b'{"late": true}')
    assert (rsp.status_code, rsp.content) == (200, b'{"late": true}')


async def test_invalid_paths_are_not_cached(stack: Stack) -> None:
    gw, http = await stack.gateway()
    for _ in range(2):
        rsp = await http.post("/a b/c", json={})
        assert rsp.status_code == 404
    assert all(path != "/a b/c" for _, path, _ in gw._routes)


async def test_long_paths_and_header_names_are_not_cached(stack: Stack) -> None:
    """A client must not fill the gateway's tables with keys of its choosing (4096 8 KB paths
    used to hold 50 MB until the next catalog change)."""
    gw, http = await stack.gateway()
    for n in range(3):
        long_path = f"/{'a' * 5000}{n}"
        rsp = await http.post(long_path, json={}, headers={f"x-{'h' * 5000}{n}": "1"})
        assert rsp.status_code == 404
    assert all(len(path) < 5000 for _, path, _ in gw._routes)
    assert all(len(name) < 5000 for name in handlers._META_NAMES)
    assert all(len(name) < 5000 for name in metadata._canonical_cache)


def _http_scope() -> dict[str, object]:
    return {"type": "http", "headers": []}


async def test_read_body_deadline_is_408_and_outer_cancel_stays_a_cancel() -> None:
    async def never() -> dict[str, object]:
        await asyncio.sleep(60)
        return {}

    with pytest.raises(RequestTimeout):
        await read_body(_http_scope(), never, limit=100, timeout=0.05)

    task = asyncio.create_task(read_body(_http_scope(), never, limit=100, timeout=30))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the reading task is left as it was found: no stray cancellation pending
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_read_body_joins_chunks() -> None:
    parts = [b'{"a"', b": 1", b"}"]

    async def receive() -> dict[str, object]:
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    assert await read_body(_http_scope(), receive, limit=100, timeout=1) == b'{"a": 1}'


async def test_read_body_times_out_on_a_body_that_stops_after_its_first_part() -> None:
    """The first part came with the head (read at once, no timer yet): the rest must still
    arrive within the timeout."""
    first = True

    async def receive() -> dict[str, object]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(60)
        return {}

    async with asyncio.timeout(5):
        with pytest.raises(RequestTimeout):
            await read_body(_http_scope(), receive, limit=100, timeout=0.05)


async def test_read_body_waits_for_parts_that_are_not_there_yet() -> None:
    parts = [b'{"a"', b": 1", b"}"]

    async def receive() -> dict[str, object]:
        await asyncio.sleep(0.01)  # every part, the first too, comes later than the head
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    assert await read_body(_http_scope(), receive, limit=100, timeout=5) == b'{"a": 1}'


@pytest.mark.parametrize("later", [False, True])
async def test_read_body_refuses_a_first_part_over_the_limit_or_a_disconnect(later: bool) -> None:
    async def big() -> dict[str, object]:
        if later:
            await asyncio.sleep(0)
        return {"type": "http.request", "body": b"x" * 101}

    async def gone() -> dict[str, object]:
        if later:
            await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    with pytest.raises(PayloadTooLarge):
        await read_body(_http_scope(), big, limit=100, timeout=5)
    with pytest.raises(BadRequest, match="disconnected"):
        await read_body(_http_scope(), gone, limit=100, timeout=5)
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_read_body_arms_no_timer_for_a_body_that_came_with_the_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A timer per request is measurable on the hot path (see benchmarks/README.md)."""
    armed: list[float] = []
    real = TaskDeadline

    def counting(when: float, loop: asyncio.AbstractEventLoop | None = None) -> object:
        armed.append(when)
        return real(when, loop)

    monkeypatch.setattr(_http, "TaskDeadline", counting)

    async def whole() -> dict[str, object]:
        return {"type": "http.request", "body": b"{}"}

    assert await read_body(_http_scope(), whole, limit=100, timeout=5) == b"{}"
    assert armed == []
