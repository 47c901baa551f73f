"""Transactions and blocking commands through a 2-server pool, against real
redis-servers, compared with what one redis-server answers directly."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corenet.testing.process import connect
from tests.servers import (
    END_REPLY,
    END_REQUEST,
    called_later,
    exchange,
    metrics_page,
    read_until,
    spread_keys,
)

if TYPE_CHECKING:
    from tests.integration.conftest import Pair
    from tests.servers import CorenetProxy, RedisServer

# A hash tag: the keys of one transaction live together.
TAG = "{t}"


def _apart(proxy: CorenetProxy, servers: list[RedisServer]) -> tuple[str, str]:
    """Two keys the pool places on different servers."""
    with proxy.client() as client:
        # Well-mixed names: fnv1a_64 keeps names differing in the last byte close on the ring.
        for key in spread_keys(200, "probe"):
            client.set(key, 1)
    holders = [set(s.client().keys("probe:*")) for s in servers[:2]]
    assert all(holders), holders
    a = next(iter(holders[0])).decode()
    b = next(iter(holders[1])).decode()
    return a, b


SCRIPT = (
    b"MULTI\r\nSET {t}a 1\r\nINCR {t}a\r\nPING\r\nGET {t}a\r\nEXEC\r\n"
    b"EXEC\r\nDISCARD\r\nUNWATCH\r\n"
    b"MULTI\r\nMULTI\r\nWATCH {t}a\r\nSET {t}b 2\r\nEXEC\r\n"
    b"MULTI\r\nFOO\r\nSET {t}a 9\r\nEXEC\r\nGET {t}a\r\n"
    b"MULTI\r\nGET\r\nEXEC\r\n"
    b"MULTI\r\nSET {t}c 3\r\nDISCARD\r\nGET {t}c\r\n"
    b"WATCH {t}a\r\nMULTI\r\nINCR {t}a\r\nEXEC\r\n"
    b"WATCH {t}a\r\nUNWATCH\r\nMULTI\r\nEXEC\r\n"
    b"SET {t}r 1\r\nMULTI\r\nRENAME {t}r {t}s\r\nSINTERSTORE {t}d {t}x {t}y\r\nGET {t}s\r\nEXEC\r\n"
    b"PING\r\n"
)


def test_transaction_replies_are_redis_own(pair: Pair) -> None:
    proxy, servers = pair
    direct = exchange(servers[2].address, SCRIPT)
    through = exchange(proxy.address(), SCRIPT)
    assert b"EXECABORT" in direct and b"*4\r\n" in direct  # the script did what it says
    assert through == direct


def test_redis_py_transaction_pipeline_and_watch_retries(pair: Pair) -> None:
    proxy = pair.proxy
    with proxy.client() as client:
        pipe = client.pipeline(transaction=True)
        pipe.set(f"{TAG}x", 1).incrby(f"{TAG}x", 41).get(f"{TAG}x").mget(f"{TAG}x", f"{TAG}y")
        assert pipe.execute() == [True, 42, b"42", [b"42", None]]
        client.set(f"{TAG}counter", 0)

    def bump(times: int) -> None:
        with proxy.client() as own:
            for _ in range(times):
                for _attempt in range(200):  # bounded retries under contention
                    with own.pipeline() as pipe:
                        try:
                            pipe.watch(f"{TAG}counter")
                            value = int(pipe.get(f"{TAG}counter"))
                            pipe.multi()
                            pipe.set(f"{TAG}counter", value + 1)
                            pipe.execute()
                            break
                        except redis.WatchError:
                            continue
                else:
                    raise AssertionError("no WATCH attempt succeeded in 200 tries")

    workers = [threading.Thread(target=bump, args=(50,)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    with proxy.client() as client:
        assert client.get(f"{TAG}counter") == b"200"


def test_cross_server_keys_abort_the_transaction(pair: Pair) -> None:
    proxy, servers = pair
    a, b = _apart(proxy, servers)
    payload = f"MULTI\r\nSET {a} new\r\nSET {b} new\r\nEXEC\r\nGET {a}\r\nGET {b}\r\n".encode()
    reply = exchange(proxy.address(), payload)
    assert reply == (
        b"+OK\r\n+QUEUED\r\n-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n$1\r\n1\r\n$1\r\n1\r\n"
    )
    with proxy.client() as client:
        with pytest.raises(redis.ResponseError, match="hash to the same slot"):
            client.blpop([a, b], timeout=1)
        with client.pipeline() as pipe, pytest.raises(redis.ResponseError, match="same slot"):
            pipe.watch(a, b)


def test_blpop_waits_for_a_producer_beyond_the_pool_timeout(pair: Pair) -> None:
    proxy = pair.proxy
    with proxy.client() as consumer, proxy.client() as producer:
        started = time.monotonic()
        assert consumer.blpop("q:empty", timeout=1) is None  # 1 s > the pool's 400 ms
        assert time.monotonic() - started >= 0.9
        with called_later(0.6, producer.rpush, "q:late", "job"):
            assert consumer.blpop("q:late", timeout=5) == (b"q:late", b"job")
        producer.rpush("q:late", "a", "b")
        assert consumer.blmove("q:late", "q:late", 1, "LEFT", "RIGHT") == b"a"


def test_a_client_that_leaves_while_blocked_takes_nothing(pair: Pair) -> None:
    proxy = pair.proxy
    with connect(proxy.address(), 5) as sock:
        sock.sendall(b"BLPOP q:left 0\r\n")
        time.sleep(0.3)  # blocked at the server by now
    time.sleep(0.3)
    with proxy.client() as client:
        client.rpush("q:left", "kept")
        time.sleep(0.3)  # a blocked connection left behind would pop it now
        assert client.lrange("q:left", 0, -1) == [b"kept"]


def test_xreadgroup_block_gets_the_entry(pair: Pair) -> None:
    proxy = pair.proxy
    with proxy.client() as client, proxy.client() as writer:
        client.xgroup_create("s:jobs", "workers", id="$", mkstream=True)
        with called_later(0.3, writer.xadd, "s:jobs", {"n": "1"}):
            got = client.xreadgroup("workers", "w1", {"s:jobs": ">"}, count=1, block=3000)
        assert got and got[0][0] == b"s:jobs" and got[0][1][0][1] == {b"n": b"1"}


def test_queue_workers_lose_and_duplicate_nothing(pair: Pair) -> None:
    proxy = pair.proxy
    jobs, producers, consumers = 20_000, 10, 5
    seen: list[list[bytes]] = [[] for _ in range(consumers)]
    done = threading.Event()

    def produce(index: int) -> None:
        with proxy.client() as client:
            batch = [f"job:{index}:{n}" for n in range(jobs // producers)]
            for start in range(0, len(batch), 200):
                client.lpush("q:work", *batch[start : start + 200])

    def consume(index: int) -> None:
        with proxy.client() as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                got = client.brpop("q:work", timeout=1)
                if got is None:
                    if done.is_set():
                        return
                    continue
                seen[index].append(got[1])

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(consumers)]
    threads += [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    for t in threads:
        t.start()
    for t in threads[consumers:]:
        t.join(120)
    done.set()
    for t in threads[:consumers]:
        t.join(130)
    everything = [job for part in seen for job in part]
    assert len(everything) == jobs
    assert len(set(everything)) == jobs
    assert all(seen), [len(part) for part in seen]


def test_pinned_connections_are_bounded(pair: Pair) -> None:
    proxy = pair.proxy
    blocked = [connect(proxy.address(), 5) for _ in range(8)]
    try:
        for sock in blocked:
            sock.sendall(b"BLPOP q:never 0\r\n")
        time.sleep(0.3)
        reply = exchange(proxy.address(), b"BLPOP q:never 1\r\nPING\r\n")
        assert reply == b"-ERR max number of pinned connections reached\r\n+PONG\r\n"
        page = metrics_page(proxy.metrics_port)  # type: ignore[attr-defined]
        assert 'corenet_pool_pinned_connections{pool="alpha"} 8.0' in page
    finally:
        for sock in blocked:
            sock.close()
    time.sleep(0.3)
    with proxy.client() as client:  # the leavers gave their connections back
        assert client.blpop("q:never", timeout=0.2) is None


OPS = st.sampled_from(
    [
        b"MULTI",
        b"EXEC",
        b"DISCARD",
        b"WATCH {t}a",
        b"UNWATCH",
        b"SET {t}a 1",
        b"INCR {t}a",
        b"GET {t}a",
        b"DEL {t}a {t}b",
        b"MGET {t}a {t}b",
        b"PING",
        b"FOO",
        b"GET",
    ]
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(OPS, min_size=1, max_size=20))
def test_random_transaction_sequences_answer_as_redis(pair: Pair, ops: list[bytes]) -> None:
    proxy, servers = pair
    payload = b"".join(op + b"\r\n" for op in [*ops, b"DISCARD", b"UNWATCH", b"DEL {t}a {t}b"])
    direct = exchange(servers[2].address, payload)
    through = exchange(proxy.address(), payload)
    assert through == direct


def _for_client(ops: list[bytes], tag: bytes) -> list[bytes]:
    """``ops`` on the client's own keys, closed so that it ends outside MULTI."""
    return [op.replace(b"{t}", tag) + b"\r\n" for op in [*ops, b"DISCARD", b"UNWATCH"]]


