"""The circuit breaker's state machine, driven by a fake clock."""

from __future__ import annotations

import pytest

from micro._window import Window
from micro.client._breaker import Breaker, BreakerPolicy, Breakers, is_failure
from micro.errors import BadRequest, ConnectError, MicroError, NotFound, Timeout
from tests.selector.helpers import FakeClock

POLICY = BreakerPolicy(failure_rate=0.5, window=10.0, min_calls=4, open_for=5.0, probes=2)
FAIL = ConnectError("refused")


def breaker(clock: FakeClock, policy: BreakerPolicy = POLICY) -> Breaker:
    return Breaker(policy, clock)


def test_opens_at_the_failure_rate_once_min_calls_are_counted() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        assert b.allow()
        b.record(FAIL)
    assert b.state == "closed"  # 3 calls < min_calls
    b.record(FAIL)
    assert b.state == "open"
    assert not b.allow()
    assert b.retry_in() == pytest.approx(5.0)


def test_stays_closed_below_the_failure_rate() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(50):
        b.record(None)
        b.record(None)
        b.record(FAIL)  # 1 in 3 fails: under 50 %
    assert b.state == "closed"


def test_old_outcomes_leave_the_window() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        b.record(FAIL)
    clock.advance(11)  # those failures are out of the window
    b.record(FAIL)
    assert b.state == "closed"
    for _ in range(3):
        b.record(FAIL)
    assert b.state == "open"


def test_half_open_lets_probes_through_and_closes_on_their_success() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        b.record(FAIL)
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.2)
    assert b.allow()
    assert b.allow()
    assert b.state == "half-open"
    assert not b.allow()  # a third waits for the probes
    b.record(None)
    assert b.state == "half-open"
    b.record(None)
    assert b.state == "closed"
    assert b.allow()
    b.record(FAIL)  # the window restarted empty: one failure does not reopen it
    assert b.state == "closed"


def test_a_failed_probe_opens_it_again() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        b.record(FAIL)
    clock.advance(5)
    assert b.allow()
    b.record(Timeout("late"))
    assert b.state == "open"
    assert b.opened == 2
    assert not b.allow()


def test_a_released_probe_frees_its_slot() -> None:
    clock = FakeClock()
    b = breaker(clock, BreakerPolicy(min_calls=1, failure_rate=1.0, open_for=1.0, probes=1))
    b.record(FAIL)
    clock.advance(1)
    assert b.allow()
    assert not b.allow()
    b.release()  # the probe was cancelled: no outcome
    assert b.allow()


@pytest.mark.parametrize(
    ("error", "failed"),
    [
        (None, False),
        (ConnectError("x"), True),
        (Timeout("x"), True),
        (MicroError("x", code=503), True),
        (BadRequest("x"), False),
        (NotFound("x"), False),
        (RuntimeError("x"), True),
    ],
)
def test_what_counts_as_a_failure(error: BaseException | None, failed: bool) -> None:
    assert is_failure(error) is failed


def test_breakers_are_kept_per_node_and_per_service() -> None:
    clock = FakeClock()
    breakers = Breakers(POLICY, clock=clock, limit=2)
    for _ in range(4):
        breakers.node("a").record(FAIL)
    assert breakers.node("a").state == "open"
    assert breakers.node("b").state == "closed"
    assert breakers.service("a").state == "closed"  # another key space
    assert breakers.open_count() == 1
    breakers.node("c")  # past the limit: closed breakers are forgotten, open ones kept
    assert set(breakers.nodes) == {"a", "c"}


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        BreakerPolicy(failure_rate=0)
    with pytest.raises(ValueError, match="min_calls"):
        BreakerPolicy(min_calls=0)


def test_window_rolls_in_tenths() -> None:
    w = Window(10.0, 0.0)
    w.add(0.0, True)
    w.add(5.0, False)
    assert (w.calls, w.failures) == (2, 1)
    w.roll(10.5)  # the bucket of t=0 left, the one of t=5 stays
    assert (w.calls, w.failures) == (1, 0)
    w.roll(1000.0)
    assert (w.calls, w.failures) == (0, 0)
