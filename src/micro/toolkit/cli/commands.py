"""The data commands: list, get, proto, register, deregister, call, stream, publish, health,
stats.

Each ``cmd_*`` coroutine takes a :class:`~micro.toolkit.cli.runtime.Runtime` and the parsed
arguments, prints its result (a table, or one JSON document with ``--output json``) and
returns the exit code. ``micro cli`` runs the same coroutines inside one long-lived runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from micro.client.rpc import node_address
from micro.errors import MicroError
from micro.plugins import install_hint
from micro.settings import Settings
from micro.toolkit.cli import output
from micro.toolkit.cli.app import CliError, cli_settings
from micro.toolkit.cli.runtime import (
    UNREACHABLE_PROXY,
    Runtime,
    call_error,
    one_line,
    parse_metadata,
    read_json,
    read_json_docs,
)
from micro.transport import get_header

__all__ = ["COMMANDS", "dispatch", "execute"]

Command = Callable[[Runtime, argparse.Namespace], Awaitable[int]]
DEBUG_CONTENT_TYPE = "application/json"  # Debug.* answer Structs: not in protobuf or bytes


def settings_of(args: argparse.Namespace) -> Settings:
    """The command's settings (read once per command line; a shell line reads its own)."""
    found = getattr(args, "settings", None)
    if not isinstance(found, Settings):
        found = args.settings = cli_settings(args)
    return found


def output_mode(args: argparse.Namespace) -> str:
    mode = str(settings_of(args)["output"])
    if mode not in ("table", "json"):
        raise CliError(f"unknown output {mode!r}; use table or json")
    return mode


def show(args: argparse.Namespace, data: Any, render: Callable[[], Any]) -> None:
    """Print ``data`` as JSON (``--output json``) or ``render()`` as a rich table."""
    if output_mode(args) == "json":
        output.print_json(data)
    else:
        output.console().print(render())


def _seconds(text: str | None, default: float) -> float:
    from micro.client.options import parse_duration

    if not text:
        text = str(default)
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise CliError(f"timeout: {exc}") from None
    if value <= 0:
        raise CliError(f"timeout must be positive, got {text!r}")
    return value


# -- registry ----------------------------------------------------------------------------


async def cmd_list(rt: Runtime, args: argparse.Namespace) -> int:
    if args.what == "nodes":
        if not args.service:
            raise CliError("list nodes needs a service name: micro list nodes greeter")
        rows = output.node_rows(await rt.services(args.service))
        show(args, rows, lambda: output.nodes_table(rows))
        return 0
    async with output.waiting(f"listing services in {rt.where()}"):
        found = await rt.registry_op(rt.registry.list_services())
    names = sorted({s.name for s in found})
    show(args, names, lambda: output.services_table(names))
    return 0


async def cmd_get(rt: Runtime, args: argparse.Namespace) -> int:
    async with output.waiting(f"looking up {args.service}"):
        services = await rt.services(args.service)
    show(args, output.service_json(services), lambda: output.service_view(services))
    return 0


async def cmd_proto(rt: Runtime, args: argparse.Namespace) -> int:
    """The service's .proto, from the JSON Schema its endpoints carry in the registry."""
    async with output.waiting(f"looking up {args.service}"):
        services = await rt.services(args.service)
    try:
        from micro.grpc._protogen import from_endpoints
    except ImportError as exc:
        raise CliError(f"micro proto needs protobuf ({exc}): {install_hint('grpc')}") from None
    endpoints: dict[str, Any] = {}
    for service in services:  # every version's endpoints; the first listed wins a name
        for endpoint in service.endpoints or ():
            endpoints.setdefault(endpoint.name, endpoint)
    made = from_endpoints(args.service, endpoints.values(), package=args.package)
    if not made.rpcs:
        raise CliError(f"{args.service} lists no RPC endpoints in the registry")
    source = made.source()
    if output_mode(args) == "json":
        data = {"name": made.file.name, "package": made.package, "services": made.services}
        output.print_json({**data, "source": source})
    else:
        sys.stdout.write(source)
    return 0


def _service_arg(text: str) -> Any:
    from micro.registry import decode_service

    raw = read_json(text, "service")
    try:
        service = decode_service(raw) if isinstance(raw, dict) else None
    except MicroError as exc:
        raise CliError(f"invalid service: {exc.detail}") from None
    if service is None or not service.name:
        raise CliError('invalid service: expected an object like {"name": ..., "nodes": [...]}')
    if not service.nodes:
        raise CliError(f"invalid service: {service.name} has no nodes")
    return service


