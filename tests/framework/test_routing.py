"""The router composes hash tag, hash function and dispatcher into one
``index_of`` per set of live servers; whichever shape it picks (ketama
inlined through ``bisect_table``, any other dispatcher through ``lookup``,
no hashing for ``random``), a key must land where the three steps taken one
by one send it."""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet import accel, routing
from corenet.plugins.distribution import build_ketama, build_modula, build_random
from corenet.plugins.hashing import HASH_FUNCTIONS
from corenet.routing import Router, apply_hash_tag, group_by_server
from tests._speedups import require_built

NODES = [("redis0", 1), ("redis1", 2), ("10.0.0.3:6379", 1), ("cache-d", 3)]
keys = st.one_of(
    st.binary(max_size=24), st.builds(lambda a, b: a + b"{" + b + b"}", st.binary(), st.binary())
)


def by_hand(router: Router, key: bytes) -> int:
    assert router.dispatcher is not None
    hashed = apply_hash_tag(key, router.hash_tag) if router.hash_tag is not None else key
    return router.dispatcher.lookup(router.hash_fn(hashed) if hashed else 0)


@pytest.mark.parametrize("build", [build_ketama, build_modula], ids=["ketama", "modula"])
@pytest.mark.parametrize("tag", [None, b"{}"])
@pytest.mark.parametrize("hash_name", ["fnv1a_64", "murmur", "crc32a"])
@given(key=keys)
def test_index_of_matches_the_steps(
    build: object, tag: bytes | None, hash_name: str, key: bytes
) -> None:
    router = Router(HASH_FUNCTIONS[hash_name], build, tag, len(NODES))  # type: ignore[arg-type]
    router.rebuild(NODES)
    assert router.index_of(key) == by_hand(router, key)
    router.rebuild(NODES[1:3])  # fewer live servers: a new composition
    assert router.index_of(key) == by_hand(router, key)


def test_ketama_is_inlined_and_empty_key_hashes_to_zero(speedups: bool) -> None:
    router = Router(HASH_FUNCTIONS["fnv1a_64"], build_ketama, None, len(NODES))
    router.rebuild(NODES)
    if not speedups:
        assert router.index_of.__name__ == "route"  # type: ignore[attr-defined]
    else:
        assert type(router.index_of).__name__ == "BisectRoute"
    assert router.index_of(b"") == router.dispatcher.lookup(0)  # type: ignore[union-attr]
    for key in (b"a", b"key:000000000001", bytes(range(256))):
        assert router.index_of(key) == by_hand(router, key)


# ---- the compiled continuum lookup ------------------------------------------------

try:
    from corenet import _route
except ImportError:
    _route = None  # type: ignore[assignment]


def route_module() -> Any:
    """corenet._route; skip the test, or fail it under CORENET_REQUIRE_SPEEDUPS."""
    return require_built(_route, "corenet._route")


tables = st.lists(st.integers(0, 2**32), min_size=1, max_size=40).flatmap(
    lambda points: st.tuples(
        st.just(sorted(points)),
        st.lists(st.integers(0, 9), min_size=len(points), max_size=len(points)),
    )
)


@given(table=tables, keys=st.lists(st.binary(max_size=12), max_size=8))
def test_bisect_route_matches_the_closure(
    table: tuple[list[int], list[int]], keys: list[bytes]
) -> None:
    points, owners = table
    hash_fn = HASH_FUNCTIONS["murmur"]
    route = route_module().BisectRoute(hash_fn, points, owners)
    expected = [pure_route_or_error(hash_fn, points, owners, key) for key in keys]
    got: list[object] = []
    for key in keys:
        try:
            got.append(route(key))
        except IndexError:
            got.append(IndexError)
    assert got == expected
    if IndexError not in expected:
        assert route.many(keys) == expected


def pure_route_or_error(hash_fn: Any, points: list[int], owners: list[int], key: bytes) -> object:
    """The closure's answer, or IndexError for a hash past the last point."""
    try:
        return owners[bisect_left(points, hash_fn(key) if key else 0)]
    except IndexError:
        return IndexError


