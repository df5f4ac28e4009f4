"""The options of ``micro mcp`` (flags and ``MICRO_MCP_*`` env vars alike)."""

from __future__ import annotations

from dataclasses import dataclass

from micro.toolkit._options import AppOptions
from micro.toolkit.mcp.policy import Policy, parse_scopes

__all__ = ["MCP_ID", "McpOptions"]

MCP_ID = "go.micro.mcp"
"""The ``id`` of the errors ``micro mcp`` makes itself (refusals, bad arguments, limits)."""


@dataclass
class McpOptions(AppOptions):
    """Everything ``micro mcp`` can be told: its own options below, and the HTTP limits,
    ``timeout`` (per tool call), ``rate_limit``/``rate_burst`` (per client, on tool calls),
    ``access_log`` and ``registry`` of :class:`AppOptions`.

    Attributes:
        address: ``host:port`` of the Streamable HTTP endpoint (``/mcp``); None: stdio.
        allow, deny: shell globs over ``service.Handler.Method`` (see :mod:`.policy`).
        read_only: offer only endpoints whose metadata says ``safe: true``; no publish.
        enable_publish: offer the ``publish`` tool.
        max_result: largest tool result, in bytes of JSON; beyond it the call is an error.
        auth_scopes: ``TOKEN=GLOB|GLOB`` entries: the tools each token may see and call.
        audit_log: one line per tool call on ``micro.mcp.audit``.
    """

    address: str | None = None
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    read_only: bool = False
    enable_publish: bool = False
    max_result: int = 1024 * 1024
    auth_scopes: tuple[str, ...] = ()
    audit_log: bool = True
    max_body: int = 4 * 1024 * 1024

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        if self.max_result < 1:
            raise ValueError("max_result must be >= 1")
        if self.address is not None and ":" not in self.address:
            raise ValueError(f"--address {self.address!r}: expected host:port or :port")
        parse_scopes(self.auth_scopes)
        super().check()

    def policy(self) -> Policy:
        """The :class:`Policy` these options describe."""
        return Policy(
            allow=self.allow,
            deny=self.deny,
            read_only=self.read_only,
            enable_publish=self.enable_publish,
            scopes=parse_scopes(self.auth_scopes),
        )
