"""The dashboard's ``/_/`` handlers of this module (placeholder until it lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.types import ASGIApp

if TYPE_CHECKING:
    from micro.toolkit.web.app import Dashboard

__all__ = ["routes"]


def routes(dash: Dashboard) -> dict[str, ASGIApp]:
    """The module's paths (none yet)."""
    return {}
