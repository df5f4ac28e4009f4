"""``application/msgpack``: MessagePack bodies, with the same types as the JSON codec.

Not a go-micro v1 core codec (go-plugins had a msgpack-rpc one); useful between Python
services. An empty body decodes as an empty map, as in the JSON codec.
"""

from __future__ import annotations

import msgspec

from micro.codec._msgspec import MsgspecCodec

__all__ = ["MsgpackCodec"]


class MsgpackCodec(MsgspecCodec):
    """MessagePack bodies (``application/msgpack``, alias ``application/x-msgpack``)."""

    content_type = "application/msgpack"
    name = "msgpack"
    format_name = "MessagePack"
    _empty = b"\x80"

    def __init__(self) -> None:
        super().__init__(msgspec.msgpack)
