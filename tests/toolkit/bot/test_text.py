"""Chat replies: long tables shortened, long messages cut into parts that each read well."""

from __future__ import annotations

import pytest

from micro.toolkit.bot.text import chunks, shorten


def test_shorten_keeps_short_text_and_counts_what_it_cuts() -> None:
    assert shorten("a\nb\nc", 3) == "a\nb\nc"
    lines = [f"line {i}" for i in range(10)]
    got = shorten("\n".join(lines), 4, "micro get service x shows all")
    assert got.split("\n") == [*lines[:3], "… 7 more lines (micro get service x shows all)"]
    assert shorten("\n".join(lines), 4).split("\n")[-1] == "… 7 more lines"


def test_chunks_of_short_text_and_no_limit() -> None:
    assert chunks("hello", 10) == ["hello"]
    assert chunks("x" * 50, None) == ["x" * 50]


@pytest.mark.parametrize("limit", [60, 100, 1000])
def test_chunks_cut_at_line_ends_and_lose_nothing(limit: int) -> None:
    lines = [f"service-{i:03d} {'.' * (i % 30)}" for i in range(200)]
    text = "\n".join(lines)
    parts = chunks(text, limit)
    assert len(parts) > 1
    assert all(len(part) <= limit for part in parts)
    assert "\n".join(parts) == text  # every line whole, in order


def test_a_line_longer_than_a_part_is_cut_and_rejoins() -> None:
    text = "a" * 250
    parts = chunks(text, 100)
    assert all(len(part) <= 100 for part in parts)
    assert "".join(parts) == text


def test_a_code_block_cut_in_two_is_closed_and_opened_again() -> None:
    body = [f'  "key{i}": {i},' for i in range(40)]
    text = "\n".join(["```json", "{", *body, "}", "```"])
    parts = chunks(text, 200)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 200
        assert part.startswith("```json\n")
        assert part.endswith("\n```")
    inner = [line for part in parts for line in part.split("\n")[1:-1]]
    assert inner == ["{", *body, "}"]


def test_text_after_a_block_is_not_fenced() -> None:
    text = "\n".join(["```", *["row"] * 30, "```", *[f"after {i}" for i in range(30)]])
    parts = chunks(text, 120)
    assert parts[-1].startswith("after")
    assert "```" not in parts[-1]
