"""Memory and latency of large multi-key requests, measured on the proxy process.

RSS is read from ``/proc/PID/status`` of the corenet-proxy process (what an
operator sees), never from object counts.  Every loop is bounded in count
and time; the figures are printed so a run shows how far from the bar it is.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.integration.test_limits import connect, rss_bytes
from tests.servers import encode_command, pool_config, read_until

if TYPE_CHECKING:
    from collections.abc import Callable

MIB = 2**20


def _ends(tail: bytes, size: int = 0) -> Callable[[bytearray], bool]:
    """``read_until``'s test: the data ends with ``tail`` (and has ``size`` bytes)."""
    return lambda data: data.endswith(tail) and len(data) >= size


@pytest.mark.slow
def test_sequential_50000_key_mgets_leave_no_garbage(redis_servers, corenet_proxy_factory):
    # Issue 15, item 2: finished split requests are freed at once, not by the
    # cycle collector: 60 MGETs of 50 000 keys on one connection, RSS growth
    # at most 64 MiB (it reached 745 MiB while fragments and parents formed
    # reference cycles).
    servers = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    request = encode_command("MGET", *[f"key:{i:08d}" for i in range(50_000)])
    sock = connect(proxy.address("alpha"), timeout=60)
    nils = _ends(b"$-1\r\n", len(b"*50000\r\n") + 5 * 50_000)
    sock.sendall(request)
    read_until(sock, nils)  # warm up buffers
    baseline = peak = rss_bytes(proxy.pid)
    for _ in range(60):
        sock.sendall(request)
        assert len(read_until(sock, nils)) == len(b"*50000\r\n") + 5 * 50_000
        peak = max(peak, rss_bytes(proxy.pid))
    sock.close()
    print(f"60 x 50 000-key MGET: proxy RSS growth {(peak - baseline) / MIB:.1f} MiB")
    assert peak - baseline <= 64 * MIB


@pytest.mark.slow
def test_sequential_50000_key_memcache_gets_leave_no_garbage(
    memcached_servers, corenet_proxy_factory
):
    servers = memcached_servers(2)
    config = pool_config("alpha", None, [s.address for s in servers], redis=False)
    proxy = corenet_proxy_factory(config)
    request = b"get " + b" ".join(b"key:%08d" % i for i in range(50_000)) + b"\r\n"
    sock = connect(proxy.address("alpha"), timeout=60)
    sock.sendall(request)
    assert read_until(sock, _ends(b"END\r\n")) == b"END\r\n"
    baseline = peak = rss_bytes(proxy.pid)
    for _ in range(40):
        sock.sendall(request)
        assert read_until(sock, _ends(b"END\r\n")) == b"END\r\n"
        peak = max(peak, rss_bytes(proxy.pid))
    sock.close()
    print(f"40 x 50 000-key memcache get: proxy RSS growth {(peak - baseline) / MIB:.1f} MiB")
    assert peak - baseline <= 64 * MIB


@pytest.mark.slow
def test_a_400000_key_mget_costs_a_small_multiple_of_its_size(redis_servers, corenet_proxy_factory):
    # Issue 15, item 3: the bar is 8x the request's size, and other
    # connections' GETs waiting at most 300 ms (printed, not asserted: a
    # timing).  Measured here: 5.1-5.7x and 100-230 ms (the GET shares a
    # redis-server with a 200 000-key fragment).  Before: 20.6x, then 9.7x
    # and 250-420 ms while each read joined the request again from its first
    # byte, the C encoder held an 80-byte buffer view per argument, the
    # merge made an object of every element and keys were grouped and cut
    # out in Python.
    servers = redis_servers(2)
    keys = [f"key:{i:08d}" for i in range(400_000)]
    for server in servers:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, "v" * 8)
        pipe.execute()
        client.close()
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    request = encode_command("MGET", *keys)
    other = connect(proxy.address("alpha"))
    other.sendall(b"SET other 1\r\n")
    assert other.recv(100) == b"+OK\r\n"
    baseline = rss_bytes(proxy.pid)
    peak = [baseline]
    waits: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes(proxy.pid))
            time.sleep(0.005)

    def get_other() -> None:
        while not stop.is_set():
            started = time.monotonic()
            other.sendall(b"GET other\r\n")
            assert other.recv(100) == b"$1\r\n1\r\n"
            waits.append(time.monotonic() - started)
            time.sleep(0.01)

    threads = [threading.Thread(target=sample), threading.Thread(target=get_other)]
    for thread in threads:
        thread.start()
    try:
        sock = connect(proxy.address("alpha"), timeout=60)
        sock.sendall(request)
        value = b"$8\r\nvvvvvvvv\r\n"
        reply = read_until(sock, _ends(value, len(b"*400000\r\n") + len(value) * len(keys)))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    sock.close()
    other.close()
    growth = peak[0] - baseline
    print(
        f"400 000-key MGET ({len(request) / 1e6:.1f} MB): proxy RSS +{growth / MIB:.1f} MiB "
        f"({growth / len(request):.1f}x), other GETs waited up to {max(waits) * 1000:.0f} ms"
    )
    assert reply.startswith(b"*400000\r\n")
    assert growth <= 8 * len(request)


@pytest.mark.slow
def test_mget_of_five_16_mib_values_is_not_cut_by_the_output_limit(
    redis_servers, corenet_proxy_factory
):
    # Issue 15, item 4 (twemproxy's test_mget_binary_value): an 80 MiB reply
    # to a client that reads it is over client_output_limit (64 MiB) when
    # queued, but only what waits behind the reply being written counts.
    servers = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    client = proxy.client()
    keys = [f"binary:{i}" for i in range(5)]
    for i, key in enumerate(keys):
        client.set(key, bytes([i]) * (16 * MIB))
    client.close()
    sock = connect(proxy.address("alpha"), timeout=60)
    sock.sendall(encode_command("MGET", *keys))
    size = len(b"*5\r\n") + 5 * len(b"$16777216\r\n" + b"x" * 16 * MIB + b"\r\n")
    reply = read_until(sock, lambda data: len(data) >= size)
    sock.close()
    assert len(reply) == size
    assert reply[-3:] == b"\x04\r\n"
    assert proxy.stats()["alpha"]["client_err"] == 0
