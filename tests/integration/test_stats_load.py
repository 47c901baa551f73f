"""The stats port under load: readers get a prepared snapshot and never stall
data traffic (issue 15, item 12)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from corenet.testing.process import raw_exchange
from tests.servers import pool_config


def _one_pool_of_100_servers(address: str) -> dict[str, object]:
    # One live redis-server under 100 names: every snapshot lists 100 servers.
    servers = [f"{address}:1 server{i:03d}" for i in range(100)]
    return pool_config("alpha", None, servers)


def _get_waits(address: str, stop: threading.Event, limit: float) -> list[float]:
    host, port = address.rsplit(":", 1)
    waits = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            sock.sendall(b"GET k\r\n")
            assert sock.recv(100) == b"$1\r\nv\r\n"
            waits.append(time.monotonic() - started)
            time.sleep(0.005)
    return waits


@pytest.mark.slow
@pytest.mark.parametrize("interval", ["30000", "1000"])
def test_500_stats_reads_leave_data_gets_fast(interval, redis_server, corenet_proxy_factory):
    redis_server.client().set("k", "v")
    proxy = corenet_proxy_factory(
        _one_pool_of_100_servers(redis_server.address), extra_args=["-i", interval]
    )
    stop = threading.Event()
    waits: list[float] = []
    getter = threading.Thread(
        target=lambda: waits.extend(_get_waits(proxy.address("alpha"), stop, 120))
    )
    getter.start()
    started = time.monotonic()
    try:
        for _ in range(500):
            raw_exchange(proxy.stats_address, b"", timeout=10)
    finally:
        stop.set()
        getter.join(timeout=20)
    took = time.monotonic() - started
    worst = max(waits)
    print(
        f"-i {interval}: 500 stats reads of a 100-server pool in {took:.1f} s; "
        f"{len(waits)} data GETs meanwhile, the slowest {worst * 1000:.1f} ms"
    )
    # With -i 0 (a snapshot per reader, as before) the slowest GET here took
    # 110 ms; prepared once per interval, under 10 ms.
    assert waits
    assert worst <= 0.1


def test_readers_within_the_interval_get_the_same_snapshot(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [redis_server.address]), extra_args=["-i", "30000"]
    )
    first = raw_exchange(proxy.stats_address, b"", timeout=10)
    proxy.client().ping()  # a new client: live figures would change
    assert raw_exchange(proxy.stats_address, b"", timeout=10) == first
