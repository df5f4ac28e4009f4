"""Load shedding and the per-client rate limit."""

from __future__ import annotations

import pytest

from micro.errors import ServiceUnavailable, TooManyRequests
from micro.server._ratelimit import RateLimiter
from micro.server._shed import LoadShedder
from tests.selector.helpers import FakeClock


def test_shedder_refuses_past_the_limit() -> None:
    shed = LoadShedder(2, "greeter")
    assert shed.check(1) is None
    assert shed.check(2) is None
    error = shed.check(3)
    assert isinstance(error, ServiceUnavailable)
    assert error.code == 503
    assert "2 calls in flight on greeter, limit 2" in error.detail
    assert shed.shed == 1
    with pytest.raises(ValueError, match="at least 1"):
        LoadShedder(0, "greeter")


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, burst=3, clock=clock)
    assert [limiter.check("10.0.0.1:5000", {}) for _ in range(3)] == [None] * 3
    error = limiter.check("10.0.0.1:5001", {})  # another port, same host: same caller
    assert isinstance(error, TooManyRequests)
    assert error.code == 429
    assert "10.0.0.1 is over 10 calls/s (burst 3)" in error.detail
    assert limiter.check("10.0.0.2:5000", {}) is None  # another caller has its own bucket
    clock.advance(0.1)  # one token back
    assert limiter.check("10.0.0.1:5000", {}) is None
    assert limiter.check("10.0.0.1:5000", {}) is not None
    assert limiter.limited == 2


def test_bucket_never_holds_more_than_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, burst=2, clock=clock)
    limiter.check("h:1", {})
    clock.advance(3600)
    assert [limiter.check("h:1", {}) is None for _ in range(3)] == [True, True, False]


def test_caller_named_by_a_metadata_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, key="x-api-key", clock=clock)
    assert limiter.check("h:1", {"X-Api-Key": "alice"}) is None
    assert limiter.check("h:1", {"x-api-key": "bob"}) is None  # any spelling of the key
    error = limiter.check("h:2", {"X-Api-Key": "alice"})
    assert error is not None
    assert "X-Api-Key=alice" in error.detail
    assert limiter.check("h:1", {}) is None  # no key: the remote host names it


def test_ipv6_remote_is_keyed_by_host() -> None:
    limiter = RateLimiter(1, clock=FakeClock())
    assert limiter.caller("[::1]:5000", {}) == "::1"
    assert limiter.caller("127.0.0.1:5000", {}) == "127.0.0.1"
