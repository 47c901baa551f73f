"""memcached's meta commands through corenet-proxy, against real memcached 1.6.

* One-server pool: the same bytes sent to a memcached directly and to its
  twin behind the proxy get byte-identical replies (hand-written cases,
  every bad input of the parser tests, and a corpus of 2 000 random meta
  commands).
* Three-server pool: replies equal those of one memcached holding the same
  data (random pipelines without cas values; quiet ``mg`` pipelines ending
  in ``mn``), and base64 keys land on the server of their decoded key.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corenet.testing.memcache_strategies import MemcacheRequest, memcache_meta_requests
from tests.conftest import need_binary
from tests.integration.test_proxy_memcache import (
    MARKER,
    MARKER_REPLY,
    Twins,
    exchange,
    running_twins,
)
from tests.protocols.test_memcache_meta import META_ERRORS
from tests.servers import CorenetProxy, Memcached, memcache_raw, pool_config, spread_keys

if TYPE_CHECKING:
    from collections.abc import Iterator

CORPUS_PIPELINES = 50
CORPUS_PIPELINE_LENGTH = 40  # 50 x 40 = 2 000 random meta commands
QUIET_PIPELINES = 500
KEYS = [k.encode() for k in spread_keys(12, "meta", digits=8)]


def derandomized(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(scope="module")
def twins(request: pytest.FixtureRequest) -> Iterator[Twins]:
    need_binary(request.config, "memcached")
    with running_twins() as started:
        yield started


class Sharded:
    """One memcached reached directly, and three behind a corenet pool."""

    def __init__(self, single: Memcached, backends: list[Memcached], proxy: CorenetProxy) -> None:
        self.single = single
        self.backends = backends
        self.proxy = proxy

    def reset(self) -> None:
        for server in (self.single, *self.backends):
            server.reset()

    def both(self, payload: bytes) -> tuple[bytes, bytes]:
        """The replies to ``payload`` (then MARKER) from the single server and the pool."""
        marked = payload + MARKER
        single = exchange(self.single.address, marked, until=MARKER_REPLY)
        pooled = exchange(self.proxy.address("mc"), marked, until=MARKER_REPLY)
        return single, pooled


@pytest.fixture(scope="module")
def sharded(request: pytest.FixtureRequest) -> Iterator[Sharded]:
    need_binary(request.config, "memcached")
    servers: list[Memcached] = []
    proxy = None
    try:
        while len(servers) < 4:
            servers.append(Memcached())
        single, backends = servers[0], servers[1:]
        proxy = CorenetProxy(pool_config("mc", None, [s.address for s in backends], redis=False))
        yield Sharded(single, backends, proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        for server in servers:
            server.stop()


# -- one-server pool: byte for byte ---------------------------------------------------

DALLI = (
    # Dalli 4's meta dialect: set with TTL and flags, get with value, flags,
    # TTL, cas, key and opaque; cas-guarded set, quiet delete, counters.
    b"ms dk 5 T0 F3\r\nhello\r\n"
    b"mg dk v f t c k O1\r\n"
    b"mg dk v f t c k O2 q\r\n"
    b"mg nope v f t c k O3 q\r\n"
    b"ms dk 3 T100 F5 C1 I\r\nbye\r\n"
    b"mg dk c\r\n"
    b"ms dk 3 T0 F5 C4 I\r\nbye\r\n"
    b"mg dk v f\r\n"
    b"md dk q\r\n"
    b"md dk q\r\n"
    b"mg dk v q\r\n"
    b"ma cnt N0 J5 D3 v\r\n"
    b"ma cnt N0 J5 D3 v\r\n"
    b"ma cnt MD D10 v\r\n"
    b"ma cnt q D1\r\n"
    b"ma cnt v\r\n"
    b"mn\r\n"
)
META_CASES = [
    DALLI,
    # no flags: HD or EN; then every return flag
    b"mg a\r\nms a 1\r\nx\r\nmg a\r\nmg a v f s k Oop h u\r\nmg a h\r\n",
    # quiet pipelines, hits and misses, opaque and key kept
    b"ms a 1\r\n1\r\nms c 1\r\n3\r\n"
    b"mg a v q k O1\r\nmg b v q k O2\r\nmg c v q k O3\r\nmg d q k O4\r\nmn\r\n",
    b"ms a 1 q\r\n1\r\nms a 1 q ME\r\n2\r\nms a 1 q C99\r\n3\r\nmd a q\r\nmd a q\r\nmn\r\n",
    # base64 keys, key returned encoded with the b flag
    b"ms Zm9v 2 b\r\nhi\r\nmg Zm9v b v k\r\nmg foo v k\r\nget foo\r\nmd Zm9v b q\r\nmg foo v\r\n",
    b"mg A=AA b k v\r\nms A=AA 1 b\r\nx\r\nmg A=AA b k v\r\nmg AA== b k\r\nmg A-B_CD b k\r\n",
    # vivify, recache and stale items
    b"mg viv N30 v c\r\nmg viv N30 v c\r\nms viv 2 T0 C1\r\nhi\r\nmd viv I T30\r\nmg viv v\r\n",
    # modes
    b"ms m 1 ME\r\na\r\nms m 1 ME\r\nb\r\nms m 1 MA\r\nc\r\nms m 1 MP\r\nd\r\nms m 1 MR\r\ne\r\n"
    b"ms n 1 MR\r\nf\r\nmg m v\r\nmg n v\r\n",
    b"ma x\r\nma x N0 J18446744073709551615 v\r\nma x v\r\nma x M- D5 v\r\n"
    b"set s 0 0 1\r\nx\r\nma s\r\n",
    # meta and classic on one connection
    b"set c 7 0 2\r\nab\r\nmg c v f\r\nms c 3 F9\r\nxyz\r\ngets c\r\nmd c\r\ndelete c\r\nmn\r\n",
    # me: a miss, a key too long, bad base64
    b"me nope\r\nme Zm9v b\r\n",
    *(wire for wire, _ in META_ERRORS),
]


@pytest.mark.parametrize("payload", META_CASES, ids=lambda p: repr(p[:40])[2:-1])
def test_meta_replies_match_memcached_byte_for_byte(twins: Twins, payload: bytes) -> None:
    direct, through = twins.both(payload)
    assert through == direct
    assert direct.endswith(MARKER_REPLY)


def _same_everywhere(request: MemcacheRequest) -> bool:
    # ma with q and N that creates the item: memcached answers, the proxy
    # cannot tell the reply from a quiet success (docs/memcache.md).
    return not (request.command == b"ma" and request.quiet and b" N" in request.wire)


corpus_requests = memcache_meta_requests(keys=st.sampled_from(KEYS), clock_free=True).filter(
    _same_everywhere
)


@derandomized(CORPUS_PIPELINES)
@given(
    requests=st.lists(
        corpus_requests, min_size=CORPUS_PIPELINE_LENGTH, max_size=CORPUS_PIPELINE_LENGTH
    )
)
def test_random_meta_corpus_matches_memcached(
    twins: Twins, requests: list[MemcacheRequest]
) -> None:
    direct, through = twins.both(b"".join(r.wire for r in requests))
    assert through == direct
    assert direct.endswith(MARKER_REPLY)


# Where corenet deliberately differs from memcached (docs/memcache.md).
META_DIFFERENCES = [
    # a length memcached reads leniently: refused, the data block swallowed
    (
        b"ms k +1\r\nx\r\nmg k v\r\n",
        b"HD\r\nVA 1\r\nx\r\n",
        b"CLIENT_ERROR bad command line format\r\nEN\r\n",
    ),
    # ma q N creating the item: memcached sends the reply, the proxy drops it
    (b"ma k q N0 J5 v\r\nmn\r\n", b"VA 1\r\n5\r\nMN\r\n", b"MN\r\n"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "memcached", "corenet"), META_DIFFERENCES)
def test_documented_meta_differences(
    twins: Twins, payload: bytes, memcached: bytes, corenet: bytes
) -> None:
    assert twins.both(payload) == (memcached + MARKER_REPLY, corenet + MARKER_REPLY)


def test_meta_debug_through_the_proxy(twins: Twins) -> None:
    # The times in an ME line may tick between the two runs: compare without them.
    direct, through = twins.both(b"ms Zm9v 2 b\r\nhi\r\nme foo\r\nme Zm9v b\r\nme Zm9v\r\n")
    times = re.compile(rb"(exp|la)=-?\d+")
    assert times.sub(b"", through) == times.sub(b"", direct)
    # A key stored binary (b) is shown in base64, whichever way it was asked for.
    assert through.count(b"ME Zm9v ") == 2
    assert through.endswith(b"\r\nEN\r\n" + MARKER_REPLY)


# -- three-server pool ------------------------------------------------------------------


sharded_requests = memcache_meta_requests(
    keys=st.sampled_from(KEYS), clock_free=True, cas=False
).filter(_same_everywhere)


@derandomized(25)
@given(requests=st.lists(sharded_requests, min_size=40, max_size=40))
def test_random_meta_pipelines_over_three_servers_match_one(
    sharded: Sharded, requests: list[MemcacheRequest]
) -> None:
    sharded.reset()
    single, pooled = sharded.both(b"".join(r.wire for r in requests))
    assert pooled == single
    assert single.endswith(MARKER_REPLY)


PRELOADED = [b"k%d" % i for i in range(60)]


@pytest.fixture(scope="module")
def preloaded(sharded: Sharded) -> Sharded:
    sharded.reset()
    load = b"".join(
        b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(k), k) for i, k in enumerate(PRELOADED)
    )
    for address in (sharded.single.address, sharded.proxy.address("mc")):
        memcache_raw(address, load + b"mn\r\n", until=b"MN\r\n")
    return sharded


@st.composite
def quiet_gets(draw: st.DrawFn) -> bytes:
    """A pipeline of mg, most of them quiet, on keys half of which exist."""
    lines = []
    for i in range(draw(st.integers(1, 30))):
        key = b"k%d" % draw(st.integers(0, 119))
        flags = draw(st.lists(st.sampled_from([b"v", b"f", b"k", b"s", b"t"]), unique=True))
        if draw(st.booleans()):
            flags.append(b"O%d" % i)
        if draw(st.integers(0, 4)):
            flags.append(b"q")
        lines.append(b" ".join([b"mg", key, *draw(st.permutations(flags))]) + b"\r\n")
    return b"".join(lines) + b"mn\r\n"


@derandomized(QUIET_PIPELINES)
@given(pipeline=quiet_gets())
def test_quiet_mg_pipelines_over_three_servers_end_in_mn(
    preloaded: Sharded, pipeline: bytes
) -> None:
    single, pooled = preloaded.both(pipeline)
    assert pooled == single
    # exactly the non-quiet replies, then MN: a quiet miss leaves no EN
    lines = pipeline.split(b"\r\n")[:-2]
    loud_misses = sum(
        1 for line in lines if b" q" not in line and int(line.split(b" ")[1][1:]) >= 60
    )
    assert len(re.findall(rb"(?m)^EN[ \r]", pooled)) == loud_misses
    assert pooled.endswith(b"MN\r\n" + MARKER_REPLY) and pooled.count(b"MN\r\n") == 1


def test_base64_keys_land_on_the_server_of_their_decoded_key(sharded: Sharded) -> None:
    sharded.reset()
    address = sharded.proxy.address("mc")
    text_keys = [k.encode() for k in spread_keys(60, "b64")]
    classic = b"".join(b"set %s 0 0 1\r\nA\r\n" % k for k in text_keys)
    memcache_raw(address, classic + b"mn\r\n", until=b"MN\r\n")
    meta = b"".join(b"ms %s 1 b\r\nB\r\n" % base64.b64encode(k) for k in text_keys)
    assert memcache_raw(address, meta + b"mn\r\n", until=b"MN\r\n") == b"HD\r\n" * 60 + b"MN\r\n"
    used = set()
    for key in text_keys:
        values = [
            memcache_raw(s.address, b"get %s\r\n" % key, until=b"END\r\n") for s in sharded.backends
        ]
        # the meta set overwrote the classic one: one server holds the key, as B
        hits = [i for i, v in enumerate(values) if v != b"END\r\n"]
        assert len(hits) == 1, (key, values)
        assert values[hits[0]] == b"VALUE %s 0 1\r\nB\r\nEND\r\n" % key
        used.add(hits[0])
    assert used == {0, 1, 2}  # the keys did spread, so the check meant something
