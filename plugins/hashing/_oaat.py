"""Bob Jenkins' one-at-a-time hash, as nutcracker 0.5.0 computes it.

Quirk: nutcracker reads each key byte as signed ``char`` and adds it after a
cast to ``uint32_t``, so bytes >= 0x80 add 0xFFFFFF80.. rather than 0x80..
(see ``_signed``).  An empty key hashes to 0.
"""

from __future__ import annotations

from ._signed import SIGNED_CHAR_U32

__all__ = ["one_at_a_time"]


def one_at_a_time(key: bytes) -> int:
    """nutcracker's ``one_at_a_time``."""
    h = 0
    vals = key if key.isascii() else [SIGNED_CHAR_U32[c] for c in key]
    for c in vals:
        # h += c; h += h << 10 is one multiply by 1025.  The mask cannot wait
        # for the end here: the right shift pulls high bits back down.
        h = (h + c) * 1025 & 0xFFFFFFFF
        h ^= h >> 6
    h = h * 9 & 0xFFFFFFFF  # h += h << 3
    h ^= h >> 11
    return h * 32769 & 0xFFFFFFFF  # h += h << 15
