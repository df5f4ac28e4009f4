"""The event types both services share (a published event is encoded with the codec)."""

from __future__ import annotations

import os

from msgspec import Struct

# EXAMPLE_TOPIC_PREFIX lets several runs share one broker without seeing each other's events.
PREFIX = os.environ.get("EXAMPLE_TOPIC_PREFIX", "example")
TOPIC = f"{PREFIX}.user.created"
WELCOMED = f"{PREFIX}.user.welcomed"


class UserCreated(Struct):
    id: int
    email: str


class Welcomed(Struct):
    user_id: int
    by: str
