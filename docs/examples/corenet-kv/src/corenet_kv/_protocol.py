"""The kv protocol: sans-IO parsers and the Protocol object corenet uses.

Theory of operation
-------------------
Every request and every reply is one line ended by CRLF (README.md has the
grammar).  A line's length is not known until its ``\\n`` arrives, so the
parsers cannot announce it in ``need``; instead they remember how far they
scanned (``_scanned``) and resume there, so each byte is looked at once, and
they refuse a line longer than :data:`LINE_MAX` instead of buffering it.

Requests are forwarded as the bytes the client sent.  ``PING`` and requests
the server would refuse anyway (unknown command, bad arguments, bad key) are
answered by the proxy itself (``ACTION_LOCAL``); ``QUIT`` is answered and the
client closed (``ACTION_CLOSE``).  A line not ended by CRLF, or too long, is
a :class:`~corenet.errors.ProtocolError`: the client gets the error reply
and is disconnected, since the stream can no longer be trusted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.errors import ProtocolError, RemoteProtocolError
from corenet.msg import ACTION_CLOSE, ACTION_LOCAL, Msg

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.config import PoolConfig


LINE_MAX = 8192  # longest request line, CRLF included
REPLY_LINE_MAX = LINE_MAX + 8  # "$" + the longest value + CRLF fits
KEY_MAX = 250
REPLY_TYPES = b"+-:$_"

PONG = b"+PONG\r\n"
OK = b"+OK\r\n"
ERR_UNKNOWN = b"-ERR unknown command\r\n"
ERR_ARGS = b"-ERR wrong number of arguments\r\n"
ERR_KEY = b"-ERR invalid key\r\n"
ERR_CRLF = b"-ERR protocol error: lines end with CRLF\r\n"
ERR_TOO_LONG = b"-ERR protocol error: line too long\r\n"


def djb2(key: bytes) -> int:
    """Bernstein's djb2 (``h = h * 33 + byte``, from 5381), as a 32-bit value."""
    h = 5381
    for byte in key:
        h = (h * 33 + byte) & 0xFFFFFFFF
    return h


def _valid_key(key: bytes) -> bool:
    return 0 < len(key) <= KEY_MAX and all(0x21 <= b <= 0x7E for b in key)


def decode_request(line: bytes) -> tuple[bytes, bytes | None, bytes | None] | bytes:
    """Read one request line (without its CRLF).

    Returns:
        ``(command, key, value)`` with the command upper-cased (key and value
        None where the command has none), or the error reply to send.
    """
    word, _, rest = line.partition(b" ")
    command = word.upper()
    if command in (b"PING", b"QUIT"):
        return (command, None, None) if not rest and b" " not in line else ERR_ARGS
    if command in (b"GET", b"DEL"):
        if not rest or b" " in rest:
            return ERR_ARGS
        return (command, rest, None) if _valid_key(rest) else ERR_KEY
    if command == b"SET":
        key, space, value = rest.partition(b" ")
        if not space:
            return ERR_ARGS
        return (command, key, value) if _valid_key(key) else ERR_KEY
    return ERR_UNKNOWN


class _LineScanner:
    """Finds CRLF-ended lines, resuming a partial line where it stopped.

    The shared base of both parsers; ``_limit`` and ``_error`` are set by each.
    """

    _limit = LINE_MAX
    _error: type[ProtocolError] = ProtocolError

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0  # a line's length is never known in advance
        self._scanned = 0  # bytes of the pending line already searched

    def line_end(self, buf: bytes, pos: int) -> int:
        """Return the offset just past the line starting at ``pos``, or -1."""
        nl = buf.find(b"\n", pos + self._scanned)
        if nl < 0:
            size = len(buf) - pos
            if size >= self._limit:
                raise self._error(f"line longer than {self._limit} bytes", reply=ERR_TOO_LONG)
            self._scanned = size
            self.resume_at = pos
            return -1
        self._scanned = 0
        end = nl + 1
        if end - pos > self._limit:
            raise self._error(f"line longer than {self._limit} bytes", reply=ERR_TOO_LONG)
        if nl == pos or buf[nl - 1] != 0x0D or buf.find(b"\r", pos, nl - 1) >= 0:
            raise self._error("line not ended by CRLF, or a CR inside it", reply=ERR_CRLF)
        return end


class KvRequestParser(_LineScanner):
    """Client bytes -> requests; one per client connection."""

    def __init__(self) -> None:
        super().__init__()
        self.variant = 0  # kv has one flavour of backend connection

    def parse(self, buf: bytes, pos: int) -> Msg | None:
        end = self.line_end(buf, pos)
        if end < 0:
            return None
        data = buf[pos:end]
        decoded = decode_request(data[:-2])
        if isinstance(decoded, bytes):
            return Msg(data, end, None, ACTION_LOCAL, decoded)
        command, key, _ = decoded
        if command == b"PING":
            return Msg(data, end, None, ACTION_LOCAL, PONG)
        if command == b"QUIT":
            return Msg(data, end, None, ACTION_CLOSE, OK)
        return Msg(data, end, key)


class KvReplyParser(_LineScanner):
    """Server bytes -> reply boundaries; one per server connection."""

    _limit = REPLY_LINE_MAX
    _error = RemoteProtocolError

    def parse(self, buf: bytes, pos: int) -> int:
        end = self.line_end(buf, pos)
        if end < 0:
            return -1
        if buf[pos] not in REPLY_TYPES or (buf[pos] == 0x5F and end - pos != 3):
            raise RemoteProtocolError(f"not a kv reply: {buf[pos:end][:40]!r}")
        return end


class KvProtocol:
    """The kv protocol as the proxy core sees it."""

    name = "kv"
    variants = 1

    def new_request_parser(self, pool: PoolConfig) -> KvRequestParser:
        return KvRequestParser()

    def new_reply_parser(self) -> KvReplyParser:
        return KvReplyParser()

    def error_reply(self, message: str) -> bytes:
        text = message.replace("\r", " ").replace("\n", " ")
        return b"-ERR " + text.encode("utf-8", "replace") + b"\r\n"

    def server_handshake(self, pool: PoolConfig, variant: int) -> Sequence[bytes]:
        return ()  # no AUTH or SELECT: a new server connection is ready at once

    def fragment(self, msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
        raise NotImplementedError("kv has no multi-key requests, so nothing is ACTION_FANOUT")
