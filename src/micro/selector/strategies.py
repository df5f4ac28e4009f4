"""Strategies: the order in which one request tries the candidate nodes of a service.

A :class:`Strategy` turns the candidates (already filtered, failing nodes left out) into a
:data:`~micro.selector.Next`. Every ``Next`` yields each candidate at most once, so retries
move on to other nodes, and raises :class:`~micro.errors.NoneAvailable` once all were tried.

- :class:`Random`: a uniformly random first node, the others in random order on retries.
- :class:`RoundRobin`: rotates **across requests** (go-micro's restarted at a random node on
  every request, so it only spread retries); state is kept per service.
- :class:`Hashed`: consistent hashing of one request-metadata value (``X-Micro-Shard`` by
  default) onto a ring of virtual nodes, so one key keeps reaching one node while the node set
  is stable, and only the keys of a removed node move. Requests without the key fall back to
  round robin.
"""

from __future__ import annotations

import abc
import bisect
import hashlib
import random
from collections.abc import Mapping, Sequence

from micro.errors import NoneAvailable
from micro.metadata import canonical
from micro.registry import Node
from micro.selector import Next

__all__ = [
    "DEFAULT_SHARD_KEY",
    "Hashed",
    "Random",
    "RoundRobin",
    "Strategy",
    "strategy",
]

DEFAULT_SHARD_KEY = "X-Micro-Shard"


def _none_available(service: str) -> NoneAvailable:
    return NoneAvailable(f"service {service}: none available", id="go.micro.selector")


class Strategy(abc.ABC):
    """Orders the candidate nodes of one request.

    Instances may keep state per service (round robin's position); one instance can serve
    many selectors. Strategies run on the client's hot path and never block.
    """

    name: str = "strategy"

    @abc.abstractmethod
    def __call__(
        self, service: str, nodes: Sequence[Node], metadata: Mapping[str, str] | None = None
    ) -> Next:
        """A ``Next`` over ``nodes`` (non-empty; not to be mutated) for one request.

        Args:
            service: the service name, for per-service state and error messages.
            nodes: the candidates, in a stable order.
            metadata: the request's metadata (only :class:`Hashed` reads it).
        """

    def reset(self, service: str) -> None:
        """Forget per-service state (called by ``Selector.reset``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Walk:
    """Yields ``nodes`` once each, starting at ``start`` and wrapping around."""

    __slots__ = ("_nodes", "_service", "_start", "_tried")

    def __init__(self, service: str, nodes: Sequence[Node], start: int) -> None:
        self._service = service
        self._nodes = nodes
        self._start = start
        self._tried = 0

    def __call__(self) -> Node:
        tried = self._tried
        count = len(self._nodes)
        if tried >= count:
            raise _none_available(self._service)
        self._tried = tried + 1
        return self._nodes[(self._start + tried) % count]


class _Shuffle:
    """A uniformly random node first; the others in random order, without repeats."""

    __slots__ = ("_first", "_nodes", "_rest", "_service")

    def __init__(self, service: str, nodes: Sequence[Node]) -> None:
        self._service = service
        self._nodes = nodes
        self._first = -1
        self._rest: list[Node] | None = None

    def __call__(self) -> Node:
        if self._first < 0:  # the first attempt builds nothing: it is on the hot path
            self._first = random.randrange(len(self._nodes))
            return self._nodes[self._first]
        rest = self._rest
        if rest is None:
            rest = self._rest = [n for i, n in enumerate(self._nodes) if i != self._first]
            random.shuffle(rest)
        if not rest:
            raise _none_available(self._service)
        return rest.pop()


class Random(Strategy):
    """Each request starts at a random node; retries go to the other nodes in random order."""

    name = "random"

    def __call__(
        self, service: str, nodes: Sequence[Node], metadata: Mapping[str, str] | None = None
    ) -> Next:
        return _Shuffle(service, nodes)


class RoundRobin(Strategy):
    """Rotates over the nodes across requests, per service; retries continue the rotation.

    Each service starts at a random position, so that many clients started together do not
    all hit the first node first.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._position: dict[str, int] = {}

    def __call__(
        self, service: str, nodes: Sequence[Node], metadata: Mapping[str, str] | None = None
    ) -> Next:
        position = self._position.get(service)
        if position is None:
            position = random.randrange(1 << 30)
        self._position[service] = position + 1
        return _Walk(service, nodes, position % len(nodes))

    def reset(self, service: str) -> None:
        self._position.pop(service, None)


