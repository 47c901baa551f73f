"""Reassembly of messages that span several reads.

Most reads end on a message boundary and are parsed in place.  When one does
not, the unparsed tail is kept as a list of chunks and joined only once the
parser's ``need`` (bytes required from the message start) is met, so a
512 MiB value arriving 16 KiB at a time is copied once, not once per read.
"""

from __future__ import annotations

__all__ = ["StreamBuffer"]


class StreamBuffer:
    """The incomplete tail of a byte stream, waiting for enough data."""

    __slots__ = ("chunks", "_need", "_size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        """Non-empty exactly while an incomplete message is kept."""
        self._size = 0
        self._need = 0

    def __len__(self) -> int:
        return self._size

    def push(self, data: bytes) -> bytes | None:
        """Add freshly read ``data``; return the buffer to parse, or None to wait."""
        chunks = self.chunks
        if not chunks:
            return data
        chunks.append(data)
        self._size += len(data)
        if self._size < self._need:
            return None
        self.chunks = []
        self._size = 0
        return b"".join(chunks)

    def keep(self, buf: bytes, start: int, need: int) -> None:
        """Keep ``buf[start:]``, an incomplete message that needs ``need`` bytes in all."""
        tail = buf[start:] if start else buf
        self.chunks = [tail]
        self._size = len(tail)
        self._need = need

    def take(self) -> bytes:
        """Return everything kept, joined, and forget it."""
        data = b"".join(self.chunks)
        self.clear()
        return data

    def clear(self) -> None:
        self.chunks = []
        self._size = 0
        self._need = 0
