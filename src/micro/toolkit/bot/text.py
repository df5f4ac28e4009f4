"""Replies shaped for chat: long tables shortened, long messages cut into parts."""

from __future__ import annotations

__all__ = ["CHAT_LINES", "CHAT_WIDTH", "chunks", "shorten"]

CHAT_WIDTH = 72
"""Columns the CLI's tables are fitted to in a chat reply (a phone shows about this many)."""
CHAT_LINES = 40
"""Lines of a table or service view shown in a chat reply; the rest is counted."""
_FENCE = "```"


def shorten(text: str, max_lines: int, hint: str = "") -> str:
    """``text`` cut to ``max_lines`` lines, the last saying how many more there were (and
    ``hint``, where to see them all)."""
    lines = text.split("\n")
    if len(lines) <= max_lines:
        return text
    keep = max(max_lines - 1, 1)
    note = f"… {len(lines) - keep} more lines" + (f" ({hint})" if hint else "")
    return "\n".join([*lines[:keep], note])


def chunks(text: str, limit: int | None) -> list[str]:
    """``text`` in parts of at most ``limit`` characters (``None``: one part), cut at line
    ends where it can be; a Markdown code block cut in two is closed and opened again, so
    each part shows as a block."""
    if limit is None or len(text) <= limit:
        return [text]
    parts: list[str] = []
    lines: list[str] = []
    size, fence = 0, ""

    def flush() -> None:
        nonlocal lines, size
        parts.append("\n".join([*lines, _FENCE] if fence else lines))
        lines = [fence] if fence else []
        size = len(fence) + 1 if fence else 0

    for line in text.split("\n"):
        # room for the line beside a reopened fence and its closing one; a longer line is
        # cut, one piece a part
        room = max(limit - (len(fence) + len(_FENCE) + 2 if fence else 0), 1)
        pieces = [line[i : i + room] for i in range(0, len(line), room)] or [""]
        for n, piece in enumerate(pieces):
            if lines and (n > 0 or size + len(piece) + len(_FENCE) + 1 > limit):
                flush()
            lines.append(piece)
            size += len(piece) + 1
        if line.startswith(_FENCE):
            fence = "" if fence else line[:20]
    if lines and lines != [fence]:
        parts.append("\n".join(lines))
    return parts
