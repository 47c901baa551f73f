"""The contracts of key routing: hash functions and distributions.

A pool turns a key into a server in three steps, all resolved when the pool
is built: ``hash_tag`` narrows the key, a hash function maps it to an
unsigned 32-bit value, and a distribution's dispatcher maps that value to
one of the live servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

__all__ = ["Dispatcher", "DistributionFactory", "HashFn", "Node", "apply_hash_tag"]

HashFn = Callable[[bytes], int]
"""``fn(key) -> int``: an unsigned 32-bit hash of ``key``."""

Node = tuple[str, int]
"""A live server as a distribution sees it: ``(name, weight)``."""


class Dispatcher(Protocol):
    """Maps hash values to node indexes; built once per set of live servers."""

    def lookup(self, hash_value: int) -> int:
        """Return the index, in the node list it was built from, of the node for ``hash_value``."""
        ...

    def explain(self, hash_value: int) -> tuple[int | None, int]:
        """Return ``(point, index)``: the continuum point chosen (None if the
        distribution has no continuum) and the node index, for operators."""
        ...


DistributionFactory = Callable[[Sequence[Node]], Dispatcher]


def apply_hash_tag(key: bytes, tag: bytes) -> bytes:
    """Return the part of ``key`` that is hashed under the two-byte ``tag``.

    As nutcracker: the bytes between the first ``tag[0]`` and the first
    ``tag[1]`` after it, when at least one byte lies between; else the whole key.
    """
    start = key.find(tag[0:1])
    if start < 0:
        return key
    end = key.find(tag[1:2], start + 1)
    if end <= start + 1:
        return key
    return key[start + 1 : end]
