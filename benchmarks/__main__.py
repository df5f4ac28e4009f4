"""``python -m benchmarks``: run the side-by-side RPC benchmark."""

from benchmarks.cli import main

raise SystemExit(main())