async def cmd_register(rt: Runtime, args: argparse.Namespace) -> int:
    service = _service_arg(args.definition)
    if args.command == "register":
        await rt.registry_op(rt.registry.register(service, ttl=args.ttl))
        if rt.registry_name == "mdns":
            print("note: an mdns registration lasts only while its process runs", file=sys.stderr)
    else:
        await rt.registry_op(rt.registry.deregister(service))
    nodes = [n.id for n in service.nodes]
    done = "registered" if args.command == "register" else "deregistered"
    result = {"service": service.name, "version": service.version, done: nodes}
    show(args, result, lambda: f"{done} {service.name} {service.version}: {', '.join(nodes)}")
    return 0


# -- rpc ---------------------------------------------------------------------------------


def _call_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "address": args.address or None,
        "metadata": parse_metadata(args.metadata) or None,
        "content_type": settings_of(args)["content_type"],
    }
    if args.retries is not None:
        if args.retries < 0:
            raise CliError("retries must be 0 or more")
        options["retries"] = args.retries
    return options


async def cmd_call(rt: Runtime, args: argparse.Namespace) -> int:
    request = read_json(args.request)
    options = _call_options(args)
    timeout = _seconds(args.timeout, settings_of(args)["client_request_timeout"])
    try:
        async with output.waiting(f"calling {args.service} {args.endpoint}"):
            rsp = await rt.client.call(
                args.service, args.endpoint, request, timeout=timeout, **options
            )
    except MicroError as exc:
        raise call_error(exc, args.service, args.endpoint, timeout) from exc
    output.print_json(rsp)
    return 0


