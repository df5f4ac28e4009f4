"""The stdio line reader: lines as the SDK reads them, a line over the limit skipped whole."""

from __future__ import annotations

import asyncio

from micro.toolkit.mcp._stdio import LineReader


async def lines_of(data: bytes, limit: int) -> list[str]:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(data)
    reader.feed_eof()
    return [line async for line in LineReader(reader)]


async def test_lines_then_the_last_one_without_a_newline() -> None:
    assert await lines_of(b'{"a": 1}\n{"b": 2}\nlast', 1024) == ['{"a": 1}\n', '{"b": 2}\n', "last"]


async def test_a_line_over_the_limit_becomes_one_unreadable_line_and_reading_goes_on() -> None:
    got = await lines_of(b"x" * 100 + b"\n" + b'{"ok": 1}\n', 16)
    assert len(got) == 2
    assert not got[0].startswith("x")  # the SDK answers it as a message it cannot parse
    assert got[1] == '{"ok": 1}\n'


async def test_not_utf8_is_replaced_not_raised() -> None:
    assert await lines_of(b"\xff\xfe\n", 64) == ["\ufffd\ufffd\n"]
