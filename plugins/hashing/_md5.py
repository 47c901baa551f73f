"""nutcracker's ``md5`` key hash: the first four digest bytes, little-endian.

nutcracker carries its own MD5; ``hashlib`` gives the same digest.  The empty
key is hashed like any other (MD5 of nothing), not mapped to 0.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["md5"]

_first_u32 = struct.Struct("<I").unpack_from


def md5(key: bytes) -> int:
    """nutcracker's ``md5``."""
    value: int = _first_u32(hashlib.md5(key).digest())[0]
    return value
