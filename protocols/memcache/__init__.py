"""The memcache (ASCII text protocol) plugin: sans-IO parsers and get fan-out."""

from corenet.protocols.memcache._fanout import fragment, merge_get
from corenet.protocols.memcache._parser import (
    GET_LINE_MAX,
    KEY_MAX_LENGTH,
    LINE_MAX,
    VALUE_MAX,
    ReplyParser,
    RequestParser,
    value_blocks,
)
from corenet.protocols.memcache._protocol import MemcacheProtocol

__all__ = [
    "GET_LINE_MAX",
    "KEY_MAX_LENGTH",
    "LINE_MAX",
    "VALUE_MAX",
    "MemcacheProtocol",
    "ReplyParser",
    "RequestParser",
    "fragment",
    "merge_get",
    "value_blocks",
]
