"""Event-loop choice, shared by the client and every asyncio server: uvloop when importable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def uvloop_version() -> str | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.__version__


def loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when asked for and importable, else ``None`` (asyncio default)."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def loop_name(use_uvloop: bool) -> str:
    version = uvloop_version() if use_uvloop else None
    return f"uvloop {version}" if version else "asyncio (default loop)"
