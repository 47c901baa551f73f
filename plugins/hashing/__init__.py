"""nutcracker's 12 key hash functions, bit-compatible with nutcracker 0.5.0.

Each is ``fn(key: bytes) -> int`` and returns an unsigned 32-bit value equal
to what nutcracker's ``hash_<name>`` returns for the same bytes, quirks
included (signed-char reads, the 32-bit ``fnv1a_64``, the unmasked
``crc16``...; each module's docstring lists its own).  They hash whatever
they are given: an empty key gets the function's own value, which is not
always 0 (``md5``, ``jenkins`` and the FNVs are non-zero).  Mapping an empty
key to hash 0, and skipping the hash for a one-server pool, is the pool's
job, as in nutcracker's ``server_pool_hash``.

:data:`HASH_FUNCTIONS` maps nutcracker's configuration names to them; the
``corenet_register_hash_functions`` hook in :mod:`.plugin` registers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._crc import crc16, crc32, crc32a
from ._fnv import fnv1_32, fnv1_64, fnv1a_32, fnv1a_64
from ._hsieh import hsieh
from ._jenkins import jenkins
from ._md5 import md5
from ._murmur import murmur
from ._oaat import one_at_a_time

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.routing import HashFn

__all__ = [
    "HASH_FUNCTIONS",
    "crc16",
    "crc32",
    "crc32a",
    "fnv1_32",
    "fnv1_64",
    "fnv1a_32",
    "fnv1a_64",
    "hsieh",
    "jenkins",
    "md5",
    "murmur",
    "one_at_a_time",
]

HASH_FUNCTIONS: Mapping[str, HashFn] = {
    # In nutcracker's own order (nc_hashkit.h), which is also the order
    # ``hash:`` values are listed in its documentation.
    "one_at_a_time": one_at_a_time,
    "md5": md5,
    "crc16": crc16,
    "crc32": crc32,
    "crc32a": crc32a,
    "fnv1_64": fnv1_64,
    "fnv1a_64": fnv1a_64,
    "fnv1_32": fnv1_32,
    "fnv1a_32": fnv1a_32,
    "hsieh": hsieh,
    "murmur": murmur,
    "jenkins": jenkins,
}
"""nutcracker hash name -> function, in nutcracker's order."""
