"""Bob Jenkins' lookup3 ``hashlittle`` as nutcracker 0.5.0 uses it (``jenkins``).

nutcracker passes ``initval`` 13, so the state starts at
``0xdeadbeef + length + 13``.  Its three read paths (aligned 32-bit, aligned
16-bit, byte by byte) all amount to little-endian words of the key padded
with zero bytes, which is what we read.  Two lookup3 details matter: a block
is mixed only while more than 12 bytes remain, so a final full block goes
through the tail path; and an empty key returns the initial state unmixed
(0xdeadbefc), not 0.
"""

from __future__ import annotations

import struct

__all__ = ["jenkins"]

_MASK = 0xFFFFFFFF
_three_words = struct.Struct("<3I").unpack_from


def jenkins(key: bytes) -> int:
    """nutcracker's ``jenkins``."""
    n = len(key)
    a = b = c = (0xDEADBEEF + n + 13) & _MASK
    if n == 0:
        return c
    m = _MASK
    pos = 0
    x: int
    y: int
    z: int
    while n - pos > 12:
        x, y, z = _three_words(key, pos)
        a = (a + x) & m
        b = (b + y) & m
        c = (c + z) & m
        # mix(a, b, c)
        a = (a - c) & m
        a ^= ((c << 4) | (c >> 28)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 6) | (a >> 26)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 8) | (b >> 24)) & m
        b = (b + a) & m
        a = (a - c) & m
        a ^= ((c << 16) | (c >> 16)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 19) | (a >> 13)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 4) | (b >> 28)) & m
        b = (b + a) & m
        pos += 12
    x, y, z = _three_words(key[pos:].ljust(12, b"\0"))
    a = (a + x) & m
    b = (b + y) & m
    c = (c + z) & m
    # final(a, b, c)
    c ^= b
    c = (c - ((b << 14) | (b >> 18))) & m
    a ^= c
    a = (a - ((c << 11) | (c >> 21))) & m
    b ^= a
    b = (b - ((a << 25) | (a >> 7))) & m
    c ^= b
    c = (c - ((b << 16) | (b >> 16))) & m
    a ^= c
    a = (a - ((c << 4) | (c >> 28))) & m
    b ^= a
    b = (b - ((a << 14) | (a >> 18))) & m
    c ^= b
    c = (c - ((b << 24) | (b >> 8))) & m
    return c
