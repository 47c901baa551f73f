"""The Redis protocol plugin: RESP parsers, command table, fan-out."""

from corenet.protocols.redis._commands import COMMANDS, Command, Route
from corenet.protocols.redis._parser import ReplyParser, RequestParser, split_inline
from corenet.protocols.redis._protocol import RedisProtocol
from corenet.protocols.redis._resp import encode_command, encode_error, string2ll

__all__ = [
    "COMMANDS",
    "Command",
    "RedisProtocol",
    "ReplyParser",
    "RequestParser",
    "Route",
    "encode_command",
    "encode_error",
    "split_inline",
    "string2ll",
]
