"""The nodes this process publishes over mDNS, and the record groups that announce, answer
and retire them (sans-IO: time is passed in).

A group is the records of one instance (a node, or a service's wildcard entry) and goes out as
one packet: go-micro's client takes one entry per packet (see :mod:`micro.registry._mdns_wire`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zeroconf._dns import DNSRecord

from micro.registry._mdns_wire import Publication, Question, answers, wildcard_records

__all__ = ["WILDCARD_REPEAT", "Group", "Published", "Publisher"]

Group = tuple[DNSRecord, ...]
WILDCARD_REPEAT = 0.5  # seconds: nodes of one service announced together share one wildcard


@dataclass(slots=True)
class Published:
    """One published node in one domain."""

    pub: Publication
    ttl: int  # record TTL
    expires: float | None  # loop time when the registration lapses (None: never)

    def remaining(self, now: float) -> int:
        if self.expires is None:
            return self.ttl
        return max(1, math.ceil(self.expires - now))

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


class Publisher:
    """Published entries by instance key, and the groups that speak for them."""

    def __init__(self) -> None:
        self.entries: dict[str, Published] = {}
        self._wildcards_sent: dict[tuple[str, str], tuple[float, int]] = {}  # -> (time, ttl)

    def announcement(self, entry: Published, now: float) -> list[Group]:
        """The node's group, with its service's wildcard unless that just went out."""
        pub, ttl = entry.pub, entry.remaining(now)
        groups = [tuple(pub.records(ttl))]
        if self._wildcard_due(pub, ttl, now):
            groups.append(tuple(wildcard_records(pub.service, pub.domain, ttl)))
        return groups

    def _wildcard_due(self, pub: Publication, ttl: int, now: float) -> bool:
        """Not when a node of the same service sent it, as long-lived, a moment ago: a process
        registering many nodes would flood the group with copies of one record."""
        key = (pub.service, pub.domain)
        last = self._wildcards_sent.get(key)
        if last is not None and now - last[0] < WILDCARD_REPEAT and last[1] >= ttl:
            return False
        self._wildcards_sent[key] = (now, ttl)
        return True

    def goodbye(self, gone: Iterable[Published]) -> list[Group]:
        """TTL-0 groups for ``gone`` (no longer in :attr:`entries`), and for the wildcards
        of services none of the remaining entries publishes.

        Each node's group keeps its address record even when another node shares the host,
        as go-micro's goodbye does: go-micro's client drops an entry without an address as
        incomplete, so its watcher would never see the node leave.
        """
        remaining = {(e.pub.service, e.pub.domain) for e in self.entries.values()}
        groups: dict[Group, None] = {}
        for pub in (entry.pub for entry in gone):
            groups[tuple(pub.records(0))] = None
            if (pub.service, pub.domain) not in remaining:
                groups[tuple(wildcard_records(pub.service, pub.domain, 0))] = None
                self._wildcards_sent.pop((pub.service, pub.domain), None)
        return list(groups)

    def answers(self, questions: Sequence[Question], now: float) -> list[Group]:
        """The groups of live entries that answer ``questions`` (each group once)."""
        live = [e for e in self.entries.values() if e.live(now)]
        out: dict[Group, None] = {}
        for question in questions:
            for entry in live:
                for group in answers(question, entry.pub, entry.remaining(now)):
                    out[tuple(group)] = None
        return list(out)
