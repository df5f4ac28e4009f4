"""examples/greeter's handler served under the name given by --server_name (for tests)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import micro
from examples.greeter.server import Greeter

if __name__ == "__main__":
    service = micro.Service()
    service.handle(Greeter())
    service.run(sys.argv[1:])
