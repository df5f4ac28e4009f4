"""Strategies: random, round robin across requests, consistent hashing on a metadata key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micro.errors import NoneAvailable
from micro.selector.strategies import (
    DEFAULT_SHARD_KEY,
    Hashed,
    Random,
    RoundRobin,
    Strategy,
    strategy,
)
from tests.selector.helpers import NAME, drain, nodes

THREE = nodes("a", "b", "c")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("make", [Random, RoundRobin, Hashed])
@pytest.mark.parametrize("metadata", [None, {DEFAULT_SHARD_KEY: "user-1"}])
def test_next_yields_each_node_once_then_none_available(
    make: type[Strategy], metadata: dict[str, str] | None
) -> None:
    next_node = make()(NAME, THREE, metadata)
    assert sorted(drain(next_node)) == ["a", "b", "c"]
    with pytest.raises(NoneAvailable):
        next_node()


@pytest.mark.parametrize("make", [Random, RoundRobin, Hashed])
def test_single_node(make: type[Strategy]) -> None:
    assert drain(make()(NAME, nodes("only"), {DEFAULT_SHARD_KEY: "k"})) == ["only"]


def test_round_robin_rotates_across_requests() -> None:
    rr = RoundRobin()
    firsts = [rr(NAME, THREE)().id for _ in range(30)]
    assert Counter(firsts) == {"a": 10, "b": 10, "c": 10}
    order = "abc"
    for before, after in pairwise(firsts):
        assert order[(order.index(before) + 1) % 3] == after


def test_round_robin_retries_continue_the_rotation() -> None:
    rr = RoundRobin()
    tried = drain(rr(NAME, THREE))
    assert sorted(tried) == ["a", "b", "c"]
    order = "abc"
    start = order.index(tried[0])
    assert tried == [order[(start + i) % 3] for i in range(3)]


def test_round_robin_keeps_state_per_service_and_reset_forgets() -> None:
    rr = RoundRobin()
    a = [rr("one", THREE)().id for _ in range(3)]
    b = [rr("two", THREE)().id for _ in range(3)]
    assert sorted(a) == sorted(b) == ["a", "b", "c"]
    rr.reset("one")
    assert "one" not in rr._position


def test_random_spreads_first_picks() -> None:
    firsts = Counter(Random()(NAME, THREE)().id for _ in range(3000))
    assert set(firsts) == {"a", "b", "c"}
    assert all(800 < count < 1200 for count in firsts.values()), firsts


def test_hashed_same_key_same_node() -> None:
    hashed = Hashed()
    picks = {hashed(NAME, THREE, {DEFAULT_SHARD_KEY: "user-42"})().id for _ in range(100)}
    assert len(picks) == 1


def test_hashed_key_is_case_insensitive() -> None:
    hashed = Hashed("x-user-id")
    assert hashed.key == "X-User-Id"
    for key in range(50):
        want = hashed(NAME, THREE, {"X-User-Id": str(key)})().id
        assert hashed(NAME, THREE, {"x-user-id": str(key)})().id == want
        assert hashed(NAME, THREE, {"X-USER-ID": str(key)})().id == want


_PICKS = """
from micro.selector.strategies import DEFAULT_SHARD_KEY, Hashed
from tests.selector.helpers import NAME, nodes
three = nodes("a", "b", "c")
print("".join(Hashed()(NAME, three, {DEFAULT_SHARD_KEY: f"k{i}"})().id for i in range(40)))
"""


def test_hashed_is_stable_across_processes() -> None:
    # two clients must agree: the ring uses blake2b, not the per-process salted hash()
    here = "".join(Hashed()(NAME, THREE, {DEFAULT_SHARD_KEY: f"k{i}"})().id for i in range(40))
    assert len(set(here)) == 3
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", _PICKS],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert out.stdout.strip() == here


def test_hashed_spreads_keys() -> None:
    hashed = Hashed()
    owners = Counter(
        hashed(NAME, THREE, {DEFAULT_SHARD_KEY: f"user-{i}"})().id for i in range(3000)
    )
    assert set(owners) == {"a", "b", "c"}
    assert all(count > 600 for count in owners.values()), owners


def test_hashed_retries_walk_to_distinct_nodes() -> None:
    hashed = Hashed()
    md = {DEFAULT_SHARD_KEY: "user-7"}
    tried = drain(hashed(NAME, THREE, md))
    assert sorted(tried) == ["a", "b", "c"]
    assert tried[0] == hashed(NAME, THREE, md)().id
    assert drain(hashed(NAME, THREE, md)) == tried  # the same fallback order every time


@pytest.mark.parametrize("metadata", [None, {}, {"Other": "x"}])
def test_hashed_without_key_falls_back_to_round_robin(metadata: dict[str, str] | None) -> None:
    hashed = Hashed()
    firsts = Counter(hashed(NAME, THREE, metadata)().id for _ in range(30))
    assert firsts == {"a": 10, "b": 10, "c": 10}


def _owners(hashed: Hashed, ids: list[str], keys: list[str]) -> dict[str, str]:
    candidates = nodes(*ids)
    return {k: hashed(NAME, candidates, {DEFAULT_SHARD_KEY: k})().id for k in keys}


@settings(max_examples=60, deadline=None)
@given(
    ids=st.lists(
        st.text("abcdefgh0123456789-", min_size=1, max_size=12), min_size=2, max_size=8, unique=True
    ),
    keys=st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=50, unique=True),
    data=st.data(),
)
def test_hashed_is_consistent(ids: list[str], keys: list[str], data: st.DataObject) -> None:
    hashed = Hashed()
    before = _owners(hashed, ids, keys)
    removed = data.draw(st.sampled_from(ids))
    after = _owners(hashed, [i for i in ids if i != removed], keys)
    for key, owner in before.items():
        if owner != removed:
            assert after[key] == owner  # only the removed node's keys move
    added = "new-node"
    grown = _owners(hashed, [*ids, added], keys)
    for key, owner in before.items():
        assert grown[key] in (owner, added)  # keys move only to the new node


def test_hashed_keeps_most_keys_when_an_unrelated_node_goes() -> None:
    hashed = Hashed()
    keys = [f"session-{i}" for i in range(2000)]
    ids = ["n1", "n2", "n3", "n4", "n5"]
    before = _owners(hashed, ids, keys)
    after = _owners(hashed, ids[:-1], keys)
    moved = sum(before[k] != after[k] for k in keys)
    assert moved == sum(owner == "n5" for owner in before.values())
    assert moved < len(keys) * 0.35


def test_hashed_rejects_bad_replicas() -> None:
    with pytest.raises(ValueError, match="replicas"):
        Hashed(replicas=0)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("random", Random),
        ("round_robin", RoundRobin),
        ("roundrobin", RoundRobin),
        ("Round_Robin", RoundRobin),
        ("hashed", Hashed),
    ],
)
def test_strategy_by_name(name: str, cls: type[Strategy]) -> None:
    found = strategy(name)
    assert type(found) is cls
    assert strategy(name) is not found  # a new instance each time: state is not shared


def test_strategy_unknown_name_lists_known() -> None:
    with pytest.raises(ValueError, match="hashed, random, round_robin"):
        strategy("weighted")
