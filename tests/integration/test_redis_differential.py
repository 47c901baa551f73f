"""Through a one-backend pool, every reply equals redis-server's own, byte for byte.

Two identical redis-servers: one is talked to directly, the other through
corenet-proxy. Both start from the same data and get the same commands, so
every reply (errors included) must be the same bytes.
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corenet.protocols.redis import COMMANDS, Route
from corenet.protocols.redis._command_info import COMMAND_INFO
from tests.servers import (
    count_resp_replies,
    encode_command,
    pool_config,
    redis_benchmark,
    redis_raw,
)

# Replies that depend on time or chance, not on the data.
NONDETERMINISTIC = {
    b"spop",
    b"srandmember",
    b"zrandmember",
    b"hrandfield",
    b"xadd",
    b"xautoclaim",
    b"xclaim",
}
SEED = [
    ("SET", "s", "10"),
    ("RPUSH", "l", "a", "b", "c"),
    ("HSET", "h", "f", "1", "g", "2"),
    ("SADD", "st", "m"),
    ("ZADD", "z", "1", "m", "2", "n"),
    ("PFADD", "hll", "a", "b"),
    ("GEOADD", "geo", "13.36", "38.11", "palermo", "15.08", "37.50", "catania"),
    ("XADD", "stream", "1-1", "f", "v"),
    ("SETBIT", "bits", "7", "1"),
]
KEYS = ["s", "l", "h", "st", "z", "hll", "geo", "stream", "bits", "missing"]
ARGS = ["0", "1", "-1", "m", "f", "a", "2", "10"]


@pytest.fixture
def twins(redis_servers, corenet_proxy_factory):
    direct, behind = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [behind.address]))

    def reset() -> None:
        for server in (direct, behind):
            server.client().flushall()
            for command in SEED:
                server.raw_command(*command)

    def run(payload: bytes, n: int) -> tuple[bytes, bytes]:
        a = redis_raw(direct.address, payload, expect_replies=n)
        b = redis_raw(proxy.address("alpha"), payload, expect_replies=n)
        return a, b

    reset()
    return reset, run


def invocations(name: bytes) -> list[list[str]]:
    """A key-routed command with each test key and 0 to 4 further arguments."""
    out = [[name.decode(), key, *ARGS[:extra]] for key in KEYS for extra in range(5)]
    out.append([name.decode()])  # no key at all: an arity error on both sides
    return out


def test_every_key_routed_command_matches_redis(twins):
    reset, run = twins
    checked = 0
    for name, cmd in sorted(COMMANDS.items()):
        if cmd.route is not Route.KEY or name in NONDETERMINISTIC:
            continue
        if name not in COMMAND_INFO:
            continue  # newer than the installed redis-server (see test_colocated.py)
        reset()
        commands = invocations(name)
        payload = b"".join(encode_command(*c) for c in commands)
        direct, through = run(payload, len(commands))
        assert count_resp_replies(direct) == len(commands)
        assert through == direct, f"{name!r} differs"
        checked += len(commands)
    assert checked > 5000


@pytest.mark.parametrize(
    "command",
    [
        ["MGET", "s", "l", "missing"],
        ["MSET", "a", "1", "b", "2"],
        ["DEL", "s", "missing", "l"],
        ["EXISTS", "s", "s", "missing"],
        ["UNLINK", "h"],
        ["TOUCH", "st", "z"],
        ["EVAL", "return redis.call('get', KEYS[1])", "1", "s"],
        ["EVAL", "return 1", "2", "s"],
        ["EVALSHA", "0000000000000000000000000000000000000000", "1", "s"],
        ["PING"],
        ["PING", "hello"],
        ["ECHO", "x"],
        ["COMMAND", "COUNT"],
        ["MGET"],
        ["EXISTS"],
        ["GET"],
        ["SELECT", "0"],
    ],
)
def test_other_routes_match_redis(twins, command):
    reset, run = twins
    direct, through = run(encode_command(*command), 1)
    assert through == direct


SEQUENCE_COMMANDS = st.one_of(
    st.tuples(st.just("SET"), st.sampled_from(KEYS), st.text(max_size=8)),
    st.tuples(st.just("GET"), st.sampled_from(KEYS)),
    st.tuples(st.just("INCR"), st.sampled_from(KEYS)),
    st.tuples(st.just("APPEND"), st.sampled_from(KEYS), st.text(max_size=8)),
    st.tuples(st.just("LPUSH"), st.sampled_from(KEYS), st.text(max_size=4)),
    st.tuples(st.just("LRANGE"), st.sampled_from(KEYS), st.just("0"), st.just("-1")),
    st.tuples(st.just("HSET"), st.sampled_from(KEYS), st.text(max_size=3), st.text(max_size=3)),
    st.tuples(st.just("HGETALL"), st.sampled_from(KEYS)),
    st.tuples(st.just("SADD"), st.sampled_from(KEYS), st.text(max_size=3)),
    st.tuples(
        st.just("ZADD"), st.sampled_from(KEYS), st.integers(-5, 5).map(str), st.text(max_size=3)
    ),
    st.tuples(
        st.just("ZRANGE"), st.sampled_from(KEYS), st.just("0"), st.just("-1"), st.just("WITHSCORES")
    ),
    st.tuples(st.just("TYPE"), st.sampled_from(KEYS)),
    st.tuples(st.just("DEL"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
    st.tuples(st.just("EXISTS"), st.sampled_from(KEYS), st.sampled_from(KEYS)),
    st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(lambda ks: ("MGET", *ks)),
    st.tuples(st.just("MSET"), st.sampled_from(KEYS), st.text(max_size=4)),
    st.tuples(
        st.sampled_from(["GETDEL", "STRLEN", "LLEN", "SCARD", "ZCARD", "HLEN"]),
        st.sampled_from(KEYS),
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(SEQUENCE_COMMANDS, min_size=1, max_size=30))
def test_generated_command_sequences_match_redis(twins, commands):
    reset, run = twins
    reset()
    payload = b"".join(encode_command(*c) for c in commands)
    direct, through = run(payload, len(commands))
    assert through == direct


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="needs redis-benchmark")
def test_redis_benchmark_default_suite_through_the_proxy(redis_servers, corenet_proxy_factory):
    backends = redis_servers(4)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [b.address for b in backends]))
    output = redis_benchmark(
        proxy.address("alpha"), "-c", "20", "-n", "2000", "-r", "10000", "-q", timeout=300
    )
    # redis-benchmark prints any error reply it gets; it also warns that CONFIG
    # GET is refused, which is expected through a proxy.
    lines = [line for line in output.splitlines() if "Could not fetch server CONFIG" not in line]
    assert not [line for line in lines if "ERR" in line or "rror" in line], output
    # Every standard test ran (PING, SET, GET, INCR, lists, sets, hashes, zsets, LRANGE_*, MSET).
    finished = {line.split(":")[0] for line in lines if "requests per second" in line}
    for name in (
        "PING_INLINE",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_600 (first 600 elements)",
        "MSET (10 keys)",
    ):
        assert name in finished, output
