"""ketama, modula and random, and nutcracker's server naming and order.

``data/distribution_vectors.json`` was produced by nutcracker 0.5.0's own
``ketama_update``/``ketama_dispatch`` and ``modula_update``/``modula_dispatch``
(its ``source`` field says how): per scenario, the live nodes in pool order,
each node's point count, a SHA-256 of the sorted continuum, and the node
chosen for a few hundred hash values (boundaries, points and their
neighbours, random values).  ``equal_weight_points[n - 1]`` is the point count
of each of n equal-weight servers.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from corenet.plugins.distribution import (
    DISTRIBUTIONS,
    KetamaDispatcher,
    ModulaDispatcher,
    WideModulaDispatcher,
    build_ketama,
    build_modula,
    build_random,
    points_per_node,
)
from corenet.proxy.naming import server_name, sort_key

DATA = json.loads((Path(__file__).parent / "data" / "distribution_vectors.json").read_text())


def nodes_of(scenario: dict[str, Any]) -> list[tuple[str, int]]:
    return [(name, weight) for name, weight in scenario["live_nodes"]]


def continuum_digest(dispatcher: KetamaDispatcher, nodes: list[tuple[str, int]]) -> str:
    digest = hashlib.sha256()
    for value, index in dispatcher.continuum():
        digest.update(struct.pack("<I", value) + nodes[index][0].encode() + b"\n")
    return digest.hexdigest()


# --- ketama -----------------------------------------------------------------


@pytest.mark.parametrize("scenario", DATA["ketama"], ids=lambda s: s["title"])
def test_ketama_matches_nutcracker(scenario: dict[str, Any]) -> None:
    nodes = nodes_of(scenario)
    dispatcher = build_ketama(nodes)
    assert list(dispatcher.points_per_node) == scenario["points_per_node"]
    assert len(dispatcher) == sum(scenario["points_per_node"])
    assert continuum_digest(dispatcher, nodes) == scenario["continuum_sha256"]
    wrong = [
        (h, dispatcher.lookup(h), want)
        for h, want in scenario["lookups"]
        if dispatcher.lookup(h) != want
    ]
    assert not wrong


def test_equal_weight_point_counts_match_nutcracker() -> None:
    expected = DATA["equal_weight_points"]
    assert [points_per_node([1] * n)[0] for n in range(1, len(expected) + 1)] == expected
    # The float32 rounding the compatibility spec calls out.
    assert expected[25 - 1] == expected[47 - 1] == expected[50 - 1] == 156
    assert expected[4 - 1] == 160


def test_ketama_weights_scale_points() -> None:
    assert points_per_node([1, 2, 3, 4]) == [64, 128, 192, 256]
    # A share below one group of four points gives the server no points at
    # all: nutcracker never routes to it.
    assert points_per_node([100, 1]) == [316, 0]


def test_ketama_points_depend_on_names_not_order() -> None:
    nodes = [("a", 1), ("b", 1), ("c", 1)]
    forward = build_ketama(nodes)
    backward = build_ketama(nodes[::-1])
    for h in range(0, 2**32, 2**32 // 997):
        assert nodes[forward.lookup(h)] == nodes[::-1][backward.lookup(h)]


def test_ketama_explain_and_wrap() -> None:
    dispatcher = build_ketama([("10.0.0.1:6379", 1), ("10.0.0.2:6379", 1)])
    continuum = dispatcher.continuum()
    first_value, first_owner = continuum[0]
    last_value, last_owner = continuum[-1]
    assert dispatcher.explain(0) == (first_value, first_owner)
    assert dispatcher.explain(last_value) == (last_value, last_owner)
    # Past the last point the lookup wraps to the first point.
    if last_value < 2**32 - 1:
        assert dispatcher.explain(last_value + 1) == (first_value, first_owner)
    assert dispatcher.explain(2**32 - 1)[1] == dispatcher.lookup(2**32 - 1)
    previous = continuum[9][0]
    value, owner = continuum[10]
    assert previous < value
    assert dispatcher.explain(previous + 1) == (value, owner)
    assert dispatcher.lookup(previous + 1) == owner


def test_ketama_single_node_owns_everything() -> None:
    dispatcher = build_ketama([("only", 3)])
    assert {dispatcher.lookup(h) for h in (0, 1, 2**31, 2**32 - 1)} == {0}


@pytest.mark.parametrize("nodes", [[], [("a", 0)], [("a", 1), ("b", -2)]])
def test_ketama_rejects_bad_nodes(nodes: list[tuple[str, int]]) -> None:
    with pytest.raises(ValueError, match="ketama"):
        build_ketama(nodes)


hashes = st.lists(st.integers(0, 2**32 - 1), min_size=50, max_size=50)


@given(
    ids=st.lists(st.integers(1, 254), min_size=2, max_size=30, unique=True),
    victim=st.integers(0, 29),
    probes=hashes,
)
def test_ketama_removing_a_server_moves_only_its_keys(
    ids: list[int], victim: int, probes: list[int]
) -> None:
    nodes = [(f"10.0.0.{i}:6379", 1) for i in ids]
    victim %= len(nodes)
    survivors = nodes[:victim] + nodes[victim + 1 :]
    # nutcracker recomputes every share when the live set changes, and the
    # float32 rounding can move the survivors between 156 and 160 points
    # (e.g. 25 -> 24 servers); then keys also move between survivors.  With
    # unchanged point counts, consistency is exact.
    assume(points_per_node([1] * len(nodes))[0] == points_per_node([1] * len(survivors))[0])
    before = build_ketama(nodes)
    after = build_ketama(survivors)
    for h in probes:
        owner = before.lookup(h)
        if owner != victim:
            assert survivors[after.lookup(h)] == nodes[owner]


@given(
    weights=st.lists(st.integers(1, 8), min_size=2, max_size=12),
    victim=st.integers(0, 11),
    probes=hashes,
)
def test_ketama_keys_move_between_survivors_only_with_their_points(
    weights: list[int], victim: int, probes: list[int]
) -> None:
    nodes = [(f"s{i}", w) for i, w in enumerate(weights)]
    victim %= len(nodes)
    survivors = nodes[:victim] + nodes[victim + 1 :]
    before = build_ketama(nodes)
    after = build_ketama(survivors)
    old_points = dict(zip(nodes, before.points_per_node, strict=True))
    new_points = dict(zip(survivors, after.points_per_node, strict=True))
    for h in probes:
        source = nodes[before.lookup(h)]
        target = survivors[after.lookup(h)]
        if source != nodes[victim] and target != source:
            assert new_points[target] > old_points[target] or (
                new_points[source] < old_points[source]
            )


# --- modula -----------------------------------------------------------------


@pytest.mark.parametrize("scenario", DATA["modula"], ids=lambda s: s["title"])
def test_modula_matches_nutcracker(scenario: dict[str, Any]) -> None:
    dispatcher = build_modula(nodes_of(scenario))
    assert dispatcher.total_weight == scenario["slots"]
    assert all(dispatcher.lookup(h) == want for h, want in scenario["lookups"])


def test_modula_repeats_each_node_weight_times() -> None:
    dispatcher = build_modula([("a", 2), ("b", 1), ("c", 3)])
    assert [dispatcher.lookup(h) for h in range(12)] == [0, 0, 1, 2, 2, 2] * 2
    assert dispatcher.explain(7) == (None, 0)


@given(
    weights=st.lists(st.integers(1, 50), min_size=1, max_size=20),
    probes=st.lists(st.integers(0, 2**32 - 1), max_size=30),
)
def test_wide_modula_agrees_with_flat(weights: list[int], probes: list[int]) -> None:
    flat, wide = ModulaDispatcher(weights), WideModulaDispatcher(weights)
    for h in [*probes, *range(sum(weights))]:
        assert wide.lookup(h) == flat.lookup(h)


def test_modula_huge_weights_use_bisect() -> None:
    dispatcher = build_modula([("a", 1), ("b", 10**9)])
    assert isinstance(dispatcher, WideModulaDispatcher)
    assert dispatcher.lookup(0) == 0
    assert dispatcher.lookup(1) == 1
    assert dispatcher.lookup(10**9 + 1) == 0


@pytest.mark.parametrize("nodes", [[], [("a", 0)]])
def test_modula_rejects_bad_nodes(nodes: list[tuple[str, int]]) -> None:
    with pytest.raises(ValueError, match="modula"):
        build_modula(nodes)


# --- random -----------------------------------------------------------------


def test_random_is_uniform_and_ignores_weights() -> None:
    # nutcracker's random continuum has one slot per live server.
    dispatcher = build_random([("a", 1), ("b", 100), ("c", 1000)], rng=random.Random(1))
    counts = Counter(dispatcher.lookup(12345) for _ in range(3000))
    assert set(counts) == {0, 1, 2}
    assert all(800 < n < 1200 for n in counts.values())
    point, index = dispatcher.explain(0)
    assert point is None
    assert index in {0, 1, 2}
    assert dispatcher.needs_hash is False


def test_random_rejects_no_nodes() -> None:
    with pytest.raises(ValueError, match="random"):
        build_random([])


def test_hash_needed_by_ketama_and_modula() -> None:
    assert build_ketama([("a", 1)]).needs_hash is True
    assert build_modula([("a", 1)]).needs_hash is True


def test_distribution_names() -> None:
    assert list(DISTRIBUTIONS) == ["ketama", "modula", "random"]


# --- naming and order -------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "name", "expected"),
    [
        ("127.0.0.1", "6379", None, "127.0.0.1:6379"),
        ("127.0.0.1", 6379, None, "127.0.0.1:6379"),
        ("127.0.0.1", "06380", None, "127.0.0.1:06380"),  # port text kept as written
        ("127.0.0.1", "11211", None, "127.0.0.1"),
        ("127.0.0.1", 11211, None, "127.0.0.1"),
        ("10.0.0.1", "011211", None, "10.0.0.1"),  # compared as a number
        ("/tmp/redis.sock", None, None, "/tmp/redis.sock:"),  # the colon stays
        ("127.0.0.1", "6381", "zz", "zz"),
        ("/tmp/redis.sock", None, "sock", "sock"),
    ],
)
def test_server_name(host: str, port: int | str | None, name: str | None, expected: str) -> None:
    assert server_name(host, port, name) == expected


def test_server_name_rejects_a_non_numeric_port() -> None:
    with pytest.raises(ValueError, match="port"):
        server_name("h", "63x9", None)


def test_sort_order_is_nutcrackers() -> None:
    # The order nutcracker 0.5.0's stats output listed these servers in.
    expected = [
        "b",
        "Ab",
        "ab",
        "zz",
        "10.0.0.1",
        "127.0.0.1",
        "127.0.0.1:6379",
        "127.0.0.1:06380",
        "/tmp/nct/r.sock:",
    ]
    shuffled = expected[:]
    random.Random(3).shuffle(shuffled)
    assert sorted(shuffled, key=sort_key) == expected
