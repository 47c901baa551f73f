"""The contracts of key routing: hash functions and distributions.

A pool turns a key into a server in three steps, all resolved when the pool
is built: ``hash_tag`` narrows the key, a hash function maps it to an
unsigned 32-bit value, and a distribution's dispatcher maps that value to
one of the live servers.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Protocol

import attrs

from corenet import accel

__all__ = [
    "Dispatcher",
    "DistributionFactory",
    "Explanation",
    "HashFn",
    "Node",
    "Router",
    "apply_hash_tag",
    "group_by_server",
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


def group_by_server(
    keys: Sequence[bytes], server_of: Callable[[bytes], int], step: int = 1
) -> dict[int, array[int]]:
    """Group the positions of ``keys[::step]`` in ``keys`` by the server each
    routes to: ``{server index: array of positions, in request order}``, servers in
    order of first appearance.  For a protocol's ``fragment``: one group
    means the request can go whole.

    ``step=2`` routes every other element (the keys of ``MSET k v k v``).
    When ``server_of`` has a ``many(keys)`` method (the router's compiled
    lookup does) all keys are routed in one call.
    """
    routed = keys[::step] if step > 1 else keys
    many = getattr(server_of, "many", None)
    servers: list[int] = many(routed) if many is not None else [server_of(k) for k in routed]
    if _group is not None:
        grouped = _group(servers, step)
        if grouped is not None:
            return {index: array("I", positions) for index, positions in grouped.items()}
    return _group_pure(servers, step)


def _group_pure(servers: list[int], step: int) -> dict[int, array[int]]:
    """:func:`group_by_server`'s grouping of routed keys; the reference for
    ``corenet._route.group``, which does it in one pass in C."""
    # Positions as 4-byte integers, not a list of int objects: a request of
    # 400 000 keys keeps 1.6 MB of them until it is answered, not 16 MB.
    groups: dict[int, array[int]] = {}
    for i, index in enumerate(servers):
        group = groups.get(index)
        if group is None:
            groups[index] = array("I", (i * step,))
        else:
            group.append(i * step)
    return groups


_group: Callable[[list[int], int], dict[int, bytes] | None] | None = getattr(
    accel.compiled("corenet._route"), "group", None
)


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

        :attr:`index_of` is the whole per-key routing cost, so it is a plain
        function composed by :meth:`rebuild` for the dispatcher at hand rather
        than a method calling through layers: one Python frame per key.  A
        dispatcher that declares ``bisect_table = (points, owners)`` (ketama)
        is inlined, since its ``lookup(v)`` is ``owners[bisect_left(points, v)]``
        (by ``corenet._route.BisectRoute``, its compiled twin, when
    :func:`corenet.accel.compiled` allows; a
        hash tag is applied first);
        one whose ``needs_hash`` is false (random) is called without hashing.
        ``rebuild`` is called with the live servers whenever they change
        (start-up, ejection, retry); the pool re-reads :attr:`index_of` then.
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
        self.index_of: Callable[[bytes], int] = _no_route
        """Index, among the live servers, of the one a key routes to."""

    def rebuild(self, nodes: Sequence[Node]) -> None:
        """Rebuild the dispatcher over ``nodes`` (the live servers, in pool order)."""
        self.dispatcher = self.distribution(nodes) if nodes else None
        self.index_of = self._compose()

    def _compose(self) -> Callable[[bytes], int]:
        dispatcher = self.dispatcher
        if dispatcher is None:
            return _no_route
        if self.single:
            return _first_server
        hash_fn = self.hash_fn
        tag = self.hash_tag
        lookup = dispatcher.lookup
        if not getattr(dispatcher, "needs_hash", True):
            return lambda key: lookup(0)
        table = getattr(dispatcher, "bisect_table", None)
        if table is not None:
            points: list[int] = table[0]
            owners: list[int] = table[1]
            compiled = accel.compiled("corenet._route")
            if compiled is not None:
                route: Callable[[bytes], int] = compiled.BisectRoute(hash_fn, points, owners)
            else:
                # nutcracker hashes an empty key to 0 without calling the function.
                empty = owners[bisect_left(points, 0)]

                def route(key: bytes) -> int:
                    return owners[bisect_left(points, hash_fn(key))] if key else empty

            if tag is None:
                return route
            return lambda key: route(apply_hash_tag(key, tag))

        def index_of(key: bytes) -> int:
            if tag is not None:
                key = apply_hash_tag(key, tag)
            return lookup(hash_fn(key) if key else 0)

        return index_of

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


def _no_route(key: bytes) -> int:
    raise LookupError("no live server")


def _first_server(key: bytes) -> int:
    return 0
