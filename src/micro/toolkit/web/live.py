"""Live registry data for the pages (placeholder until the live-data module lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp

if TYPE_CHECKING:
    from micro.toolkit.web.app import Dashboard

__all__ = ["Live", "routes"]


class Live:
    """Background work of the live pages; nothing yet."""

    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash

    async def start(self) -> None:
        """Start watching (no-op here)."""

    async def close(self) -> None:
        """Stop watching (no-op here)."""


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """The module's paths (none yet)."""
    return {}
