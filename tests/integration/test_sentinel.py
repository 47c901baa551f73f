"""Following Redis Sentinel failovers, against real redis-servers and sentinels.

Two masters with a replica each and three sentinels on loopback; a ketama
pool over the two master names.  A redis-py client writes and reads
distinct keys through the proxy while one master is failed over by
``SENTINEL FAILOVER`` and the other is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
import redis as redis_py

from tests.conftest import need_binary
from tests.servers import (
    RedisSentinel,
    RedisServer,
    Writer,
    assert_nutcracker_finds,
    free_port,
    metrics_page,
    poll_until,
    pool_config,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.servers import CorenetProxy, Nutcracker

LOOPBACK = "127.0.0.1"


class Shard:
    """A master and its replica."""

    def __init__(self) -> None:
        self.master = RedisServer()
        self.replica = RedisServer(extra_args=["--replicaof", LOOPBACK, str(self.master.port)])

    def stop(self) -> None:
        for server in (self.replica, self.master):
            server.stop()


@pytest.fixture
def sentinel_setup(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[list[Shard], list[RedisSentinel]]]:
    need_binary(request.config, "redis-server")
    shards: list[Shard] = []
    sentinels: list[RedisSentinel] = []
    try:
        shards = [Shard(), Shard()]
        masters = {"m1": shards[0].master.address, "m2": shards[1].master.address}
        sentinels = [RedisSentinel(masters) for _ in range(3)]
        # Every sentinel has seen both replicas and its peers before a failover.
        for sentinel in sentinels:
            poll_until(
                lambda s=sentinel: all(_sentinel_knows(s, name) for name in ("m1", "m2")),
                "sentinels to discover replicas and each other",
                timeout=20,
            )
        yield shards, sentinels
    finally:
        for process in [*sentinels, *shards]:
            process.stop()


def _sentinel_knows(sentinel: RedisSentinel, name: str) -> bool:
    client = redis_py.Redis(host=LOOPBACK, port=sentinel.port, decode_responses=True)
    try:
        master = client.sentinel_master(name)
        return int(master["num-slaves"]) >= 1 and int(master["num-other-sentinels"]) >= 2
    finally:
        client.close()


def _sentinel_pool(
    shards: list[Shard], sentinels: list[RedisSentinel], **keys: Any
) -> dict[str, Any]:
    return pool_config(
        "ha",
        None,
        [f"{shards[0].master.address}:1 m1", f"{shards[1].master.address}:1 m2"],
        sentinels=[f"{s.address}:1" for s in sentinels],
        timeout=1000,
        **keys,
    )


def _server_stats(proxy: CorenetProxy, name: str) -> dict[str, Any]:
    return proxy.stats()["ha"][name]


def test_failovers_are_followed_with_placement_by_name_unchanged(
    sentinel_setup: tuple[list[Shard], list[RedisSentinel]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    nutcracker_factory: Callable[..., Nutcracker],
) -> None:
    shards, sentinels = sentinel_setup
    config = _sentinel_pool(shards, sentinels)
    metrics_port = free_port()
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    assert _server_stats(proxy, "m1")["address"] == shards[0].master.address
    writer = Writer(proxy.address())
    try:
        poll_until(lambda: writer.done > 50, "traffic before the failovers", timeout=20)

        # A manual failover: m1's replica becomes its master.
        client = redis_py.Redis(host=LOOPBACK, port=sentinels[0].port)
        try:
            client.execute_command("SENTINEL", "FAILOVER", "m1")
        finally:
            client.close()
        started = time.monotonic()
        _, took = poll_until(
            lambda: _server_stats(proxy, "m1")["address"] == shards[0].replica.address,
            "the proxy to follow SENTINEL FAILOVER",
            timeout=5 + 2,
        )
        assert _server_stats(proxy, "m1")["sentinel_switches"] == 1
        print(f"manual failover followed {took * 1000:.0f} ms after SENTINEL FAILOVER")
        seen = writer.done
        poll_until(lambda: writer.done > seen + 50, "traffic after the manual failover", timeout=20)
        manual_errors = [e for e in writer.errors if e[0] >= started]

        # The sentinel the proxy follows goes away: it moves on to the next.
        sentinels[0].stop()
        # A crash: m2's master is killed; the two sentinels left elect its replica.
        killed = time.monotonic()
        assert shards[1].master.pid is not None
        os.kill(shards[1].master.pid, signal.SIGKILL)
        _, took = poll_until(
            lambda: _server_stats(proxy, "m2")["address"] == shards[1].replica.address,
            "the proxy to follow the failover of a killed master",
            timeout=1 + 5 + 2,
        )
        print(f"kill -9 failover followed {took * 1000:.0f} ms after the kill")
        seen = writer.done
        poll_until(lambda: writer.done > seen + 50, "traffic after the crash failover", timeout=20)
        crash_errors = [e for e in writer.errors if e[0] >= killed]
    finally:
        writer.stop()
    assert not writer.wrong, writer.wrong[:3]
    # Errors only while a master was unreachable, and protocol-correct.
    window = (crash_errors[-1][0] - crash_errors[0][0]) * 1000 if crash_errors else 0.0
    print(
        f"client errors: manual failover {len(manual_errors)}, "
        f"kill -9 {len(crash_errors)} over {window:.0f} ms"
    )
    assert len(manual_errors) <= 50 and window <= 8000
    assert all(
        "Connection" in text or "timed out" in text or "READONLY" in text
        for _, text in writer.errors
    ), writer.errors[:3]

    metrics = metrics_page(metrics_port)
    assert 'corenet_server_sentinel_switches_total{pool="ha",server="m1"} 1.0' in metrics
    assert f'address="{shards[1].replica.address}"' in metrics

    # --explain asks the sentinels where the key's master is now.
    explained = subprocess.run(
        [sys.executable, "-m", "corenet", "-c", proxy.config_path, "--explain", "ha", "k1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert explained.returncode == 0, explained.stderr
    now_line = next(line for line in explained.stdout.splitlines() if line.startswith("master now"))
    assert any(shard.replica.address in now_line for shard in shards), explained.stdout

    # Placement is by name: nutcracker on the same names at the new
    # addresses finds every key written after the failovers.
    moved = pool_config(
        "ha",
        free_port(),
        [f"{shards[0].replica.address}:1 m1", f"{shards[1].replica.address}:1 m2"],
    )
    keys = [b"after:%d" % i for i in range(200)]
    assert_nutcracker_finds(proxy.address(), moved, nutcracker_factory, keys)


def test_no_sentinel_at_start_serves_the_configured_addresses(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    (server,) = redis_servers(1)
    config = pool_config(
        "ha", None, [f"{server.address}:1 m1"], sentinels=[f"{LOOPBACK}:{free_port()}"]
    )
    proxy = corenet_proxy_factory(config)
    client = proxy.client()
    try:
        assert client.set(b"k", b"v") is True
    finally:
        client.close()
    assert "no sentinel answered" in proxy.log_text()


def test_test_conf_accepts_the_twemproxy_sentinels_example(tmp_path: Any) -> None:
    conf = tmp_path / "nutcracker.yml"
    conf.write_text(
        "sigma:\n"
        "  listen: 127.0.0.1:22125\n"
        "  hash: fnv1a_64\n"
        "  distribution: ketama\n"
        "  redis: true\n"
        "  sentinels:\n"
        "   - 127.0.0.1:26379:1\n"
        "   - 127.0.0.1:26380:1\n"
        "  servers:\n"
        "   - 127.0.0.1:6379:1 server1\n"
        "   - 127.0.0.1:6380:1 server2\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "corenet", "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def _dbsize(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.dbsize())


def _calls(server: RedisServer, command: str) -> int:
    client = redis_py.Redis(host=LOOPBACK, port=server.port, driver_info=None)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def test_read_from_replica_sends_reads_to_replicas_and_keeps_order(
    sentinel_setup: tuple[list[Shard], list[RedisSentinel]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    shards, sentinels = sentinel_setup
    proxy = corenet_proxy_factory(_sentinel_pool(shards, sentinels, read_from="replica"))
    poll_until(
        lambda: all(_server_stats(proxy, n)["replicas"] for n in ("m1", "m2")),
        "the proxy to learn the replicas",
        timeout=10,
    )
    assert _server_stats(proxy, "m1")["replicas"] == shards[0].replica.address
    before = [(_calls(s.master, "get"), _calls(s.replica, "get")) for s in shards]
    client = proxy.client()
    try:
        keys = [f"user:{i * 7919}".encode() for i in range(100)]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, key)
        pipe.execute()
        # Replication is asynchronous: wait until the replicas have the keys.
        for shard in shards:
            poll_until(lambda s=shard: _dbsize(s.replica) == _dbsize(s.master), "replication", 10)
        # One pipeline mixing writes and replica reads: replies in order.
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.get(key)
            pipe.incr(b"counter:" + key)
            pipe.strlen(key)
        replies = pipe.execute()
    finally:
        client.close()
    for i, key in enumerate(keys):
        assert replies[3 * i : 3 * i + 3] == [key, 1, len(key)]
    for shard, (master_gets, replica_gets) in zip(shards, before, strict=True):
        assert _calls(shard.master, "get") == master_gets  # no read reached a master
        assert _calls(shard.replica, "get") > replica_gets
        assert _calls(shard.master, "set") > 0  # writes did
