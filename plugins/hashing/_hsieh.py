"""Paul Hsieh's SuperFastHash as nutcracker 0.5.0 computes it (``hsieh``).

The body reads unsigned little-endian 16-bit halves (the reference x86-64
build uses the byte-wise ``get16bits``).  Quirk: when three bytes are left
over, the third is read as signed ``char`` and sign-extended before the
shift (``(uint32_t)key[2] << 18``), while a single leftover byte is read
unsigned.  An empty key hashes to 0.
"""

from __future__ import annotations

import struct

from ._signed import SIGNED_CHAR_U32

__all__ = ["hsieh"]

_MASK = 0xFFFFFFFF
# Prebuilt unpackers of n four-byte blocks as 16-bit halves, for the usual
# key sizes (building the format string per call is slow).
_BLOCKS = tuple(struct.Struct(f"<{2 * n}H").unpack_from for n in range(64))


def hsieh(key: bytes) -> int:
    """nutcracker's ``hsieh``."""
    n = len(key)
    if n == 0:
        return 0
    m = _MASK
    h = 0
    body = n & ~3
    nblocks = n >> 2
    halves = _BLOCKS[nblocks](key) if nblocks < 64 else struct.unpack_from(f"<{body >> 1}H", key)
    it = iter(halves)
    for lo, hi in zip(it, it, strict=True):
        # The carry out of h + lo would land in bit 32, which the mask after
        # the shift-xor drops anyway.
        h += lo
        h = ((h << 16) ^ (hi << 11) ^ h) & m
        h = (h + (h >> 11)) & m
    rem = n & 3
    if rem == 3:
        h = (h + key[body] + (key[body + 1] << 8)) & m
        h ^= (h << 16) & m
        h ^= (SIGNED_CHAR_U32[key[body + 2]] << 18) & m
        h = (h + (h >> 11)) & m
    elif rem == 2:
        h = (h + key[body] + (key[body + 1] << 8)) & m
        h ^= (h << 11) & m
        h = (h + (h >> 17)) & m
    elif rem == 1:
        h = (h + key[body]) & m
        h ^= (h << 10) & m
        h = (h + (h >> 1)) & m
    h ^= (h << 3) & m
    h = (h + (h >> 5)) & m
    h ^= (h << 4) & m
    h = (h + (h >> 17)) & m
    h ^= (h << 25) & m
    return (h + (h >> 6)) & m