def _hash(text: str) -> int:
    """A stable 64-bit hash (Python's ``hash()`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class _Ring:
    """Virtual-node positions on a 64-bit ring; ``owners[i]`` indexes the node list."""

    __slots__ = ("distinct", "owners", "points")

    def __init__(self, ids: Sequence[str], replicas: int) -> None:
        placed = sorted(
            (_hash(f"{node_id}#{r}"), index)
            for index, node_id in enumerate(ids)
            for r in range(replicas)
        )
        self.points = [point for point, _ in placed]
        self.owners = [index for _, index in placed]
        self.distinct = len(ids)

    def start(self, key: str) -> int:
        return bisect.bisect_left(self.points, _hash(key)) % len(self.points)


class _RingWalk:
    """Walks the ring clockwise from the key's point, yielding each distinct node once."""

    __slots__ = ("_nodes", "_position", "_ring", "_seen", "_service")

    def __init__(self, service: str, nodes: Sequence[Node], ring: _Ring, position: int) -> None:
        self._service = service
        self._nodes = nodes
        self._ring = ring
        self._position = position
        self._seen: set[int] = set()

    def __call__(self) -> Node:
        ring, seen = self._ring, self._seen
        if len(seen) >= ring.distinct:
            raise _none_available(self._service)
        owners = ring.owners
        position = self._position
        while (owner := owners[position]) in seen:
            position = (position + 1) % len(owners)
        seen.add(owner)
        self._position = (position + 1) % len(owners)
        return self._nodes[owner]


class Hashed(Strategy):
    """Consistent hashing of the request-metadata value under ``key`` onto the nodes.

    Args:
        key: the metadata key (case-insensitive; compared in canonical header form).
        replicas: virtual nodes per node on the ring; more spread keys more evenly.
    """

    name = "hashed"
    _MAX_RINGS = 64

    def __init__(self, key: str = DEFAULT_SHARD_KEY, *, replicas: int = 100) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.key = canonical(key)
        self.replicas = replicas
        self._fallback = RoundRobin()
        self._rings: dict[tuple[str, ...], _Ring] = {}  # by node ids; filters change the set

    def __repr__(self) -> str:
        return f"Hashed({self.key!r}, replicas={self.replicas})"

    def __call__(
        self, service: str, nodes: Sequence[Node], metadata: Mapping[str, str] | None = None
    ) -> Next:
        value = self._value(metadata) if metadata else None
        if value is None:
            return self._fallback(service, nodes)
        ring = self._ring(tuple(node.id for node in nodes))
        return _RingWalk(service, nodes, ring, ring.start(value))

    def reset(self, service: str) -> None:
        self._fallback.reset(service)

    def _value(self, metadata: Mapping[str, str]) -> str | None:
        value = metadata.get(self.key)
        if value is None:
            for k, v in metadata.items():
                if canonical(k) == self.key:
                    return v
        return value

    def _ring(self, ids: tuple[str, ...]) -> _Ring:
        ring = self._rings.get(ids)
        if ring is None:
            if len(self._rings) >= self._MAX_RINGS:
                del self._rings[next(iter(self._rings))]  # oldest first
            ring = self._rings[ids] = _Ring(ids, self.replicas)
        return ring


_NAMES: dict[str, type[Strategy]] = {
    "random": Random,
    "round_robin": RoundRobin,
    "roundrobin": RoundRobin,
    "round-robin": RoundRobin,
    "hashed": Hashed,
}


def strategy(name: str) -> Strategy:
    """A new strategy by name: ``random``, ``round_robin`` (or ``roundrobin``), ``hashed``.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    cls = _NAMES.get(name.lower())
    if cls is None:
        known = ", ".join(sorted({"random", "round_robin", "hashed"}))
        raise ValueError(f"unknown selector strategy {name!r}; known: {known}")
    return cls()
