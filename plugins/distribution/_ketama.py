"""Ketama consistent hashing, bit-compatible with nutcracker 0.5.0.

nutcracker (``ketama_update``) rebuilds the continuum over the *live*
servers only, whenever that set changes, in pool order:

* each server gets ``floorf(pct * 160 / 4 * nlive + 1e-10) * 4`` points,
  where ``pct = weight / total_weight`` and ``total_weight`` and ``nlive``
  count live servers only.  The arithmetic is C ``float``: each step rounds
  to float32, and only the final ``+ 1e-10`` (a double literal) runs in
  double before the result is cast back to float.  That rounding is why 25,
  47 or 50 equal servers get 156 points each, not 160, and a server whose
  share is too small gets no points at all;
* point group ``j`` of a server is the MD5 of ``"<name>-<j>"`` (cut to 272
  bytes, as nutcracker's 273-byte ``snprintf`` buffer does), read as four
  little-endian uint32 values;
* the points are sorted by value; a hash maps to the first point >= it,
  wrapping to the first point.

Float32 steps are emulated by rounding each double result to float32.  For
one multiplication or division of float32 operands that double rounding is
exact (double has more than 2 * 24 + 2 bits of precision), so every step
matches x86-64's SSE float arithmetic, which the reference build uses (an
i386 build computing in x87 extended precision could differ).

Ties between equal point values keep build order (Python's sort is stable),
as glibc's merge-sort ``qsort`` does (up to at least glibc 2.36, Debian
12's); a tie needs two equal 32-bit MD5 words, so it is rare anyway.
"""

from __future__ import annotations

import hashlib
import math
import struct
from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["KetamaDispatcher", "build", "points_per_node"]

_POINTS_PER_SERVER = 160
_POINTS_PER_HASH = 4
_MAX_HOSTLEN = 272  # 273-byte buffer in nutcracker, minus the NUL
_F32 = struct.Struct("<f")
_FOUR_POINTS = struct.Struct("<4I").unpack
_WRAP = 1 << 32  # above every 32-bit hash: the sentinel that makes lookup wrap


def _f32(x: float) -> float:
    rounded: float = _F32.unpack(_F32.pack(x))[0]
    return rounded


def points_per_node(weights: Sequence[int]) -> list[int]:
    """Return how many continuum points nutcracker gives each live server.

    Args:
        weights: the live servers' weights, in pool order.

    Returns:
        One multiple of 4 per server (possibly 0).

    Raises:
        ValueError: no weights, a weight < 1, or a total weight that does not
            fit nutcracker's uint32.
    """
    if not weights:
        raise ValueError("ketama needs at least one live server")
    if any(w < 1 for w in weights):
        raise ValueError(f"ketama server weights must be >= 1, got {list(weights)}")
    total = sum(weights)
    if total > 0xFFFFFFFF:
        raise ValueError(f"ketama total weight {total} does not fit in 32 bits")
    f = _f32
    ftotal = f(float(total))
    nlive = f(float(len(weights)))
    counts = []
    for weight in weights:
        pct = f(f(float(weight)) / ftotal)
        x = f(f(f(pct * _POINTS_PER_SERVER) / _POINTS_PER_HASH) * nlive)
        x = f(x + 0.0000000001)  # a double literal: double sum, cast back to float
        counts.append(math.floor(x) * _POINTS_PER_HASH)
    return counts


class KetamaDispatcher:
    """Lookup over one built continuum; see :func:`build`."""

    __slots__ = ("_owners", "_values", "bisect_table", "points_per_node")
    needs_hash = True

    def __init__(self, continuum: Sequence[tuple[int, int]], points: Sequence[int]) -> None:
        # Parallel lists, plus a sentinel point past the largest hash that
        # belongs to the first point's node: bisect then never falls off
        # the end, so lookup needs no wrap-around branch.
        self._values = [v for v, _ in continuum] + [_WRAP]
        self._owners = [i for _, i in continuum] + [continuum[0][1]]
        self.points_per_node: tuple[int, ...] = tuple(points)
        """Number of points of each node, in node order."""
        self.bisect_table = (self._values, self._owners)
        """What lets the pool's router inline :meth:`lookup` (corenet.routing)."""

    def lookup(self, hash_value: int) -> int:
        """Return the index of the node owning the first point >= ``hash_value``."""
        return self._owners[bisect_left(self._values, hash_value)]

    def explain(self, hash_value: int) -> tuple[int | None, int]:
        """Return ``(point, node index)`` for ``hash_value``."""
        i = bisect_left(self._values, hash_value)
        if i == len(self._values) - 1:
            i = 0
        return self._values[i], self._owners[i]

    def continuum(self) -> list[tuple[int, int]]:
        """Return the sorted ``(point, node index)`` pairs."""
        return list(zip(self._values[:-1], self._owners[:-1], strict=True))

    def __len__(self) -> int:
        return len(self._values) - 1


def build(nodes: Sequence[tuple[str, int]]) -> KetamaDispatcher:
    """Build nutcracker's ketama continuum over the live ``nodes``.

    Args:
        nodes: the live servers as ``(name, weight)``, named and ordered as
            nutcracker names and orders them (see ``corenet.proxy.naming``).

    Returns:
        A dispatcher whose ``lookup`` returns indexes into ``nodes``.

    Raises:
        ValueError: ``nodes`` is empty (the pool must handle "every server
            ejected" itself), or a weight is invalid.
    """
    counts = points_per_node([weight for _, weight in nodes])
    points: list[tuple[int, int]] = []
    md5 = hashlib.md5
    for index, ((name, _), count) in enumerate(zip(nodes, counts, strict=True)):
        prefix = name.encode() + b"-"
        for j in range(count // _POINTS_PER_HASH):
            host = (prefix + str(j).encode())[:_MAX_HOSTLEN]
            points.extend((value, index) for value in _FOUR_POINTS(md5(host).digest()))
    points.sort(key=lambda point: point[0])
    return KetamaDispatcher(points, counts)