_CLEAN = b"DEL {c1}a {c1}b {c2}a {c2}b\r\n"


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(OPS, min_size=1, max_size=12),
    st.lists(OPS, min_size=1, max_size=12),
    st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_interleaved_clients_each_get_their_own_replies_in_order(
    pair: Pair, first: list[bytes], second: list[bytes], turns: list[bool]
) -> None:
    # Two clients on their own keys send request by request, interleaved as
    # `turns` says: each must get exactly what one redis-server gives it alone.
    proxy, servers = pair
    scripts = [_for_client(first, b"{c1}"), _for_client(second, b"{c2}")]
    expected = []
    for script in scripts:
        expected.append(exchange(servers[2].address, b"".join(script)))
        exchange(servers[2].address, _CLEAN)
    got = []
    with connect(proxy.address(), 5) as one, connect(proxy.address(), 5) as two:
        socks = [one, two]
        pending = [list(script) for script in scripts]
        for turn in [*turns, *([False] * len(pending[0])), *([True] * len(pending[1]))]:
            if pending[int(turn)]:
                socks[int(turn)].sendall(pending[int(turn)].pop(0))
        for sock in socks:
            sock.sendall(END_REQUEST)
            data = read_until(sock, lambda d: d.endswith(END_REPLY), quiet=3)
            assert data.endswith(END_REPLY), data[-200:]
            got.append(data[: -len(END_REPLY)])
    exchange(proxy.address(), _CLEAN)
    assert got == expected
