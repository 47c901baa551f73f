"""The one framer: a byte stream in, complete frames out, sans-IO.

Every stream that carries a message protocol (a proxy's client and server
connections, :mod:`corenet.testing`'s drivers, an application of your own)
turns what ``recv`` brought into messages with a :class:`Framer` around a
protocol's parser.  The framer owns the incomplete tail; the parser owns the
syntax.

The parser contract (requests and replies alike)
------------------------------------------------

``parser.parse(buf, pos)`` looks for one complete frame starting at
``buf[pos]`` and returns:

* a **request frame**: an object whose ``end`` is the offset just past it in
  ``buf`` (a :class:`~corenet.msg.Msg`); or a **reply frame**: the end
  offset itself, as an ``int`` (the frame is ``buf[pos:end]``, forwarded as
  is).  A parser declares which with ``frames = "objects"`` or
  ``frames = "offsets"``; without the attribute, the framer's ``replies``
  argument decides.
* ``None`` when the frame is incomplete (``-1`` is accepted from offset
  parsers, the convention before this module existed).  Then
  ``parser.resume_at`` is where the incomplete frame starts (a parser may
  skip empty input before it, never go back before ``pos``), and
  ``parser.need`` how many bytes from ``resume_at`` must be buffered before
  another call can progress (0 when unknown).  A parser that keeps the
  scanned start of a long frame itself may put ``resume_at`` past that
  start, where its scan goes on: the framer then keeps only what follows.

A complete frame consumes at least one byte and never ends past
``len(buf)``; the framer calls again at its end while bytes remain.

A parser may also offer ``parse_many(buf, pos, limit) -> (frames, end)``:
the complete frames from ``buf[pos]`` on that it can take in one call (at
most ``limit``, each exactly what ``parse`` would return for it, with no
error among them) and the offset after the last (``pos`` if none).  The
framer calls it first on each buffer and goes on with ``parse`` from
``end``, so a pipeline costs one call instead of one per frame, and
``parse`` still decides everything else (the tail, errors, odd frames).

Total work is O(n): the framer keeps the tail as a list of chunks and joins
them only once ``need`` is met, so a 512 MiB value arriving 16 KiB at a time
is copied once, not once per read, and the parser is not called per read
while it waits.  When the length is unknown (a text line) the parser resumes
its scan where the last call stopped (it may keep state between calls) and
caps the line with a :class:`~corenet.errors.ProtocolError`, so an endless
line is never buffered without limit.

Errors: malformed input raises :class:`~corenet.errors.ProtocolError` with
the protocol-correct ``reply``; no other exception may escape ``parse``.
With ``close=True`` (the default) the stream is finished: the framer keeps
nothing and reports the error.  With ``close=False`` the parser has skipped
the offending bytes and set ``resume_at`` to where parsing goes on (past
them, inside ``buf``); the framer reports the error after the frames before
it, and :meth:`Framer.resume` continues from there.  Either way the error's
position in the stream is exact: its reply goes after the replies of every
earlier frame and before any later one.

:mod:`corenet.testing.conformance` checks all of this for any parser.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from corenet.buffer import StreamBuffer
from corenet.errors import ProtocolError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["UNLIMITED", "Framer", "FrameParser"]

F = TypeVar("F")

UNLIMITED = sys.maxsize


class FrameParser(Protocol):
    """What :class:`Framer` needs of a parser (see the module docstring)."""

    @property
    def resume_at(self) -> int: ...

    @property
    def need(self) -> int: ...

    def parse(self, buf: bytes, pos: int) -> Any: ...


class Framer(Generic[F]):
    """Frames for one direction of one stream, from the chunks ``recv`` returns.

    Args:
        parser: the protocol's parser for this stream.
        replies: whether ``parse`` returns end offsets (reply parsers) rather
            than frame objects, when the parser does not say (``frames``).
    """

    __slots__ = (
        "_buffer",
        "_offsets",
        "_parse",
        "_parse_many",
        "backlog",
        "error",
        "parser",
        "waiting",
    )

    def __init__(self, parser: FrameParser, *, replies: bool = False) -> None:
        self.parser = parser
        self._parse: Callable[[bytes, int], Any] = parser.parse
        self._parse_many: Callable[[bytes, int, int], tuple[list[Any], int]] | None = getattr(
            parser, "parse_many", None
        )
        kind = getattr(parser, "frames", None)
        self._offsets = kind == "offsets" if kind is not None else replies
        self._buffer = StreamBuffer()
        self.waiting = False
        """Whether the kept bytes are the start of an incomplete frame (not a backlog)."""
        # A plain attribute, not a property: read after every feed.
        self.backlog = False
        """Whether complete input is kept unparsed (a ``limit`` stopped the last feed,
        or an error that does not close left the rest)."""
        self.error: ProtocolError | None = None
        """The ProtocolError that stopped the last :meth:`feed`, if any."""

    @property
    def buffered(self) -> int:
        """How many bytes are kept: an incomplete frame or a backlog of whole ones."""
        return len(self._buffer)

    def clear(self) -> None:
        """Forget everything kept (the stream is closing)."""
        self._buffer.clear()
        self.waiting = False
        self.backlog = False

    def feed(self, data: bytes, limit: int = UNLIMITED) -> list[F]:
        """Add ``data`` and return the frames it completes, at most ``limit``.

        Frames past ``limit`` stay kept, unparsed, for :meth:`resume`.  After
        a ``ProtocolError`` the frames before it are returned and
        :attr:`error` is set (see the module docstring).
        """
        # The loop is written once, here, and kept flat: it runs once per
        # recv on every connection, so each call and attribute counts.
        buffer = self._buffer
        if buffer.chunks:
            joined = buffer.push(data)
            if joined is None:
                return []
            buf = joined
        else:
            buf = data
        if self.error is not None:
            self.error = None
        parse = self._parse
        offsets = self._offsets
        parse_many = self._parse_many
        frames: list[Any]
        if parse_many is not None and limit > 0:
            # The parser's batch takes what it can in one call; the loop
            # below goes on from there (the tail, or a frame it left).
            frames, pos = parse_many(buf, 0, limit)
        else:
            frames = []
            pos = 0
        n = len(buf)
        while pos < n:
            if len(frames) >= limit:
                buffer.keep(buf, pos, 0)
                self.waiting = False
                self.backlog = True
                return frames
            try:
                frame = parse(buf, pos)
            except ProtocolError as exc:
                self._failed(exc, buf, pos)
                return frames
            if offsets:
                if frame is None or frame < 0:
                    break
                frames.append(buf if (pos == 0 and frame == n) else buf[pos:frame])
                pos = frame
            else:
                if frame is None:
                    break
                frames.append(frame)
                pos = frame.end
        else:
            # Everything consumed; the buffer was emptied when it was joined.
            self.waiting = self.backlog = False
            return frames
        parser = self.parser
        buffer.keep(buf, parser.resume_at, parser.need)
        self.waiting = True
        self.backlog = False
        return frames

    def resume(self, limit: int = UNLIMITED) -> list[F]:
        """Parse what is kept as a backlog (after a limit or a ``close=False`` error)."""
        if not len(self._buffer) or self.waiting:
            return []
        return self.feed(b"", limit)

    def _failed(self, exc: ProtocolError, buf: bytes, pos: int) -> None:
        self.error = exc
        self.waiting = False
        resume = self.parser.resume_at
        if exc.close or resume >= len(buf):
            self._buffer.clear()
            self.backlog = False
        else:
            self._buffer.keep(buf, max(resume, pos + 1), 0)
            self.backlog = len(self._buffer) > 0
