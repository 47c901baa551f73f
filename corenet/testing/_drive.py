"""Drive sans-IO parsers through the framer, as connections do.

These helpers feed a parser a stream cut into arbitrary chunks through the
same :class:`~corenet.framing.Framer` the proxy's connections use, with a
wrapper that checks every result against the parser contract, so a property
that holds here holds on a socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from corenet.framing import Framer

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from corenet.errors import ProtocolError
    from corenet.framing import FrameParser
    from corenet.msg import Msg
    from corenet.protocol import ReplyParser, RequestParser

__all__ = ["drive_replies", "drive_requests", "split_at"]

T = TypeVar("T")


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates and ends allowed)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


class _Checked:
    """A parser wrapper that fails loudly when a result breaks the contract."""

    def __init__(self, parser: FrameParser, offsets: bool) -> None:
        self._parser = parser
        self._offsets = offsets
        self.frames = "offsets" if offsets else "objects"

    @property
    def resume_at(self) -> int:
        return self._parser.resume_at

    @property
    def need(self) -> int:
        return self._parser.need

    def parse(self, buf: bytes, pos: int) -> Any:
        result = self._parser.parse(buf, pos)
        incomplete = result is None or (self._offsets and result < 0)
        if incomplete:
            resume = self._parser.resume_at
            if resume < pos or resume > len(buf):
                raise AssertionError(f"resume_at {resume} outside [{pos}, {len(buf)}]")
            return None
        end = result if self._offsets else result.end
        if end <= pos or end > len(buf):
            raise AssertionError(f"message end {end} outside ({pos}, {len(buf)}]")
        return result


def _drive(
    parser: FrameParser, chunks: Sequence[bytes], *, offsets: bool
) -> tuple[list[Any], ProtocolError | None, int]:
    framer: Framer[Any] = Framer(_Checked(parser, offsets))
    found: list[Any] = []
    for chunk in chunks:
        found.extend(framer.feed(chunk))
        if framer.error is not None:
            return found, framer.error, 0
    return found, None, framer.buffered


def drive_requests(
    parser: RequestParser, chunks: Sequence[bytes]
) -> tuple[list[Msg], ProtocolError | None, int]:
    """Feed ``chunks`` to a request parser.

    Returns:
        The requests parsed, the ProtocolError that stopped parsing (or None),
        and how many bytes are left buffered as an incomplete request.
    """
    return _drive(parser, chunks, offsets=False)


def drive_replies(
    parser: ReplyParser, chunks: Sequence[bytes]
) -> tuple[list[bytes], ProtocolError | None, int]:
    """Feed ``chunks`` to a reply parser; returns replies (their bytes), error and bytes left."""
    return _drive(parser, chunks, offsets=True)
