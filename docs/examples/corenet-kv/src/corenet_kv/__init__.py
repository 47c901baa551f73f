"""corenet-kv: an example corenet protocol plugin (see README.md)."""

from corenet_kv._protocol import (
    KEY_MAX,
    LINE_MAX,
    KvProtocol,
    KvReplyParser,
    KvRequestParser,
    decode_request,
)

__all__ = [
    "KEY_MAX",
    "LINE_MAX",
    "KvProtocol",
    "KvReplyParser",
    "KvRequestParser",
    "decode_request",
]
