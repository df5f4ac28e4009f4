"""``python -m micro.toolkit.web``: the same as ``micro web``."""

from __future__ import annotations

import sys

from micro.toolkit.web.cli import main

if __name__ == "__main__":
    sys.exit(main())
