"""``McpGateway`` in process: real RpcServers on memory backends, the SDK's client connected
to the gateway's server directly (both protocol eras)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mcp import Client

from micro import metadata as md
from micro.broker.memory import MemoryBroker
from micro.client.rpc import RpcClient
from micro.registry.memory import MemoryRegistry
from micro.server.rpc import RpcServer
from micro.settings import BACKEND_GROUPS, SERVICE_GROUPS, load
from micro.toolkit.mcp import McpGateway, McpOptions
from micro.toolkit.mcp.policy import Policy, parse_scopes
from micro.toolkit.mcp.tools import object_schema
from tests.toolkit.mcp.tools_service import SAFE, Tools


class Stack:
    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self.broker = MemoryBroker()
        self.client = RpcClient(
            registry=self.registry,
            broker=self.broker,
            settings=load(groups=BACKEND_GROUPS, environ={}),
        )
        self.servers: list[RpcServer] = []

    async def serve(self, name: str, handler: object, meta: Any = None) -> RpcServer:
        server = RpcServer(
            name=name,
            address="127.0.0.1:0",
            registry=self.registry,
            settings=load(groups=SERVICE_GROUPS, environ={}),
        )
        server.handle(handler, metadata=meta)
        await server.start()
        self.servers.append(server)
        return server

    @asynccontextmanager
    async def mcp(self, mode: str = "auto", **options: Any) -> AsyncIterator[Client]:
        options.setdefault("audit_log", False)
        gateway = McpGateway(McpOptions(**options), registry=self.registry, client=self.client,
                             settings=load(groups=BACKEND_GROUPS, environ={}))  # fmt: skip
        await gateway.start()
        try:
            async with Client(gateway.server, mode=mode, cache=None) as client:
                yield client
        finally:
            await gateway.close()


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    s = Stack()
    await s.broker.connect()
    await s.serve("tools", Tools(), SAFE)
    yield s
    for server in s.servers:
        await server.stop(grace=0.1)
    await s.client.close()
    await s.broker.disconnect()


def names(result: Any) -> set[str]:
    return {t.name for t in result.tools}


async def test_the_docstring_is_the_description_in_the_registry(stack: Stack) -> None:
    [svc] = await stack.registry.get_service("tools")
    metadata = {ep.name: ep.metadata for ep in svc.endpoints}
    assert metadata["Tools.Lookup"]["description"] == "Look an item up by key."
    assert "description" not in metadata["Tools.Names"]  # no docstring
    async with stack.mcp() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["tools.Tools.Lookup"].description.startswith("Look an item up by key.")  # type: ignore[union-attr]
        assert "Tools.Names of the tools service" in (tools["tools.Tools.Names"].description or "")


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_both_eras_list_and_call(stack: Stack, mode: str) -> None:
    async with stack.mcp(mode=mode) as client:
        listed = names(await client.list_tools())
        assert {"tools.Tools.Lookup", "tools.Tools.Sum", "services", "call"} <= listed
        found = await client.call_tool("tools.Tools.Lookup", {"key": "ab"})
        assert found.structured_content == {"key": "ab", "value": 2}


async def test_publish_only_when_enabled_and_never_read_only(stack: Stack) -> None:
    async with stack.mcp() as client:
        assert "publish" not in names(await client.list_tools())
        refused = await client.call_tool("publish", {"topic": "t", "message": {}})
        assert refused.is_error
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def handler(event: Any) -> None:
        await got.put(event.message.body)

    await stack.broker.subscribe("user.created", handler)
    async with stack.mcp(enable_publish=True) as client:
        assert "publish" in names(await client.list_tools())
        sent = await client.call_tool("publish", {"topic": "user.created", "message": {"id": 1}})
        assert sent.structured_content == {"topic": "user.created", "published": True}
        async with asyncio.timeout(5):
            assert b'"id"' in await got.get()
    async with stack.mcp(enable_publish=True, read_only=True) as client:
        assert "publish" not in names(await client.list_tools())


async def test_deny_beats_allow(stack: Stack) -> None:
    async with stack.mcp(allow=("tools.*",), deny=("tools.Tools.Big", "tools.Tools.S*")) as client:
        listed = names(await client.list_tools())
        assert "tools.Tools.Lookup" in listed
        assert not listed & {"tools.Tools.Big", "tools.Tools.Sum", "tools.Tools.Slow"}
        big = await client.call_tool("tools.Tools.Big", {"size": 1})
        assert big.is_error
        assert big.structured_content["error"]["code"] == 403


async def test_non_object_arguments_never_reach_the_service(stack: Stack) -> None:
    async with stack.mcp() as client:
        wrong = await client.call_tool("tools.Tools.Sum", {"request": ["a"]})
        assert wrong.structured_content["error"]["code"] == 400
        none = await client.call_tool("tools.Tools.Sum", {})
        assert none.structured_content["error"]["code"] == 400
        ok = await client.call_tool("tools.Tools.Sum", {"request": [2, 3]})
        assert ok.structured_content == {"result": 5}


def test_object_schema_inlines_refs_and_wraps_the_rest() -> None:
    ref: dict[str, Any] = {
        "$ref": "#/$defs/A",
        "$defs": {"A": {"type": "object", "properties": {"x": {}}}},
    }
    assert object_schema(ref, "request") == ({"type": "object", "properties": {"x": {}}}, False)
    nested: dict[str, Any] = {
        "$ref": "#/$defs/A",
        "$defs": {
            "A": {"type": "object", "properties": {"b": {"$ref": "#/$defs/B"}}},
            "B": {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}},
        },
    }
    inlined, _ = object_schema(nested, "request")
    assert inlined == {**nested["$defs"]["A"], "$defs": nested["$defs"]}  # B refers to A
    listed, wrapped = object_schema({"type": "array", "items": {"type": "integer"}}, "result")
    assert wrapped
    assert listed == {
        "type": "object",
        "properties": {"result": {"type": "array", "items": {"type": "integer"}}},
        "required": ["result"],
    }
    assert object_schema({}, "result") == (None, False)
    assert object_schema(None, "result") == (None, False)


def test_policy_lists_read_only_and_scopes() -> None:
    policy = Policy(allow=("greeter.*", "services"), deny=("greeter.Admin.*",))
    assert policy.offers("greeter.Greeter.SayHello")
    assert not policy.offers("greeter.Admin.Drop")
    assert not policy.offers("billing.Invoices.Get")
    assert policy.offers("services")
    assert not policy.offers("call")
    read_only = Policy(read_only=True, enable_publish=True)
    assert read_only.offers_endpoint("g", "G.Get", {"safe": "true"})
    assert not read_only.offers_endpoint("g", "G.Set", {})
    assert not read_only.offers_publish()
    scoped = Policy(scopes=parse_scopes(["t1=greeter.*|services", "*=services"]))
    assert scoped.in_scope("t1", "greeter.Greeter.SayHello")
    assert not scoped.in_scope("t1", "billing.X.Y")
    assert scoped.in_scope("other", "services")
    assert not scoped.in_scope("other", "greeter.Greeter.SayHello")
    assert scoped.in_scope(None, "anything")  # no token: not over HTTP, or no auth
    only = Policy(scopes=parse_scopes(["t1=services"]))
    assert not only.in_scope("stranger", "services")
    with pytest.raises(ValueError, match="entry 2"):
        parse_scopes(["a=b", "nothing"])
    with pytest.raises(ValueError, match="max_result"):
        McpOptions(max_result=0).check()


class Meta:
    async def show(self, req: dict[str, Any]) -> dict[str, str]:
        return dict(md.get())


async def test_calls_carry_the_tool_name_and_the_callers_metadata(
    stack: Stack,
) -> None:
    await stack.serve("meta", Meta())
    async with stack.mcp() as client:
        await client.list_tools()
        direct = await client.call_tool("meta.Meta.Show", {})
        assert direct.structured_content["Micro-Mcp-Tool"] == "meta.Meta.Show"
        args = {"service": "meta", "endpoint": "Meta.Show", "metadata": {"x-trace-id": "t1"}}
        seen = (await client.call_tool("call", args)).structured_content
        assert isinstance(seen, dict)
        assert seen["X-Trace-Id"] == "t1"
        assert seen["Micro-Mcp-Tool"] == "call"
