"""Drive sans-IO parsers the way the proxy's connections do.

These helpers feed a parser a stream cut into arbitrary chunks, keeping
incomplete tails in a :class:`~corenet.buffer.StreamBuffer` exactly as
:class:`~corenet.conn.ClientConn` and :class:`~corenet.conn.ServerConn` do,
so a property that holds here holds on a socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.buffer import StreamBuffer
from corenet.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from corenet.msg import Msg
    from corenet.protocol import ReplyParser, RequestParser

__all__ = ["drive_replies", "drive_requests", "split_at"]


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates and ends allowed)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def drive_requests(
    parser: RequestParser, chunks: Sequence[bytes]
) -> tuple[list[Msg], ProtocolError | None, int]:
    """Feed ``chunks`` to a request parser.

    Returns:
        The requests parsed, the ProtocolError that stopped parsing (or None),
        and how many bytes are left buffered as an incomplete request.
    """
    pending = StreamBuffer()
    messages: list[Msg] = []
    for chunk in chunks:
        buf = pending.push(chunk)
        if buf is None:
            continue
        pos = 0
        while pos < len(buf):
            try:
                msg = parser.parse(buf, pos)
            except ProtocolError as exc:
                return messages, exc, 0
            if msg is None:
                if parser.resume_at < pos or parser.resume_at > len(buf):
                    raise AssertionError(
                        f"resume_at {parser.resume_at} outside [{pos}, {len(buf)}]"
                    )
                pending.keep(buf, parser.resume_at, parser.need)
                break
            if msg.end <= pos or msg.end > len(buf):
                raise AssertionError(f"request end {msg.end} outside ({pos}, {len(buf)}]")
            messages.append(msg)
            pos = msg.end
    return messages, None, len(pending)


def drive_replies(
    parser: ReplyParser, chunks: Sequence[bytes]
) -> tuple[list[bytes], ProtocolError | None, int]:
    """Feed ``chunks`` to a reply parser; returns replies, error and bytes left."""
    pending = StreamBuffer()
    replies: list[bytes] = []
    for chunk in chunks:
        buf = pending.push(chunk)
        if buf is None:
            continue
        pos = 0
        while pos < len(buf):
            try:
                end = parser.parse(buf, pos)
            except ProtocolError as exc:
                return replies, exc, 0
            if end < 0:
                if parser.resume_at < pos or parser.resume_at > len(buf):
                    raise AssertionError(
                        f"resume_at {parser.resume_at} outside [{pos}, {len(buf)}]"
                    )
                pending.keep(buf, parser.resume_at, parser.need)
                break
            if end <= pos or end > len(buf):
                raise AssertionError(f"reply end {end} outside ({pos}, {len(buf)}]")
            replies.append(buf[pos:end])
            pos = end
    return replies, None, len(pending)
