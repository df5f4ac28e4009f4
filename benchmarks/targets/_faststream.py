"""What the two FastStream targets share: the greeter's pydantic models and the request."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from benchmarks.harness import REQUEST

__all__ = ["BODY", "CALL_TIMEOUT_S", "HelloReply", "HelloRequest"]

CALL_TIMEOUT_S = 10.0
#: The request as every target sends it, a dict (FastStream encodes it as JSON).
BODY: Any = REQUEST


class HelloRequest(BaseModel):
    name: str


class HelloReply(BaseModel):
    msg: str
