"""Hostile request content (bodies, queries, headers) gets a 400 naming it, never a 500."""

from __future__ import annotations

import json
import logging

import pytest

from micro.errors import BadRequest
from micro.toolkit.api.stream import _frame
from tests.toolkit.api.conftest import Stack

DEEP = b"[" * 100_000 + b"]" * 100_000


def detail_of(body: bytes, status: int) -> str:
    err = json.loads(body)
    assert err["code"] == status
    return str(err["detail"])


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_deeply_nested_json_is_400_without_a_traceback(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    _, http = await stack.gateway(enable_rpc=True)
    rsp = await http.post("/greeter/say-hello", content=DEEP)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    rsp = await http.post("/rpc", content=DEEP)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    call = {"service": "go.micro.api.calc", "endpoint": "Calc.Add", "request": DEEP.decode()}
    rsp = await http.post("/rpc", json=call)
    assert "nested too deeply" in detail_of(rsp.content, 400)
    # a query value that looks like JSON but cannot be read stays a string for the service
    rsp = await http.get("/calc/add", params={"a": "1", "extra": "[" * 20_000})
    assert rsp.status_code == 200
    assert_no_traceback(caplog)


def test_deeply_nested_websocket_message_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        _frame({"type": "websocket.receive", "bytes": DEEP})
