"""The three CRC hashes, as nutcracker 0.5.0 computes them.

``crc32a`` is plain zlib CRC-32.  ``crc32`` is libmemcached's variant: the
same CRC, then bits 16..30 of it (``((~crc) >> 16) & 0x7fff`` on the raw
register), so it only ever spans 0..32767.

``crc16`` is CRC-16/XMODEM (polynomial 0x1021, initial 0), but nutcracker
keeps the register in a ``uint32_t`` and never masks it to 16 bits: each
step is ``crc = (crc << 8) ^ table[((crc >> 8) ^ byte) & 0xff]``.  The table
index and the low 16 bits only depend on the low 16 bits, which therefore
follow the standard CRC (``binascii.crc_hqx``); the stale high bytes are
shifted up unchanged.  So after n bytes the 32-bit value is

    crc(n) | (crc(n-1) & 0xff00) << 8 | (crc(n-2) & 0xff00) << 16

where crc(i) is the standard CRC of the first i bytes (0 for i <= 0).  That
lets three C-level ``crc_hqx`` calls replace a per-byte Python loop.

nutcracker reads key bytes as signed ``char`` here too, but masks each table
index to one byte, so the sign extension changes nothing.
"""

from __future__ import annotations

import binascii
import zlib

__all__ = ["crc16", "crc32", "crc32a"]

_crc_hqx = binascii.crc_hqx
_zlib_crc32 = zlib.crc32


def crc16(key: bytes) -> int:
    """nutcracker's ``crc16``: XMODEM CRC with the 32-bit register left unmasked."""
    two_back = _crc_hqx(key[:-2], 0)
    one_back = _crc_hqx(key[-2:-1], two_back)
    crc = _crc_hqx(key[-1:], one_back)
    return crc | (one_back & 0xFF00) << 8 | (two_back & 0xFF00) << 16


def crc32(key: bytes) -> int:
    """nutcracker's ``crc32`` (libmemcached style): 15 bits of the CRC-32."""
    return (_zlib_crc32(key) >> 16) & 0x7FFF


def crc32a(key: bytes) -> int:
    """nutcracker's ``crc32a``: zlib CRC-32."""
    return _zlib_crc32(key)
