"""micro.testing.eventually: wait for what happens asynchronously, without guessed sleeps."""

from __future__ import annotations

import asyncio

import pytest

from micro.errors import ServiceNotFound
from micro.testing import eventually, serve


async def test_a_predicate_is_polled_until_true() -> None:
    calls: list[int] = []

    def check() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(check, interval=0) == 3
    assert len(calls) == 3


async def test_an_async_predicate_is_awaited() -> None:
    calls: list[int] = []

    async def check() -> bool:
        calls.append(1)
        await asyncio.sleep(0)
        return len(calls) == 2

    assert await eventually(check, interval=0) is True


async def test_an_assertion_holds_once_it_stops_raising() -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        assert len(calls) == 3, f"only {len(calls)}"

    assert await eventually(check, interval=0) is None
    assert len(calls) == 3


async def test_timeout_fails_with_the_last_error() -> None:
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        raise AssertionError(f"attempt {len(calls)}")

    with pytest.raises(AssertionError, match=r"not within 0.05 s") as info:
        await eventually(check, timeout=0.05, interval=0.01)
    assert isinstance(info.value.__cause__, AssertionError)
    assert str(info.value.__cause__) == f"attempt {len(calls)}"
    assert len(calls) > 1


async def test_timeout_names_the_last_false_result() -> None:
    with pytest.raises(AssertionError, match=r"last: \[\]"):
        await eventually(lambda: [], timeout=0.05)


async def test_other_errors_propagate_at_once() -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        raise ValueError("a bug in the check")

    with pytest.raises(ValueError, match="a bug"):
        await eventually(check, timeout=5)
    assert len(calls) == 1


async def test_retry_on_widens_what_is_tried_again() -> None:
    calls: list[int] = []

    async def lookup() -> list[str]:
        calls.append(1)
        if len(calls) < 3:
            raise ServiceNotFound("not yet")
        return ["node"]

    assert await eventually(lookup, retry_on=ServiceNotFound, interval=0) == ["node"]


async def test_a_check_that_hangs_still_ends_at_the_timeout() -> None:
    never = asyncio.Event()

    async def check() -> bool:
        await never.wait()
        return True

    with pytest.raises(AssertionError, match="never finished"):
        await eventually(check, timeout=0.05)


async def test_a_timeout_error_of_the_check_is_not_mistaken_for_ours() -> None:
    def check() -> bool:
        raise TimeoutError("the check's own")

    with pytest.raises(TimeoutError, match="the check's own"):
        await eventually(check, timeout=5)


async def test_the_docstring_example() -> None:
    stored: list[dict[str, int]] = []

    async def store(user: dict[str, int]) -> None:
        stored.append(user)

    async with serve(subscribers={"user.created": store}) as client:
        await client.publish("user.created", {"id": 1})
        await eventually(lambda: stored == [{"id": 1}])
