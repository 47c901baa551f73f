"""The few requests the proxy itself sends to Redis (Sentinel, cluster maps).

Not the data path: these are fixed commands, encoded here and read back
with hiredis, on blocking sockets before the loop runs (start-up,
``--explain``) or on a pool's own connections.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

import hiredis

if TYPE_CHECKING:
    import socket

__all__ = ["read_replies", "redis_command"]


def redis_command(*args: bytes) -> bytes:
    """One RESP request of ``args`` (the few the proxy itself sends)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def read_replies(sock: socket.socket, count: int) -> list[Any]:
    """``count`` replies read from the blocking ``sock`` (a few small ones)."""
    reader = hiredis.Reader()
    replies: list[Any] = []
    for _ in range(1000):  # a few small replies; bounded whatever the peer does
        while len(replies) < count and (reply := reader.gets()) is not False:
            replies.append(reply)
        if len(replies) == count:
            return replies
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "the server closed the connection")
        reader.feed(data)
    raise TimeoutError("the server sent too many fragments")
