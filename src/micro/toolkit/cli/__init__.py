"""The ``micro`` command line (first cut: list, get, call, stream, health).

    micro list services
    micro get service greeter
    micro call greeter Greeter.SayHello '{"name": "John"}'
    micro stream counter Counter.Count '{"to": 3}'
    micro health greeter

Backends come from the same ``MICRO_*`` variables and ``--registry``/``--transport`` flags
as services. Errors print one line and exit 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

EXAMPLES = """examples:
  micro list services
  micro get service greeter
  micro call greeter Greeter.SayHello '{"name": "John"}'
  micro stream counter Counter.Count '{"to": 3}'
  micro health greeter
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="micro",
        description="Observe and drive micro services.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--registry", help="registry backend [MICRO_REGISTRY] (default mdns)")
    parser.add_argument("--transport", help="transport backend [MICRO_TRANSPORT] (default http)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    lst = sub.add_parser("list", help="list services", epilog="example: micro list services")
    lst.add_argument("what", choices=["services"])
    get = sub.add_parser("get", help="describe a service", epilog="example: micro get service x")
    get.add_argument("what", choices=["service"])
    get.add_argument("name")
    for name, text in (("call", "call an endpoint"), ("stream", "stream from an endpoint")):
        cmd = sub.add_parser(
            name, help=text, epilog=f"example: micro {name} greeter Greeter.SayHello '{{}}'"
        )
        cmd.add_argument("service")
        cmd.add_argument("endpoint")
        cmd.add_argument("request", nargs="?", default="{}", help="JSON request (default {})")
        cmd.add_argument("--address", help="call this host:port instead of selecting a node")
        cmd.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    health = sub.add_parser("health", help="Debug.Health of every node")
    health.add_argument("service")
    return parser


def _request(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"micro: invalid JSON request at char {exc.pos}: {exc.msg}") from None


async def _run(args: argparse.Namespace) -> None:
    from micro import plugins
    from micro.client.rpc import RpcClient

    registry = plugins.create("registry", args.registry)
    async with registry, RpcClient(registry=registry, transport=args.transport) as client:
        if args.command == "list":
            for svc in sorted({s.name for s in await registry.list_services()}):
                print(svc)
        elif args.command == "get":
            _describe(await registry.get_service(args.name))
        elif args.command == "call":
            options = {"timeout": args.timeout, "address": args.address}
            rsp = await client.call(args.service, args.endpoint, _request(args.request), **options)
            print(json.dumps(rsp, indent=2))
        elif args.command == "stream":
            req = _request(args.request)
            async with client.stream(args.service, args.endpoint, req, address=args.address) as s:
                async for rsp in s:
                    print(json.dumps(rsp), flush=True)
        elif args.command == "health":
            for svc in await registry.get_service(args.service):
                for node in svc.nodes:
                    try:
                        rsp = await client.call(
                            args.service, "Debug.Health", {}, address=node.address, timeout=2
                        )
                        status = rsp.get("status", "?")
                    except Exception as exc:  # one bad node must not hide the others
                        status = f"error: {exc}"
                    print(f"{node.id}\t{node.address}\t{status}")


def _describe(services: Sequence[Any]) -> None:
    for svc in services:
        print(f"service  {svc.name}\nversion  {svc.version}\n")
        print("ID\tAddress\tMetadata")
        for node in svc.nodes:
            meta = ",".join(f"{k}={v}" for k, v in sorted(node.metadata.items()))
            print(f"{node.id}\t{node.address}\t{meta}")
        for ep in svc.endpoints:
            print(f"\nEndpoint: {ep.name}")
            for label, value in (("Request", ep.request), ("Response", ep.response)):
                if value is not None:
                    print(f"{label}: {_tree(value)}")


def _tree(value: Any, depth: int = 0) -> str:
    if not value.values:
        return str(value.type)
    pad = "  " * (depth + 1)
    fields = "\n".join(f"{pad}{v.name} {_tree(v, depth + 1)}" for v in value.values)
    return "{\n" + fields + "\n" + "  " * depth + "}"


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``micro`` console script."""
    args = _parser().parse_args(argv)
    from micro.errors import MicroError

    try:
        asyncio.run(_run(args))
    except MicroError as exc:
        if args.debug:
            raise
        sys.exit(f"micro: {exc.detail or exc} (code {exc.code})")
    except KeyboardInterrupt:
        sys.exit(130)