class _Printer:
    """Prints stream responses as they arrive: JSON lines, or one streamed JSON array."""

    def __init__(self, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.count = 0

    def item(self, obj: Any) -> None:
        if self.json_mode:
            prefix = "[\n  " if self.count == 0 else ",\n  "
            print(prefix + output.dump_json(obj, indent=None), end="", flush=True)
        else:
            print(output.dump_json(obj, indent=None), flush=True)
        self.count += 1

    def end(self, failed: bool = False) -> None:
        """Close the JSON array (left empty-free on failure: stdout stays valid or empty)."""
        if self.json_mode and (self.count or not failed):
            print("[]" if self.count == 0 else "\n]", flush=True)


async def _send_rest(stream: Any, requests: list[Any]) -> None:
    """Send the requests after the first (the stream sends that one), then end our side."""
    with contextlib.suppress(MicroError, OSError):
        for request in requests[1:]:
            await stream.send(request)
        await stream.close_send()


async def _listed_as_stream(rt: Runtime, args: argparse.Namespace) -> bool | None:
    """Whether the registry lists the endpoint as a stream; None when it does not list it.

    micro writes ``stream`` metadata on every endpoint, go-micro only on streams, so a
    listed endpoint without ``stream: true`` is unary. With ``--address`` the registry is
    not asked (the node may not be registered, and an mDNS miss takes a while).
    """
    if args.address:
        return None
    try:
        services = await rt.registry.get_service(args.service)
    except (MicroError, OSError, TimeoutError):  # the stream will report it, or fall back
        return None
    found = [
        (ep.metadata or {}).get("stream") == "true"
        for svc in services
        for ep in svc.endpoints
        if ep.name == args.endpoint
    ]
    return any(found) if found else None


def _not_a_stream(args: argparse.Namespace) -> CliError:
    request = "" if args.request == "{}" else " " + shlex.quote(args.request)
    return CliError(
        f"{args.endpoint} of {args.service} is not a stream; "
        f"use: micro call {args.service} {args.endpoint}{request}",
        code=2,
    )


def _answered_unary(stream: Any) -> bool:
    """The first response came without ``Micro-Stream``: a unary endpoint answered it."""
    return not get_header(getattr(stream, "header", {}), "Micro-Stream")


async def cmd_stream(rt: Runtime, args: argparse.Namespace) -> int:
    requests = read_json_docs(args.request)
    options = _call_options(args)
    timeout = _seconds(args.timeout, settings_of(args)["client_request_timeout"])
    if args.timeout:
        options["timeout"] = timeout
    listed = await _listed_as_stream(rt, args)
    if listed is False:
        raise _not_a_stream(args)
    printer = _Printer(output_mode(args) == "json")
    first = requests[0] if requests else None
    stream = rt.client.stream(args.service, args.endpoint, first, **options)
    sender: asyncio.Task[None] | None = None
    try:
        async with output.waiting(f"opening a stream to {args.service} {args.endpoint}"):
            await stream.open()
        sender = asyncio.create_task(_send_rest(stream, requests))
        while True:
            async with output.waiting("waiting for the next response"):
                try:
                    rsp = await stream.recv()
                except StopAsyncIteration:
                    break
            if listed is None and printer.count == 0 and _answered_unary(stream):
                raise _not_a_stream(args)
            printer.item(rsp)
    except MicroError as exc:
        printer.end(failed=True)
        raise call_error(exc, args.service, args.endpoint, timeout) from exc
    except BaseException:
        printer.end(failed=True)
        raise
    else:
        printer.end()
    finally:
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        await stream.close()
    return 0


async def cmd_publish(rt: Runtime, args: argparse.Namespace) -> int:
    message = read_json(args.message, "message")
    metadata = parse_metadata(args.metadata) or None
    publish = getattr(rt.client, "publish", None)
    if publish is None:
        raise CliError("publish is not available: this micro.Client has no publish()")
    content_type = settings_of(args)["content_type"]
    try:
        async with output.waiting(f"publishing to {args.topic}"):
            await publish(args.topic, message, content_type=content_type, metadata=metadata)
    except MicroError as exc:
        if exc.detail.startswith(UNREACHABLE_PROXY):
            raise CliError(exc.detail) from exc
        raise CliError(f"publish to {args.topic} failed: {exc.detail or exc}") from exc
    show(args, {"topic": args.topic, "published": True}, lambda: f"published to {args.topic}")
    return 0


async def _probe(
    rt: Runtime, args: argparse.Namespace, node: Any, timeout: float
) -> dict[str, Any]:
    endpoint = "Debug.Health" if args.command == "health" else "Debug.Stats"
    row: dict[str, Any] = {"node": node.id, "address": node.address}
    try:
        rsp = await rt.client.call(
            args.service,
            endpoint,
            {},
            address=node_address(node),
            timeout=timeout,
            retries=0,
            content_type=DEBUG_CONTENT_TYPE,
        )
    except MicroError as exc:
        row["error"] = call_error(exc, args.service, endpoint, timeout).args[0]
        return row
    except Exception as exc:  # one broken node must not hide the others
        row["error"] = one_line(exc)
        return row
    if args.command == "health":
        row["status"] = rsp.get("status", "") if isinstance(rsp, dict) else str(rsp)
    else:
        row["stats"] = rsp
    return row


async def cmd_debug(rt: Runtime, args: argparse.Namespace) -> int:
    """``health`` and ``stats``: one row per node; exit 1 when any node failed."""
    timeout = _seconds(args.timeout, 2.0)
    services = await rt.services(args.service)
    nodes = [node for svc in services for node in svc.nodes]
    async with output.waiting(f"asking {len(nodes)} node(s) of {args.service}"):
        rows = await asyncio.gather(*(_probe(rt, args, n, timeout) for n in nodes))
    render = output.health_table if args.command == "health" else output.stats_table
    show(args, rows, lambda: render(rows))
    ok = all("error" not in r and r.get("status", "ok") == "ok" for r in rows)
    return 0 if ok else 1


COMMANDS: dict[str, Command] = {
    "list": cmd_list,
    "get": cmd_get,
    "proto": cmd_proto,
    "register": cmd_register,
    "deregister": cmd_register,
    "call": cmd_call,
    "stream": cmd_stream,
    "publish": cmd_publish,
    "health": cmd_debug,
    "stats": cmd_debug,
}


async def execute(rt: Runtime, args: argparse.Namespace) -> int:
    """Run one data command inside ``rt``."""
    command = COMMANDS.get(args.command)
    if command is None:
        raise CliError(f"'{args.command}' cannot run here")
    return await command(rt, args)


async def _main(args: argparse.Namespace) -> int:
    async with Runtime(settings_of(args)) as rt:
        return await execute(rt, args)


def dispatch(args: argparse.Namespace) -> int:
    """Run the command ``args`` names, in a fresh event loop where it needs one."""
    if args.command == "new":
        from micro.toolkit.cli import scaffold

        return scaffold.create(args)
    if args.command == "run":
        from micro.toolkit.cli import reload

        return reload.run(args)
    if args.command == "cli":
        from micro.toolkit.cli import shell

        return shell.run(args)
    output_mode(args)  # a bad MICRO_OUTPUT fails before anything connects
    from micro.service import run_loop

    result: list[int] = []

    async def main() -> None:
        result.append(await _main(args))

    run_loop(main())
    return result[0]
