"""Random distribution, as nutcracker 0.5.0 builds it (``random_update``).

nutcracker gives every live server exactly one slot, whatever its weight,
and picks ``random() % nlive`` per request without hashing the key at all.
So weights are ignored, and each live server is equally likely.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["RandomDispatcher", "build"]


class RandomDispatcher:
    """Uniform choice over the live nodes; the hash value is ignored."""

    __slots__ = ("_randrange", "nodes")
    needs_hash = False  # the pool may skip hashing, as nutcracker does

    def __init__(self, nodes: int, randrange: Callable[[int], int]) -> None:
        self.nodes = nodes
        self._randrange = randrange

    def lookup(self, hash_value: int) -> int:
        """Return a uniformly random node index (``hash_value`` is ignored)."""
        return self._randrange(self.nodes)

    def explain(self, hash_value: int) -> tuple[int | None, int]:
        """Return ``(None, random node index)``."""
        return None, self._randrange(self.nodes)


def build(
    nodes: Sequence[tuple[str, int]], *, rng: random.Random | None = None
) -> RandomDispatcher:
    """Build nutcracker's random distribution over the live ``nodes``.

    Args:
        nodes: the live servers as ``(name, weight)``; weights are ignored.
        rng: the generator to draw from (default: the ``random`` module's).

    Returns:
        A dispatcher whose ``lookup`` returns indexes into ``nodes``.

    Raises:
        ValueError: ``nodes`` is empty.
    """
    if not nodes:
        raise ValueError("random needs at least one live server")
    return RandomDispatcher(len(nodes), (rng or random).randrange)
