"""The programs of the remote environment (tests/netns.py), run inside its namespace.

    python netns_remote.py serve greeter --server_name NAME   # Greeter + Faults
    python netns_remote.py serve counter --server_name NAME   # examples/streaming's Counter
    python netns_remote.py publish TOPIC COUNT INTERVAL       # bodies {"n": 0..COUNT-1}
    python netns_remote.py registered SECONDS NAME...        # exit 0 once all are registered

Registry, broker and addresses come from the ``MICRO_*`` environment. ``Faults.Fail``
raises the error it is asked for (code, id, detail); ``Faults.Sleep`` sleeps.
``publish`` prints each ``n`` once the broker accepted it and retries a refused publish
(its broker may be restarting), so every ``n`` is published at least once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from msgspec import Struct

import micro
from examples.greeter.server import Greeter
from examples.streaming.server import Counter
from micro.errors import MicroError


class FailRequest(Struct):
    code: int
    detail: str
    id: str = "faults"


class SleepRequest(Struct):
    seconds: float


class Faults:
    async def fail(self, req: FailRequest) -> dict[str, str]:
        raise MicroError(req.detail, id=req.id, code=req.code)

    async def sleep(self, req: SleepRequest) -> dict[str, float]:
        await asyncio.sleep(req.seconds)
        return {"slept": req.seconds}


def serve(kind: str, argv: list[str]) -> None:
    service = micro.Service()
    if kind == "greeter":
        service.handle(Greeter())
        service.handle(Faults())
    else:
        service.handle(Counter())
    service.run(argv)


async def publish(topic: str, count: int, interval: float) -> None:
    async with micro.Client() as client:
        for n in range(count):
            while True:
                try:
                    await client.publish(topic, {"n": n})
                    break
                except MicroError as exc:
                    print(f"retry {n}: {exc.detail}", flush=True)
                    await asyncio.sleep(0.2)
            print(n, flush=True)
            await asyncio.sleep(interval)


async def registered(seconds: float, names: Sequence[str]) -> int:
    from micro import plugins
    from micro.errors import ServiceNotFound
    from micro.settings import BACKEND_GROUPS, load

    deadline = time.monotonic() + seconds
    async with plugins.create("registry", settings=load(groups=BACKEND_GROUPS)) as registry:
        waiting = list(names)
        while waiting:
            try:
                await registry.get_service(waiting[0])
                waiting.pop(0)
                continue
            except ServiceNotFound:
                if time.monotonic() > deadline:
                    print(f"not registered: {waiting}", file=sys.stderr)
                    return 1
            await asyncio.sleep(0.1)
    return 0


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    if command == "serve":
        serve(args[0], args[1:])
    elif command == "publish":
        asyncio.run(publish(args[0], int(args[1]), float(args[2])))
    elif command == "registered":
        return asyncio.run(registered(float(args[0]), args[1:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
