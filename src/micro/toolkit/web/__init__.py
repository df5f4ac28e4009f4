"""``micro web``: the web dashboard, and the reverse proxy to the web services.

An ASGI application built on the public core API only (``micro.Client``, ``micro.registry``,
the broker), like ``micro api``. Pages: services (live), a service (nodes with their health
and stats, endpoints, subscribers), call, publish with a topic tail, and a terminal running
``micro cli``'s commands. ``/[name]/...`` is proxied to a node of ``go.micro.web.[name]``.
See ``docs/web.md``.
"""

from __future__ import annotations

from micro.toolkit.web.options import WebOptions

__all__ = ["WebOptions"]
