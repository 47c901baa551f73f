"""nutcracker's 12 key hash functions, bit-compatible with nutcracker 0.5.0.

Each is ``fn(key: bytes) -> int`` and returns an unsigned 32-bit value equal
to what nutcracker's ``hash_<name>`` returns for the same bytes, quirks
included (signed-char reads, the 32-bit ``fnv1a_64``, the unmasked
``crc16``...; each module's docstring lists its own).  They hash whatever
they are given: an empty key gets the function's own value, which is not
always 0 (``md5``, ``jenkins`` and the FNVs are non-zero).  Mapping an empty
key to hash 0, and skipping the hash for a one-server pool, is the pool's
job, as in nutcracker's ``server_pool_hash``.

Two implementations, one answer
-------------------------------
The hash runs once per routed key, so it is on the proxy's hot path.  Eight
of the functions (the FNVs, ``one_at_a_time``, ``murmur``, ``jenkins``,
``hsieh``) loop over the key byte by byte, which costs microseconds per key
in Python; the optional C extension :mod:`._speedups` computes the same
values in tens of nanoseconds.  ``md5`` and the CRCs already run in C
through ``hashlib``, ``binascii`` and ``zlib`` and have no separate version.

* :data:`PURE_HASH_FUNCTIONS` is the **reference**: readable Python that
  documents every quirk and is checked against golden vectors generated
  with nutcracker's own C code.  It always exists.
* :data:`FAST_HASH_FUNCTIONS` is the same table with the compiled versions
  substituted, or ``None`` when the extension was not built (it is optional:
  an install without a C compiler still works).  The tests run the golden
  vectors against it too, and a differential property test checks it equals
  the reference on arbitrary keys.

:data:`HASH_FUNCTIONS` (and the module-level names ``fnv1a_64`` ...) are the
set in use: the fast one when it is available and ``CORENET_NO_SPEEDUPS`` is
not set to ``1``/``true``/``yes``/``on``, otherwise the pure one; the same
choice as :func:`hash_functions` makes, frozen when this package is first
imported.  The ``corenet_register_hash_functions`` hook in :mod:`.plugin`
registers the result of :func:`hash_functions`, read when the plugin
manager is set up.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from corenet import accel
from corenet.accel import NO_SPEEDUPS_ENV

from . import _crc, _fnv, _hsieh, _jenkins, _md5, _murmur, _oaat

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.routing import HashFn

__all__ = [
    "FAST_HASH_FUNCTIONS",
    "HASH_FUNCTIONS",
    "NO_SPEEDUPS_ENV",
    "PURE_HASH_FUNCTIONS",
    "crc16",
    "crc32",
    "crc32a",
    "fnv1_32",
    "fnv1_64",
    "fnv1a_32",
    "fnv1a_64",
    "hash_functions",
    "hsieh",
    "jenkins",
    "md5",
    "murmur",
    "one_at_a_time",
    "speedups_enabled",
]


PURE_HASH_FUNCTIONS: Mapping[str, HashFn] = MappingProxyType(
    {
        # In nutcracker's own order (nc_hashkit.h), which is also the order
        # ``hash:`` values are listed in its documentation.
        "one_at_a_time": _oaat.one_at_a_time,
        "md5": _md5.md5,
        "crc16": _crc.crc16,
        "crc32": _crc.crc32,
        "crc32a": _crc.crc32a,
        "fnv1_64": _fnv.fnv1_64,
        "fnv1a_64": _fnv.fnv1a_64,
        "fnv1_32": _fnv.fnv1_32,
        "fnv1a_32": _fnv.fnv1a_32,
        "hsieh": _hsieh.hsieh,
        "murmur": _murmur.murmur,
        "jenkins": _jenkins.jenkins,
    }
)
"""nutcracker hash name -> pure-Python reference function, in nutcracker's order."""


def _fast_hash_functions() -> Mapping[str, HashFn] | None:
    _speedups: Any = accel.built("corenet.plugins.hashing._speedups")
    if _speedups is None:
        return None
    compiled: dict[str, HashFn] = {
        "one_at_a_time": _speedups.one_at_a_time,
        "fnv1_64": _speedups.fnv1_64,
        "fnv1a_64": _speedups.fnv1a_64,
        "fnv1_32": _speedups.fnv1_32,
        "fnv1a_32": _speedups.fnv1a_32,
        "hsieh": _speedups.hsieh,
        "murmur": _speedups.murmur,
        "jenkins": _speedups.jenkins,
    }
    # md5 and the CRCs are already C (hashlib, binascii, zlib): shared as is.
    return MappingProxyType(
        {name: compiled.get(name, fn) for name, fn in PURE_HASH_FUNCTIONS.items()}
    )


FAST_HASH_FUNCTIONS: Mapping[str, HashFn] | None = _fast_hash_functions()
"""Like :data:`PURE_HASH_FUNCTIONS` with the compiled functions substituted;
``None`` when the extension is not built."""


def speedups_enabled() -> bool:
    """Return whether the compiled hashes are to be used.

    True when the extension is built and ``CORENET_NO_SPEEDUPS`` is not set
    to a true value.  Reads the environment on every call.
    """
    return FAST_HASH_FUNCTIONS is not None and not accel.speedups_disabled()


def hash_functions(accelerated: bool | None = None) -> Mapping[str, HashFn]:
    """Return a nutcracker hash name -> function table.

    Args:
        accelerated: True for the compiled set, False for the pure-Python
            reference, None (the default) to decide with
            :func:`speedups_enabled`.

    Returns:
        A read-only mapping of all 12 names, in nutcracker's order.

    Raises:
        ImportError: ``accelerated`` is True but the extension is not built.
    """
    if accelerated is None:
        accelerated = speedups_enabled()
    if not accelerated:
        return PURE_HASH_FUNCTIONS
    if FAST_HASH_FUNCTIONS is None:
        raise ImportError("corenet.plugins.hashing._speedups is not built")
    return FAST_HASH_FUNCTIONS


HASH_FUNCTIONS: Mapping[str, HashFn] = hash_functions()
"""nutcracker hash name -> function in use, in nutcracker's order."""

one_at_a_time: HashFn = HASH_FUNCTIONS["one_at_a_time"]
md5: HashFn = HASH_FUNCTIONS["md5"]
crc16: HashFn = HASH_FUNCTIONS["crc16"]
crc32: HashFn = HASH_FUNCTIONS["crc32"]
crc32a: HashFn = HASH_FUNCTIONS["crc32a"]
fnv1_64: HashFn = HASH_FUNCTIONS["fnv1_64"]
fnv1a_64: HashFn = HASH_FUNCTIONS["fnv1a_64"]
fnv1_32: HashFn = HASH_FUNCTIONS["fnv1_32"]
fnv1a_32: HashFn = HASH_FUNCTIONS["fnv1a_32"]
hsieh: HashFn = HASH_FUNCTIONS["hsieh"]
murmur: HashFn = HASH_FUNCTIONS["murmur"]
jenkins: HashFn = HASH_FUNCTIONS["jenkins"]
