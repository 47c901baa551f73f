"""Drive sans-IO parsers the way the proxy's connections do.

These helpers feed a parser a stream cut into arbitrary chunks, keeping
incomplete tails in a :class:`~corenet.buffer.StreamBuffer` exactly as
:class:`~corenet.conn.ClientConn` and :class:`~corenet.conn.ServerConn` do,
so a property that holds here holds on a socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from corenet.buffer import StreamBuffer
from corenet.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from corenet.msg import Msg
    from corenet.protocol import ReplyParser, RequestParser

__all__ = ["drive_replies", "drive_requests", "split_at"]

T = TypeVar("T")


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates and ends allowed)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _drive(
    parse: Callable[[bytes, int], T | None],
    end_of: Callable[[T], int],
    parser: RequestParser | ReplyParser,
    chunks: Sequence[bytes],
) -> tuple[list[T], ProtocolError | None, int]:
    """Feed ``chunks`` to ``parse`` as a connection does; see the public drivers."""
    pending = StreamBuffer()
    found: list[T] = []
    for chunk in chunks:
        buf = pending.push(chunk)
        if buf is None:
            continue
        pos = 0
        while pos < len(buf):
            try:
                item = parse(buf, pos)
            except ProtocolError as exc:
                return found, exc, 0
            if item is None:
                resume = parser.resume_at
                if resume < pos or resume > len(buf):
                    raise AssertionError(f"resume_at {resume} outside [{pos}, {len(buf)}]")
                pending.keep(buf, parser.resume_at, parser.need)
                break
            end = end_of(item)
            if end <= pos or end > len(buf):
                raise AssertionError(f"message end {end} outside ({pos}, {len(buf)}]")
            found.append(item)
            pos = end
    return found, None, len(pending)


def drive_requests(
    parser: RequestParser, chunks: Sequence[bytes]
) -> tuple[list[Msg], ProtocolError | None, int]:
    """Feed ``chunks`` to a request parser.

    Returns:
        The requests parsed, the ProtocolError that stopped parsing (or None),
        and how many bytes are left buffered as an incomplete request.
    """
    return _drive(parser.parse, lambda msg: msg.end, parser, chunks)


def drive_replies(
    parser: ReplyParser, chunks: Sequence[bytes]
) -> tuple[list[bytes], ProtocolError | None, int]:
    """Feed ``chunks`` to a reply parser; returns replies, error and bytes left.

    Each reply is returned as its bytes.
    """

    def parse(buf: bytes, pos: int) -> tuple[bytes, int] | None:
        end = parser.parse(buf, pos)
        return None if end < 0 else (buf[pos:end], end)

    found, err, left = _drive(parse, lambda item: item[1], parser, chunks)
    return [reply for reply, _ in found], err, left
