"""``python -m micro.toolkit.proxy``: the same as ``micro proxy``."""

from __future__ import annotations

import sys

from micro.toolkit.proxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
