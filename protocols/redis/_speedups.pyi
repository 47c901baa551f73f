# Stub for the optional C extension built from _speedups.c.  buf is bytes
# (or any bytes-like object); a non-buffer or a negative offset gives None
# (scan_multibulk) or -2 (reply_end).

from _typeshed import ReadableBuffer

def scan_multibulk(
    buf: ReadableBuffer, start: int, max_bulk_len: int, /
) -> tuple[int, tuple[int, ...]] | None: ...
def reply_end(buf: ReadableBuffer, pos: int, /) -> int: ...
