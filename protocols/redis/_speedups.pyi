# Stub for the optional C extension built from _speedups.c.  buf is bytes
# (or any bytes-like object); a non-buffer or a negative offset gives None
# (scan_multibulk) or -2 (reply_end).

from collections.abc import Iterable
from typing import Any

from _typeshed import ReadableBuffer

def scan_multibulk(
    buf: ReadableBuffer, start: int, max_bulk_len: int, /
) -> tuple[int, tuple[int, ...]] | None: ...
def reply_end(buf: ReadableBuffer, pos: int, /) -> int: ...
def scan_keyed(
    buf: ReadableBuffer, pos: int, max_bulk_len: int, table: dict[bytes, tuple[int, int, Any]], /
) -> tuple[bytes, int, Any, Any] | None: ...
def split_array(reply: ReadableBuffer, /) -> list[bytes] | None: ...
def encode_command(args: Iterable[ReadableBuffer], /) -> bytes: ...
