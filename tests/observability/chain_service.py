"""One hop of the end-to-end trace test: ``front`` calls ``back``, ``back`` publishes, ``sink``
subscribes. Run as ``chain_service.py <role> <namespace> --server_name <ns>.<role>``."""

from __future__ import annotations

import sys

import micro

if __name__ == "__main__":
    role, ns = sys.argv[1], sys.argv[2]
    service = micro.Service()

    class Front:
        async def ping(self, req: dict[str, int]) -> dict[str, int]:
            return await service.client.call(f"{ns}.back", "Back.Echo", req)  # type: ignore[no-any-return]

    class Back:
        async def echo(self, req: dict[str, int]) -> dict[str, int]:
            await service.client.publish(f"{ns}.pinged", req)
            return req

    async def on_pinged(event: dict[str, int]) -> None:
        print("got", event, flush=True)

    if role == "front":
        service.handle(Front())
    elif role == "back":
        service.handle(Back())
    else:
        service.subscribe(f"{ns}.pinged", on_pinged)
    service.run(sys.argv[3:])
