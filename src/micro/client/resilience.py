"""Client resilience: circuit breakers, a bulkhead, a retry budget and hedged requests.

Each is off unless configured (code, or the ``resilience`` settings group): a client with
none of them runs the plain call path, with no per-call cost. Configured, one
:class:`Resilience` wraps each call of :class:`~micro.client.rpc.RpcClient`:

1. the service's breaker is asked (open: :class:`~micro.errors.CircuitOpen`, nothing sent);
2. the retry budget counts the call; the bulkhead takes a slot
   (full: :class:`~micro.errors.BulkheadFull`);
3. each attempt goes to a node whose breaker lets it through: nodes with an open breaker
   are skipped in the selector's order, so a call goes to another node rather than fail
   (every node open: ``CircuitOpen``); its outcome feeds the node's breaker;
4. an attempt to an endpoint listed for hedging is hedged (:mod:`micro.client._hedge`);
5. a retry goes only if the budget allows it, else the last error is raised.

The call's final outcome feeds the service's breaker. ``docs/resilience.md`` explains each
mechanism, its defaults and when to use it. Outlier ejection lives in the selector (its
blacklist) and load shedding and rate limits on the server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from micro.client import CallFunc, CallOptions, Request
from micro.client._breaker import Breaker, BreakerPolicy, Breakers
from micro.client._budget import RetryBudget, RetryBudgetPolicy
from micro.client._bulkhead import Bulkhead, BulkheadPolicy
from micro.client._hedge import HedgePolicy, hedged
from micro.errors import BulkheadFull, CircuitOpen, MicroError, NoneAvailable, Timeout
from micro.registry import Node
from micro.selector import Next
from micro.settings import Settings

__all__ = [
    "BreakerPolicy",
    "BulkheadPolicy",
    "HedgePolicy",
    "Resilience",
    "RetryBudgetPolicy",
    "from_settings",
]

_ID = "go.micro.client"
Run = Callable[[Request, CallOptions, CallFunc], Awaitable[Any]]


class Resilience:
    """The resilience mechanisms of one client (each None: off).

    Args:
        breaker: thresholds of the per-node and per-service circuit breakers.
        bulkhead: the per-service limit of calls in flight.
        retry_budget: the share of calls that may be retried.
        hedge: which endpoints are hedged, and after how long.
        clock: the monotonic time source of breakers and budget (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        breaker: BreakerPolicy | None = None,
        bulkhead: BulkheadPolicy | None = None,
        retry_budget: RetryBudgetPolicy | None = None,
        hedge: HedgePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.breakers = Breakers(breaker, clock=clock) if breaker is not None else None
        self.bulkhead = Bulkhead(bulkhead) if bulkhead is not None else None
        self.budget = RetryBudget(retry_budget, clock) if retry_budget is not None else None
        self.hedge = hedge
        self.breaker_rejected = 0  # calls refused by an open breaker
        self.hedges = 0  # second attempts sent

    def __bool__(self) -> bool:
        return any(m is not None for m in (self.breakers, self.bulkhead, self.budget, self.hedge))

    def stats(self) -> dict[str, int]:
        """The counts a process reports (``Debug.Stats``; metrics may read them too)."""
        return {
            "breakers_open": self.breakers.open_count() if self.breakers is not None else 0,
            "breaker_rejected": self.breaker_rejected,
            "bulkhead_rejected": self.bulkhead.rejected if self.bulkhead is not None else 0,
            "retries_denied": self.budget.denied if self.budget is not None else 0,
            "hedges": self.hedges,
        }

    # -- around the whole call --------------------------------------------------------------

    async def run(self, run: Run, req: Request, opts: CallOptions, attempt_fn: CallFunc) -> Any:
        """``run(req, opts, attempt_fn)`` (the client's attempt loop) behind the service's
        breaker and the bulkhead."""
        service = req.service
        breaker: Breaker | None = None
        if self.breakers is not None and self.breakers.policy.per_service:
            breaker = self.breakers.service(service)
            if not breaker.allow():
                self.breaker_rejected += 1
                raise CircuitOpen(_open_detail(f"service {service}", breaker), id=_ID)
        if self.budget is not None:
            self.budget.call()
        try:
            bulkhead = self.bulkhead
            if bulkhead is None:
                result = await run(req, opts, attempt_fn)
            else:
                await bulkhead.acquire(service, opts.deadline)
                try:
                    result = await run(req, opts, attempt_fn)
                finally:
                    bulkhead.release(service)
        except (CircuitOpen, BulkheadFull):
            if breaker is not None:
                breaker.release()  # refused here: says nothing of the service
            raise
        except MicroError as exc:
            if breaker is not None:
                breaker.record(exc)
            raise
        except asyncio.CancelledError:
            if breaker is not None:
                _settle(breaker, opts)
            raise
        if breaker is not None:
            breaker.record(None)
        return result

    # -- per attempt -------------------------------------------------------------------------

    def pick(self, service: str, node: Node, nxt: Next) -> Node:
        """``node``, or the next one ``nxt`` gives whose breaker lets a call through.

        Raises:
            CircuitOpen: every node's breaker is open.
        """
        breakers = self.breakers
        if breakers is None or breakers.node(node.id).allow():
            return node
        seen = [node.id]
        while True:
            try:
                other = nxt()
            except NoneAvailable:
                break
            if other.id in seen:
                break
            seen.append(other.id)
            if breakers.node(other.id).allow():
                return other
        self.breaker_rejected += 1
        first = breakers.node(node.id)
        raise CircuitOpen(
            _open_detail(f"every node of {service} ({', '.join(seen)})", first), id=_ID
        )

    async def attempt(
        self, attempt_fn: CallFunc, node: Node, nxt: Next, req: Request, opts: CallOptions
    ) -> Any:
        """One attempt to ``node`` (picked by :meth:`pick`), hedged when configured.

        A hedge's node feeds its own breaker; the selector hears of ``node`` only (the
        caller marks it with the outcome), so a slow node that lost to its hedge is not
        counted as failing there: the breaker's timeouts are what catch it.
        """
        hedge = self.hedge
        if hedge is None or req.stream or not hedge.applies(req.endpoint):
            return await self._one(attempt_fn, node, req, opts)

        def second() -> Node | None:
            try:
                other = self.pick(req.service, nxt(), nxt)
            except (NoneAvailable, CircuitOpen):
                return None
            if other.id == node.id:
                self._release(other)
                return None
            return other

        result, sent = await hedged(
            lambda n: self._one(attempt_fn, n, req, opts), node, hedge.after, second
        )
        self.hedges += sent
        return result

    def may_retry(self) -> bool:
        return self.budget is None or self.budget.retry()

    async def _one(self, attempt_fn: CallFunc, node: Node, req: Request, opts: CallOptions) -> Any:
        breakers = self.breakers
        if breakers is None:
            return await attempt_fn(node, req, opts)
        breaker = breakers.node(node.id)
        try:
            result = await attempt_fn(node, req, opts)
        except MicroError as exc:
            breaker.record(exc)
            raise
        except asyncio.CancelledError:
            _settle(breaker, opts)
            raise
        breaker.record(None)
        return result

    def _release(self, node: Node) -> None:
        if self.breakers is not None:
            self.breakers.node(node.id).release()


def _settle(breaker: Breaker, opts: CallOptions) -> None:
    """A cancelled call: a timeout when its deadline passed, else no outcome."""
    if asyncio.get_running_loop().time() >= opts.deadline:
        breaker.record(Timeout("deadline passed", id=_ID))
    else:
        breaker.release()


def _open_detail(what: str, breaker: Breaker) -> str:
    policy = breaker.policy
    return (
        f"circuit open: {what}: at least {policy.failure_rate:.0%} of "
        f"{policy.min_calls}+ calls failed within {policy.window:g}s; "
        f"next probe in {breaker.retry_in():.1f}s"
    )


def from_settings(
    s: Settings,
    *,
    breaker: BreakerPolicy | bool | None = None,
    bulkhead: BulkheadPolicy | int | None = None,
    retry_budget: RetryBudgetPolicy | bool | None = None,
    hedge: HedgePolicy | None = None,
) -> Resilience | None:
    """The client's mechanisms: code values win, then the ``resilience_*`` settings.

    ``True`` turns a mechanism on with the settings' thresholds; ``False`` (or 0) turns it
    off whatever the settings say. Returns None when every mechanism is off.
    """
    if breaker is None:
        breaker = bool(s.get("resilience_breaker"))
    if breaker is True:
        breaker = BreakerPolicy(
            failure_rate=s.get("resilience_breaker_failure_rate") or 0.5,
            window=s.get("resilience_breaker_window") or 10.0,
            min_calls=s.get("resilience_breaker_min_calls") or 20,
            open_for=_or(s.get("resilience_breaker_open_for"), 5.0),
            probes=s.get("resilience_breaker_probes") or 3,
            per_service=_or(s.get("resilience_breaker_per_service"), True),
        )
    limits: BulkheadPolicy | None = None
    if isinstance(bulkhead, BulkheadPolicy):
        limits = bulkhead
    elif bulkhead is not False:
        configured = s.get("resilience_bulkhead") or 0
        if bulkhead is None:
            size = configured
        else:
            size = (configured or 64) if bulkhead is True else int(bulkhead)
        if size > 0:
            limits = BulkheadPolicy(size, _or(s.get("resilience_bulkhead_wait"), 0.0))
    if retry_budget is None:
        retry_budget = bool(s.get("resilience_retry_budget"))
    if retry_budget is True:
        retry_budget = RetryBudgetPolicy(
            ratio=_or(s.get("resilience_retry_ratio"), 0.2),
            min_retries=_or(s.get("resilience_retry_min"), 10),
            window=s.get("resilience_retry_window") or 10.0,
        )
    if hedge is None:
        after = s.get("resilience_hedge_after") or 0.0
        endpoints = s.get("resilience_hedge_endpoints") or ()
        if after > 0 and endpoints:
            hedge = HedgePolicy(after, frozenset(endpoints))
    guard = Resilience(
        breaker=breaker or None,
        bulkhead=limits,
        retry_budget=retry_budget or None,
        hedge=hedge,
    )
    return guard if guard else None


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value
