"""The contracts of key routing: hash functions and distributions.

A pool turns a key into a server in three steps, all resolved when the pool
is built: ``hash_tag`` narrows the key, a hash function maps it to an
unsigned 32-bit value, and a distribution's dispatcher maps that value to
one of the live servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

__all__ = [
    "Dispatcher",
    "DistributionFactory",
    "Explanation",
    "HashFn",
    "Node",
    "Router",
    "apply_hash_tag",
]

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


@attrs.frozen
class Explanation:
    """How a key is routed, step by step, for ``corenet-proxy --explain``."""

    key: bytes
    hashed: bytes
    hash_value: int | None
    point: int | None
    index: int


class Router:
    """Key -> server index for one pool: hash tag, hash function, dispatcher.

    The pool binds :meth:`index_of` as a plain attribute; it is the whole
    per-key routing cost.  ``rebuild`` is called with the live servers
    whenever they change (start-up, ejection, retry).
    """

    def __init__(
        self,
        hash_fn: HashFn,
        distribution: DistributionFactory,
        hash_tag: bytes | None,
        configured_servers: int,
    ) -> None:
        self.hash_fn = hash_fn
        self.distribution = distribution
        self.hash_tag = hash_tag
        # nutcracker skips hashing for a pool of exactly one configured server.
        self.single = configured_servers == 1
        self.dispatcher: Dispatcher | None = None
        self._lookup: Callable[[int], int] = _no_lookup

    def rebuild(self, nodes: Sequence[Node]) -> None:
        """Rebuild the dispatcher over ``nodes`` (the live servers, in pool order)."""
        if nodes:
            self.dispatcher = self.distribution(nodes)
            self._lookup = self.dispatcher.lookup
        else:
            self.dispatcher = None
            self._lookup = _no_lookup

    def index_of(self, key: bytes) -> int:
        """Index, among the live servers, of the one ``key`` routes to."""
        if self.single:
            return 0
        tag = self.hash_tag
        if tag is not None:
            key = apply_hash_tag(key, tag)
        # nutcracker hashes an empty key to 0 without calling the function.
        return self._lookup(self.hash_fn(key) if key else 0)

    def explain(self, key: bytes) -> Explanation:
        """Say how ``key`` is routed (cold path; for operators)."""
        if self.dispatcher is None:
            raise LookupError("no live server")
        if self.single:
            return Explanation(key, key, None, None, 0)
        hashed = apply_hash_tag(key, self.hash_tag) if self.hash_tag is not None else key
        value = self.hash_fn(hashed) if hashed else 0
        point, index = self.dispatcher.explain(value)
        return Explanation(key, hashed, value, point, index)


def _no_lookup(hash_value: int) -> int:
    raise LookupError("no live server")
