"""The four FNV hashes, as nutcracker 0.5.0 computes them.

Quirks kept for bit-compatibility:

* every variant reads key bytes as signed ``char`` (see ``_signed``);
* ``fnv1a_64`` is not 64-bit at all: nutcracker keeps its state in a
  ``uint32_t`` seeded with the low half of the 64-bit offset basis
  (0x84222325) and multiplies by the low half of the 64-bit prime (0x1b3);
* ``fnv1_64`` really runs in 64 bits and returns the low 32.  The low 32 bits
  of a product or an xor depend only on the low 32 bits of the operands, so
  the same value falls out of 32-bit arithmetic with the truncated constants;
  that is what we compute.

Speed: ``fnv1a_64`` is the default hash and runs once per routed key.  The
cheapest exact pure-Python form we measured skips the ``& 0xFFFFFFFF`` inside
the loop (by the same low-bits argument the final mask gives the same
answer) and costs two int operations per byte.  The int then grows by about
nine bits a byte, so from 64 bytes on (where the two forms break even) we
mask once per eight bytes instead: without that bound a 16 KiB key would
cost quadratic time.  The functions spell their constants out as literals,
which the hot loops load fastest: ``fnv1a_64`` and ``fnv1_64`` use
0x84222325 and 0x1b3, the low halves of the 64-bit offset basis
0xcbf29ce484222325 and prime 0x100000001b3; ``fnv1a_32`` and ``fnv1_32`` the
32-bit basis 0x811c9dc5 and prime 0x01000193.
"""

from __future__ import annotations

from ._signed import SIGNED_CHAR_U32

__all__ = ["fnv1_32", "fnv1_64", "fnv1a_32", "fnv1a_64"]

_MASK = 0xFFFFFFFF


def _signed_values(key: bytes) -> bytes | list[int]:
    # ASCII keys (the usual case) need no sign extension: iterate the bytes.
    if key.isascii():
        return key
    sx = SIGNED_CHAR_U32
    return [sx[c] for c in key]


def _fnv1a_long(key: bytes, h: int, p: int) -> int:
    vals = _signed_values(key)
    # One iterator zipped with itself yields groups of eight; a short last
    # group is dropped (hence strict=False) and done by the tail loop.
    it = iter(vals)
    for c0, c1, c2, c3, c4, c5, c6, c7 in zip(it, it, it, it, it, it, it, it, strict=False):
        h = (
            ((((((((h ^ c0) * p ^ c1) * p ^ c2) * p ^ c3) * p ^ c4) * p ^ c5) * p ^ c6) * p ^ c7)
            * p
        ) & _MASK
    for c in vals[len(vals) & ~7 :]:
        h = (h ^ c) * p
    return h & _MASK


def _fnv1_long(key: bytes, h: int, p: int) -> int:
    vals = _signed_values(key)
    it = iter(vals)
    for c0, c1, c2, c3, c4, c5, c6, c7 in zip(it, it, it, it, it, it, it, it, strict=False):
        h = (
            (((((((h * p ^ c0) * p ^ c1) * p ^ c2) * p ^ c3) * p ^ c4) * p ^ c5) * p ^ c6) * p ^ c7
        ) & _MASK
    for c in vals[len(vals) & ~7 :]:
        h = h * p ^ c
    return h & _MASK


def fnv1a_64(key: bytes) -> int:
    """nutcracker's ``fnv1a_64``: 32-bit FNV-1a with the 64-bit constants' low halves."""
    if len(key) >= 64:
        return _fnv1a_long(key, 0x84222325, 0x1B3)
    h = 0x84222325
    if key.isascii():
        for c in key:
            h = (h ^ c) * 0x1B3
    else:
        sx = SIGNED_CHAR_U32
        for c in key:
            h = (h ^ sx[c]) * 0x1B3
    return h & 0xFFFFFFFF


def fnv1_64(key: bytes) -> int:
    """nutcracker's ``fnv1_64``: 64-bit FNV-1, low 32 bits of the result."""
    if len(key) >= 64:
        return _fnv1_long(key, 0x84222325, 0x1B3)
    h = 0x84222325
    if key.isascii():
        for c in key:
            h = h * 0x1B3 ^ c
    else:
        sx = SIGNED_CHAR_U32
        for c in key:
            h = h * 0x1B3 ^ sx[c]
    return h & 0xFFFFFFFF


def fnv1a_32(key: bytes) -> int:
    """nutcracker's ``fnv1a_32``: standard 32-bit FNV-1a over signed-char bytes."""
    if len(key) >= 64:
        return _fnv1a_long(key, 0x811C9DC5, 0x01000193)
    h = 0x811C9DC5
    if key.isascii():
        for c in key:
            h = (h ^ c) * 0x01000193
    else:
        sx = SIGNED_CHAR_U32
        for c in key:
            h = (h ^ sx[c]) * 0x01000193
    return h & 0xFFFFFFFF


def fnv1_32(key: bytes) -> int:
    """nutcracker's ``fnv1_32``: standard 32-bit FNV-1 over signed-char bytes."""
    if len(key) >= 64:
        return _fnv1_long(key, 0x811C9DC5, 0x01000193)
    h = 0x811C9DC5
    if key.isascii():
        for c in key:
            h = h * 0x01000193 ^ c
    else:
        sx = SIGNED_CHAR_U32
        for c in key:
            h = h * 0x01000193 ^ sx[c]
    return h & 0xFFFFFFFF
