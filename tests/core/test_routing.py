"""The router composes hash tag, hash function and dispatcher into one
``index_of`` per set of live servers; whichever shape it picks (ketama
inlined through ``bisect_table``, any other dispatcher through ``lookup``,
no hashing for ``random``), a key must land where the three steps taken one
by one send it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet.plugins.distribution import build_ketama, build_modula, build_random
from corenet.plugins.hashing import HASH_FUNCTIONS
from corenet.routing import Router, apply_hash_tag

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


def test_ketama_is_inlined_and_empty_key_hashes_to_zero() -> None:
    router = Router(HASH_FUNCTIONS["fnv1a_64"], build_ketama, None, len(NODES))
    router.rebuild(NODES)
    assert router.index_of.__name__ == "index_of"  # the bisect_table shape
    assert router.index_of(b"") == router.dispatcher.lookup(0)  # type: ignore[union-attr]


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
