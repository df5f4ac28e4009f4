"""The service of ``benchmarks.mcp``: examples/greeter's Greeter plus ``--ops`` more
endpoints (``Ops.Op000``...), each with a small typed request and response, so that the
registry holds a hundred tools' worth of schemas.

python benchmarks/_mcp_service.py --server_name NAME [--ops 99]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from msgspec import Struct

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import micro
from examples.greeter.server import Greeter


class OpRequest(Struct):
    id: int
    note: str = ""


class OpResponse(Struct):
    id: int
    ok: bool


def ops_handler(count: int) -> Any:
    """A handler class with ``count`` documented methods ``op_000``..."""

    async def op(self: Any, req: OpRequest) -> OpResponse:
        """Run one operation by id."""
        return OpResponse(id=req.id, ok=True)

    methods = {f"op_{i:03d}": op for i in range(count)}
    return type("Ops", (), methods)()


if __name__ == "__main__":
    argv = sys.argv[1:]
    ops = 99
    if "--ops" in argv:
        i = argv.index("--ops")
        ops = int(argv[i + 1])
        del argv[i : i + 2]
    service = micro.Service()
    service.handle(Greeter())
    service.handle(ops_handler(ops))
    service.run(argv)
