"""The memcache ASCII protocol as the proxy core sees it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.protocols.memcache import _fanout
from corenet.protocols.memcache._parser import VALUE_MAX, ReplyParser, RequestParser

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.msg import Msg
    from corenet.protocol import PoolOptions

__all__ = ["MemcacheProtocol"]


class MemcacheProtocol:
    """memcached's text protocol: no set-up requests, ``SERVER_ERROR`` for proxy errors.

    Args:
        max_value: the largest data block forwarded (see ``RequestParser``).
    """

    name = "memcache"
    variants = 1
    health_check = b"version\r\n"
    """What an active health check sends (``health_check_interval``)."""

    def __init__(self, *, max_value: int = VALUE_MAX) -> None:
        self.max_value = max_value

    def new_request_parser(self, pool: PoolOptions) -> RequestParser:
        return RequestParser(max_value=self.max_value)

    def new_reply_parser(self) -> ReplyParser:
        return ReplyParser()

    def error_reply(self, message: str) -> bytes:
        text = message.replace("\r", " ").replace("\n", " ")
        return b"SERVER_ERROR " + text.encode("utf-8", "replace") + b"\r\n"

    def server_handshake(self, pool: PoolOptions, variant: int) -> Sequence[bytes]:
        return ()

    def fragment(self, msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
        return _fanout.fragment(msg, server_of)
