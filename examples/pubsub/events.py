"""The event types both services share (a published event is encoded with the codec)."""

from __future__ import annotations

from msgspec import Struct

TOPIC = "example.user.created"


class UserCreated(Struct):
    id: int
    email: str


class Welcomed(Struct):
    user_id: int
    by: str
