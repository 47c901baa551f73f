"""MurmurHash2 as nutcracker 0.5.0 computes it (``murmur``).

Quirk: the seed is ``0xdeadbeef * length`` (mod 2**32), so it changes with
the key length, and the initial state is ``seed ^ length``.  The body reads
little-endian 32-bit words (nutcracker casts the pointer; the reference
build is little-endian); tail bytes are unsigned.  An empty key hashes to 0.
"""

from __future__ import annotations

import struct

__all__ = ["murmur"]

# Prebuilt unpackers for the usual key sizes: building the format string per
# call cost more than the whole body loop for short keys.
_WORDS = tuple(struct.Struct(f"<{n}I").unpack_from for n in range(64))


def murmur(key: bytes) -> int:
    """nutcracker's ``murmur``."""
    n = len(key)
    h = ((0xDEADBEEF * n) ^ n) & 0xFFFFFFFF
    nwords = n >> 2
    words = _WORDS[nwords](key) if nwords < 64 else struct.unpack_from(f"<{nwords}I", key)
    for k in words:
        k = k * 0x5BD1E995 & 0xFFFFFFFF
        # (h * m) ^ ((k ^ k >> 24) * m), masked once: the mask distributes over ^.
        h = (h * 0x5BD1E995 ^ (k ^ k >> 24) * 0x5BD1E995) & 0xFFFFFFFF
    rem = n & 3
    if rem:
        # The C switch falls through: the last 1-3 bytes as one little-endian word.
        h = (h ^ int.from_bytes(key[n - rem :], "little")) * 0x5BD1E995 & 0xFFFFFFFF
    h ^= h >> 13
    h = h * 0x5BD1E995 & 0xFFFFFFFF
    return h ^ (h >> 15)
