"""Server subprocess entry point: ``python -m benchmarks.serve MODULE [--no-uvloop]``.

``MODULE`` defines ``async def open_server() -> tuple[str, Callable[[], Awaitable[None]]]``,
which starts serving and returns the address and an async ``stop``. This prints
``LISTENING <address>`` on stdout, serves until SIGTERM or SIGINT, then awaits ``stop()``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from collections.abc import Awaitable, Callable

from benchmarks.harness import READY_PREFIX
from benchmarks.loops import loop_factory

OpenServer = Callable[[], Awaitable[tuple[str, Callable[[], Awaitable[None]]]]]


async def serve(open_server: OpenServer) -> None:
    address, stop = await open_server()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(READY_PREFIX + address, flush=True)
    sys.stdout = sys.stderr  # nothing else may reach the pipe the runner stops reading
    await stopping.wait()
    await stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    parser.add_argument("module", help="module defining async open_server()")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false")
    args = parser.parse_args(argv)
    module = importlib.import_module(args.module)
    with asyncio.Runner(loop_factory=loop_factory(args.uvloop)) as runner:
        runner.run(serve(module.open_server))


if __name__ == "__main__":
    main()
