"""``python -m micro.toolkit.api``: the same as ``micro api``."""

from __future__ import annotations

import sys

from micro.toolkit.api.cli import main

if __name__ == "__main__":
    sys.exit(main())
