"""Modula distribution, as nutcracker 0.5.0 builds it (``modula_update``).

Each live server fills ``weight`` consecutive slots, in pool order, and a
hash picks slot ``hash % total_live_weight``.  Ejected servers leave, and
the remaining weights close up, so most keys move when the live set changes.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ModulaDispatcher", "WideModulaDispatcher", "build"]

# Up to this many slots, a flat slot -> node table (one index per lookup);
# beyond it, a bisect over cumulative weights keeps memory O(nodes): nutcracker
# itself allocates one slot per unit of weight, which a huge weight turns into
# an allocation failure.
_FLAT_SLOTS = 1 << 16


class ModulaDispatcher:
    """Lookup by ``hash % total_weight`` through a flat slot table; see :func:`build`."""

    __slots__ = ("_slots", "total_weight")
    needs_hash = True

    def __init__(self, weights: Sequence[int]) -> None:
        self.total_weight = sum(weights)
        self._slots = tuple(i for i, w in enumerate(weights) for _ in range(w))

    def lookup(self, hash_value: int) -> int:
        """Return the index of the node owning slot ``hash_value % total_weight``."""
        return self._slots[hash_value % self.total_weight]

    def explain(self, hash_value: int) -> tuple[int | None, int]:
        """Return ``(None, node index)``: modula has no continuum points."""
        return None, self.lookup(hash_value)


class WideModulaDispatcher(ModulaDispatcher):
    """The same mapping for huge total weights, by bisecting cumulative weights."""

    __slots__ = ("_bounds",)

    def __init__(self, weights: Sequence[int]) -> None:
        self.total_weight = sum(weights)
        self._bounds = list(accumulate(weights))

    def lookup(self, hash_value: int) -> int:
        """Return the index of the node owning slot ``hash_value % total_weight``."""
        return bisect_right(self._bounds, hash_value % self.total_weight)


def build(nodes: Sequence[tuple[str, int]]) -> ModulaDispatcher:
    """Build nutcracker's modula table over the live ``nodes``.

    Args:
        nodes: the live servers as ``(name, weight)``, in pool order.

    Returns:
        A dispatcher whose ``lookup`` returns indexes into ``nodes``.

    Raises:
        ValueError: ``nodes`` is empty, or a weight is < 1.
    """
    if not nodes:
        raise ValueError("modula needs at least one live server")
    weights = [weight for _, weight in nodes]
    if any(w < 1 for w in weights):
        raise ValueError(f"modula server weights must be >= 1, got {weights}")
    if sum(weights) > _FLAT_SLOTS:
        return WideModulaDispatcher(weights)
    return ModulaDispatcher(weights)
