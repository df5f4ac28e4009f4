"""``python -m micro.toolkit.mcp``: the same as ``micro mcp``."""

from __future__ import annotations

import sys

from micro.toolkit.mcp.cli import main

if __name__ == "__main__":
    sys.exit(main())