def test_bisect_route_refuses_bad_tables_and_hashes() -> None:
    cls = route_module().BisectRoute
    with pytest.raises(ValueError, match="sorted"):
        cls(len, [3, 1], [0, 1])
    with pytest.raises(ValueError, match="as many owners as points"):
        cls(len, [1, 2], [0])
    with pytest.raises(ValueError, match="at least one"):
        cls(len, [], [])
    with pytest.raises(TypeError):
        cls(len, (1, 2), [0, 1])
    assert cls(len, [1, 5], [7, 8])(b"abc") == 8  # len: a hash of sorts
    with pytest.raises(IndexError):
        cls(len, [1, 2], [7, 8])(b"abc")  # past the last point, like owners[2]
    with pytest.raises(OverflowError):
        cls(lambda key: -1, [1, 2], [7, 8])(b"abc")
    with pytest.raises(TypeError):
        cls(lambda key: "x", [1, 2], [7, 8])(b"abc")
    with pytest.raises(TypeError):
        cls(len, [1, 2], [7, 8])()
    route = cls(len, [0, 2], [7, 8])
    assert route(b"") == 7  # the empty key is not hashed
    assert route(bytearray(b"ab")) == 8


# ---- group_by_server ---------------------------------------------------------------


@pytest.mark.parametrize("compiled", [False, True])
@given(keys=st.lists(keys, min_size=1, max_size=20), step=st.sampled_from([1, 2]))
def test_group_by_server(compiled: bool, keys: list[bytes], step: int) -> None:
    router = Router(HASH_FUNCTIONS["fnv1a_64"], build_ketama, None, len(NODES))
    router.rebuild(NODES)
    server_of = router.index_of
    if not compiled:
        server_of = lambda key: router.index_of(key)  # noqa: E731 - no many()
    groups = group_by_server(keys, server_of, step)
    positions = [p for group in groups.values() for p in group]
    assert sorted(positions) == list(range(0, len(keys), step))
    for index, group in groups.items():
        assert list(group) == sorted(group)
        assert all(router.index_of(keys[p]) == index for p in group)
    firsts = [group[0] for group in groups.values()]
    assert firsts == sorted(firsts)  # servers in order of first appearance


@given(
    servers=st.lists(st.integers(0, 70_000), max_size=60)
    | st.lists(st.sampled_from([0, 1, 2, 40]), max_size=60),
    step=st.sampled_from([1, 2, 3]),
)
def test_compiled_grouping_matches_the_loop(servers: list[int], step: int) -> None:
    group = require_built(accel.built("corenet._route"), "corenet._route").group
    expected = routing._group_pure(servers, step)
    grouped = group(servers, step)
    if grouped is None:  # an index the C table does not cover: the loop decides
        assert any(index >= 65536 for index in servers)
        return
    assert list(grouped) == list(expected)  # the order of first appearance
    assert {i: array("I", b) for i, b in grouped.items()} == expected


def test_compiled_grouping_leaves_odd_input_to_the_loop() -> None:
    group = require_built(accel.built("corenet._route"), "corenet._route").group
    assert group([0, -1], 1) is None
    assert group([0, True], 1) is None  # not an int exactly
    assert group([0, 1], 0) is None
    assert group([], 1) == {}
    with pytest.raises(TypeError):
        group((0, 1), 1)


def test_random_skips_the_hash() -> None:
    def boom(key: bytes) -> int:
        raise AssertionError("hashed")

    rng = random.Random(7)
    router = Router(boom, lambda nodes: build_random(nodes, rng=rng), None, len(NODES))
    router.rebuild(NODES)
    seen = {router.index_of(b"k%d" % i) for i in range(200)}
    assert seen == set(range(len(NODES)))


def test_single_server_and_no_server() -> None:
    router = Router(HASH_FUNCTIONS["md5"], build_ketama, None, 1)
    router.rebuild(NODES[:1])
    assert router.index_of(b"anything") == 0
    router.rebuild([])
    with pytest.raises(LookupError):
        router.index_of(b"anything")
