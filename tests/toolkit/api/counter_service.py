"""examples/streaming's Counter served under the name given by --server_name (for tests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

import micro
from examples.streaming.server import Counter

if __name__ == "__main__":
    service = micro.Service()
    service.handle(Counter())
    service.run(sys.argv[1:])
