"""A Redis Cluster behind the proxy, against a real six-node cluster on loopback.

Three masters with a replica each, made by ``redis-cli --cluster create``;
plain clients (redis-py ``Redis``, ``redis-cli`` without ``-c``) talk to the
proxy as to one Redis while the cluster reshards and fails over.  The
cluster is shared by the module; tests that change its topology come last
and leave it serving every slot.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import hiredis
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from corenet.errors import ConfigError
from corenet.net import ListenAddress
from corenet.proxy.cluster import SLOTS, SlotRange, key_slot, parse_slots
from corenet.proxy.config import parse_config
from tests.conftest import need_binary
from tests.servers import (
    RedisCluster,
    RedisServer,
    Writer,
    dump_config,
    encode_command,
    free_port,
    poll_until,
    pool_config,
    read_until,
    redis_benchmark,
    redis_raw,
    run_corenet,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.servers import CorenetProxy

POOL = "cl"


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[RedisCluster]:
    need_binary(request.config, "redis-server")
    need_binary(request.config, "redis-cli")
    made = RedisCluster(masters=3, replicas=1)
    try:
        yield made
    finally:
        made.stop()


def _config(cluster: RedisCluster, **keys: Any) -> dict[str, Any]:
    seeds = [f"{node.address}:1" for node in cluster.nodes[:2]]
    return pool_config(
        POOL, None, seeds, redis_cluster=True, hash=None, distribution=None, timeout=3000, **keys
    )


@pytest.fixture
def proxy(
    cluster: RedisCluster, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> CorenetProxy:
    made = corenet_proxy_factory(_config(cluster))
    poll_until(lambda: _pool_stats(made)["cluster_refreshes"] >= 1, "the first slot map")
    return made


def _pool_stats(proxy: CorenetProxy) -> dict[str, Any]:
    stats: dict[str, Any] = proxy.stats()[POOL]
    return stats


def _flush(cluster: RedisCluster) -> None:
    for _, address in cluster.masters():
        cluster.node_at(address).raw_command("FLUSHALL")


def _owner(cluster: RedisCluster, key: bytes) -> RedisServer:
    """The master that serves ``key``'s slot, as the cluster says."""
    slot = key_slot(key)
    reply = hiredis.Reader()
    reply.feed(cluster.nodes[0].raw_command("CLUSTER", "SLOTS"))
    for first, last, master, *_ in reply.gets():
        if first <= slot <= last:
            return cluster.node_at(f"{master[0].decode()}:{master[1]}")
    raise AssertionError(f"slot {slot} has no master")


# -- routing ------------------------------------------------------------------


def test_key_slot_is_the_clusters(cluster: RedisCluster) -> None:
    node = cluster.nodes[0]
    keys = [
        b"",
        b"a",
        b"{user1000}.following",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"{}x",
        b"\xff\x00",
    ]
    keys += [os.urandom(random.Random(n).randrange(1, 40)) for n in range(200)]
    payload = b"".join(encode_command("CLUSTER", "KEYSLOT", key) for key in keys)
    replies = redis_raw(node.address, payload, expect_replies=len(keys), timeout=10)
    expected = [int(line[1:]) for line in replies.split(b"\r\n") if line.startswith(b":")]
    assert [key_slot(key) for key in keys] == expected


_nodes = st.builds(
    lambda port, host: [host, port, os.urandom(20).hex().encode()],
    st.integers(1, 65535),
    st.sampled_from([b"127.0.0.1", b"::1", b"node-3.example", b""]),
)


def _resp(value: Any) -> bytes:
    if isinstance(value, list):
        return b"*%d\r\n" % len(value) + b"".join(map(_resp, value))
    if isinstance(value, int):
        return b":%d\r\n" % value
    return b"$%d\r\n%s\r\n" % (len(value), value)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, SLOTS - 1), st.integers(0, 500), st.lists(_nodes, min_size=1, max_size=4)
        ),
        max_size=8,
    )
)
def test_parse_slots_reads_what_cluster_slots_says(
    spans: list[tuple[int, int, list[list[Any]]]],
) -> None:
    entries = [[first, min(first + width, SLOTS - 1), *nodes] for first, width, nodes in spans]
    reader = hiredis.Reader()
    reader.feed(_resp(entries))
    parsed = parse_slots(reader.gets(), "10.0.0.9")

    def address(node: list[Any]) -> ListenAddress:
        return ListenAddress(host=node[0].decode() or "10.0.0.9", port=node[1])

    assert parsed == [
        SlotRange(e[0], e[1], address(e[2]), tuple(address(n) for n in e[3:])) for e in entries
    ]


@pytest.mark.parametrize(
    "reply",
    [
        b"+OK\r\n",
        b"*1\r\n*2\r\n:0\r\n:5\r\n",
        b"*1\r\n*3\r\n:9\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        b"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
        b"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",
    ],
)
def test_parse_slots_refuses_what_is_not_a_map(reply: bytes) -> None:
    reader = hiredis.Reader()
    reader.feed(reply)
    assert parse_slots(reader.gets(), "h") is None


def test_plain_clients_work_and_keys_land_on_their_slots_master(
    cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    _flush(cluster)
    with proxy.client() as client:
        for i in range(300):
            assert client.set(f"plain:{i}", f"v{i}") is True
        assert [client.get(f"plain:{i}") for i in range(300)] == [b"v%d" % i for i in range(300)]
    for i in range(0, 300, 7):
        key = b"plain:%d" % i
        assert _owner(cluster, key).raw_command("GET", key) == b"$%d\r\nv%d\r\n" % (
            len(b"v%d" % i),
            i,
        )
    # redis-cli without -c, which would print a MOVED error from a cluster node.
    host, port = proxy.address().rsplit(":", 1)
    out = subprocess.run(
        ["redis-cli", "-h", host, "-p", port, "GET", "plain:42"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert out.strip() == "v42"
    stats = _pool_stats(proxy)
    masters = {address for _, address in cluster.masters()}
    assert {name for name, value in stats.items() if isinstance(value, dict)} == masters
    assert sum(value["slots"] for value in stats.values() if isinstance(value, dict)) == SLOTS


def _same_replies(
    proxy: CorenetProxy, direct: RedisServer, commands: list[tuple[Any, ...]]
) -> None:
    payload = b"".join(encode_command(*command) for command in commands)
    through = redis_raw(proxy.address(), payload, expect_replies=len(commands), timeout=10)
    alone = redis_raw(direct.address, payload, expect_replies=len(commands), timeout=10)
    assert through == alone


def test_multi_key_commands_answer_as_one_redis(
    cluster: RedisCluster, proxy: CorenetProxy, redis_server: RedisServer
) -> None:
    _flush(cluster)
    rng = random.Random(21)
    keys = [f"mk:{i}" for i in range(60)]
    commands: list[tuple[Any, ...]] = []
    for _ in range(40):
        chosen = rng.sample(keys, rng.randrange(1, 12))
        kind = rng.choice(["MSET", "MGET", "DEL", "EXISTS", "UNLINK", "TOUCH"])
        if kind == "MSET":
            commands.append(("MSET", *[x for k in chosen for x in (k, f"{k}={rng.random()}")]))
        else:
            commands.append((kind, *chosen))
    commands.append(("MGET", *keys))
    commands += [("DBSIZE",), ("MSET", "{t}a", "1", "{t}b", "2"), ("RENAME", "{t}a", "{t}c")]
    commands += [("MGET", "{t}a", "{t}b", "{t}c"), ("SUNIONSTORE", "{t}s", "{t}b", "{t}c")]
    _same_replies(proxy, redis_server, commands)
    # Keys of different slots cannot go together in a cluster: CROSSSLOT, as the cluster says.
    reply = redis_raw(proxy.address(), encode_command("RENAME", "mk:1", "mk:2"), expect_replies=1)
    assert reply == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    assert _pool_stats(proxy)["fragments"] > 40


def test_whole_keyspace_commands_merge_over_the_masters(
    cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    _flush(cluster)
    with proxy.client() as client:
        client.mset({f"ks:{i}": i for i in range(500)})
        assert client.dbsize() == 500
        assert sorted(client.keys("ks:*")) == sorted(b"ks:%d" % i for i in range(500))
        assert sorted(client.scan_iter("ks:*", count=50)) == sorted(
            b"ks:%d" % i for i in range(500)
        )
        sha = client.script_load("return redis.call('GET', KEYS[1])")
        assert [client.evalsha(sha, 1, f"ks:{i}") for i in (3, 77, 401)] == [b"3", b"77", b"401"]


def test_redis_benchmark_through_the_proxy_gets_no_error(
    request: pytest.FixtureRequest, cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    need_binary(request.config, "redis-benchmark")
    _flush(cluster)
    # -e prints every error reply; -r spreads the keys over every slot's master.
    out = redis_benchmark(
        proxy.address(),
        "-t",
        "set,get,mset,lpush",
        "-n",
        "4000",
        "-P",
        "16",
        "-r",
        "100000",
        "-e",
        "-q",
        timeout=120,
    )
    assert "ERR" not in out and "MOVED" not in out and "ASK" not in out, out
    keys = [int(cluster.node_at(a).raw_command("DBSIZE")[1:]) for _, a in cluster.masters()]
    assert all(keys), keys  # every master got its share
    assert _pool_stats(proxy)["forward_error"] == 0


def test_select_transactions_and_pubsub(cluster: RedisCluster, proxy: CorenetProxy) -> None:
    _flush(cluster)
    reply = redis_raw(
        proxy.address(),
        encode_command("SELECT", "0") + encode_command("SELECT", "1"),
        expect_replies=2,
    )
    assert reply == b"+OK\r\n-ERR SELECT is not allowed in cluster mode\r\n"
    with proxy.client() as client:
        pipe = client.pipeline(transaction=True)
        pipe.set("{acct}:a", 10).incrby("{acct}:a", 5).get("{acct}:a")
        assert pipe.execute() == [True, 15, b"15"]
        sub = client.pubsub()
        sub.subscribe("news", "sport")
        for _ in range(2):
            assert sub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        with proxy.client() as publisher:
            for i in range(20):
                publisher.publish("news" if i % 2 else "sport", f"m{i}")
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 20 and time.monotonic() < deadline:
            message = sub.get_message(timeout=1)
            if message is not None and message["type"] == "message":
                got.append((message["channel"], message["data"]))
        # Each message once, and in order per channel (the cluster's bus
        # orders one node's messages, not two nodes').
        for channel, parity in ((b"news", 1), (b"sport", 0)):
            sent = [b"m%d" % i for i in range(20) if i % 2 == parity]
            assert [data for name, data in got if name == channel] == sent
        assert sub.get_message(timeout=0.3) is None
        sub.close()


def test_config_keys_that_do_not_apply_are_refused(cluster: RedisCluster) -> None:
    good = (
        "cl:\n  listen: 127.0.0.1:22121\n  redis: true\n  redis_cluster: true\n"
        "  servers:\n   - 127.0.0.1:7000:1\n"
    )
    assert parse_config(good)["cl"].redis_cluster
    for extra, words in [
        ("  hash: murmur\n", 'directive "hash" does not apply to a Redis Cluster pool'),
        ("  distribution: modula\n", 'directive "distribution" does not apply'),
        ('  hash_tag: "::"\n', 'a Redis Cluster hashes the part of a key in "{}"'),
        ("  redis_db: 2\n", "a Redis Cluster has database 0 only"),
        ("  sentinels: [127.0.0.1:26379]\n", 'directive "sentinels" does not apply'),
    ]:
        with pytest.raises(ConfigError, match=words):
            parse_config(good + extra)
    with pytest.raises(ConfigError, match="needs redis: true"):
        parse_config(good.replace("redis: true", "redis: false"))
    assert (
        parse_config(good + '  hash_tag: "{}"\n  read_from: replica\n')["cl"].read_from == "replica"
    )


def test_explain_names_the_slot_and_its_master(cluster: RedisCluster, tmp_path: Any) -> None:
    path = tmp_path / "cl.yml"
    path.write_text(yaml.safe_dump(_config(cluster)))
    out = run_corenet("-c", path, "--explain", POOL, "user:{42}:name")
    assert out.returncode == 0, out.stderr
    slot = key_slot(b"user:{42}:name")
    assert f"crc16(b'42') mod 16384 = {slot}" in out.stdout
    assert f"node:          {_owner(cluster, b'user:{42}:name').address}" in out.stdout


def test_read_from_replica_reads_on_replicas(
    cluster: RedisCluster, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    _flush(cluster)
    proxy = corenet_proxy_factory(_config(cluster, read_from="replica"))

    def replicas_known() -> bool:
        servers = [v for v in _pool_stats(proxy).values() if isinstance(v, dict)]
        return len(servers) == 3 and all(v["replicas"] for v in servers)

    poll_until(replicas_known, "the map to list the replicas", timeout=20)
    replicas = [cluster.replicas_of(node_id)[0] for node_id, _ in cluster.masters()]
    for replica in replicas:
        replica.raw_command("CONFIG", "RESETSTAT")
    with proxy.client() as client:
        client.mset({f"rr:{i}": i for i in range(100)})
        poll_until(  # replication is asynchronous
            lambda: sum(r.keys_count() for r in replicas) == 100, "the replicas to have the keys"
        )
        assert [client.get(f"rr:{i}") for i in range(100)] == [b"%d" % i for i in range(100)]
    reads = 0
    for replica in replicas:
        stats = replica.raw_command("INFO", "commandstats").decode()
        reads += sum(
            int(line.split("calls=")[1].split(",")[0])
            for line in stats.splitlines()
            if line.startswith("cmdstat_get:")
        )
    assert reads == 100  # every GET was answered by a replica


def _node_id(node: RedisServer) -> str:
    return node.raw_command("CLUSTER", "MYID").split(b"\r\n")[1].decode()


def test_ask_during_a_slot_migration_is_followed(
    cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    """One slot half migrated by hand: the moved key is answered ASK by its
    old master, and the proxy asks the importing node (ASKING) for it."""
    _flush(cluster)
    moved, stays = b"{ask}:moved", b"{ask}:stays"
    slot = key_slot(moved)
    source = _owner(cluster, moved)
    target = next(cluster.node_at(a) for _, a in cluster.masters() if a != source.address)
    with proxy.client() as client:
        client.mset({moved: b"m", stays: b"s"})
        host, port = target.address.rsplit(":", 1)
        ok = b"+OK\r\n"
        assert target.raw_command("CLUSTER", "SETSLOT", slot, "IMPORTING", _node_id(source)) == ok
        assert source.raw_command("CLUSTER", "SETSLOT", slot, "MIGRATING", _node_id(target)) == ok
        assert source.raw_command("MIGRATE", host, port, moved, 0, 5000) == ok
        try:
            assert client.get(moved) == b"m"  # on the importing node now: ASK
            assert client.get(stays) == b"s"  # still on the old master
            # The migration ends: the slot is the importing node's, and the
            # old master answers MOVED for the key still there.
            assert source.raw_command("MIGRATE", host, port, stays, 0, 5000) == ok
        finally:
            for node in (target, source):
                node.raw_command("CLUSTER", "SETSLOT", slot, "NODE", _node_id(target))
        assert client.mget([moved, stays]) == [b"m", b"s"]
    stats = _pool_stats(proxy)
    assert stats["cluster_ask"] >= 1
    assert stats["cluster_moved"] >= 1
    assert target.raw_command("DBSIZE") == b":2\r\n"


def test_reload_keeps_the_map_and_the_clients(
    cluster: RedisCluster, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    """New seeds and keys by ``POST /-/reload``: the client stays connected,
    the nodes and the map stay, and the map is read again."""
    _flush(cluster)
    metrics = free_port()
    proxy = corenet_proxy_factory(_config(cluster), ["--metrics-port", str(metrics)])
    poll_until(lambda: _pool_stats(proxy)["cluster_refreshes"] >= 1, "the first slot map")
    keys = [f"rl:{i}" for i in range(100)]
    host, port = proxy.address().rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(encode_command("MSET", *[x for i, k in enumerate(keys) for x in (k, i)]))
        assert read_until(sock, lambda data: data.endswith(b"\r\n")) == b"+OK\r\n"
        changed = _config(cluster, server_connections=2)
        changed[POOL]["listen"] = proxy.address()
        changed[POOL]["servers"] = [f"{node.address}:1" for node in cluster.nodes[2:4]]
        with open(proxy.config_path, "w", encoding="utf-8") as f:
            f.write(dump_config(changed))
        refreshes = _pool_stats(proxy)["cluster_refreshes"]
        request = urllib.request.Request(f"http://127.0.0.1:{metrics}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["applied"] is True
        # The same connection, after the reload.
        sock.sendall(encode_command("MGET", *keys))
        expected = b"*100\r\n" + b"".join(
            b"$%d\r\n%d\r\n" % (len(b"%d" % i), i) for i in range(100)
        )
        assert read_until(sock, lambda data: len(data) >= len(expected)) == expected
    stats = _pool_stats(proxy)
    assert stats["forward_error"] == 0
    assert {n for n, v in stats.items() if isinstance(v, dict)} == {a for _, a in cluster.masters()}
    poll_until(lambda: _pool_stats(proxy)["cluster_refreshes"] > refreshes, "the map read again")


# -- topology changes (these come last: they move slots and masters) ----------


def _assert_all_readable(proxy: CorenetProxy, writer: Writer) -> list[bytes]:
    """Read back every key ``writer`` wrote: never another key's value; the
    keys without a value are returned."""
    with proxy.client() as client:
        keys = [writer.prefix + b"%d" % i for i in range(writer.written)]
        values = []
        for start in range(0, len(keys), 500):
            values += client.mget(keys[start : start + 500])
    missing = [k for k, v in zip(keys, values, strict=True) if v is None]
    wrong = [
        k
        for k, v in zip(keys, values, strict=True)
        if v is not None and v[1:] != k[len(writer.prefix) :]
    ]
    assert not wrong
    return missing


def test_reads_and_writes_survive_a_live_reshard_of_2000_slots(
    cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    _flush(cluster)
    writers = [Writer(proxy.address(), prefix=b"rs%d:" % n, allow_missing=False) for n in range(2)]
    try:
        poll_until(
            lambda: all(w.done > 100 for w in writers), "traffic before the reshard", timeout=30
        )
        (source_id, source), (target_id, target), _ = cluster.masters()
        before = _pool_stats(proxy)[target]["slots"]
        started = time.monotonic()
        cluster.run_cli(
            "--cluster",
            "reshard",
            source,
            "--cluster-from",
            source_id,
            "--cluster-to",
            target_id,
            "--cluster-slots",
            "2000",
            "--cluster-yes",
        )
        took = time.monotonic() - started
        seen = [w.done for w in writers]
        poll_until(
            lambda: all(w.done > s + 100 for w, s in zip(writers, seen, strict=True)),
            "traffic after the reshard",
            timeout=30,
        )
    finally:
        for writer in writers:
            writer.stop()
    stats = _pool_stats(proxy)
    done = sum(w.done for w in writers)
    print(
        f"reshard of 2000 slots took {took:.1f} s; {done} write+read pairs; "
        f"moved {stats['cluster_moved']} ask {stats['cluster_ask']} "
        f"retries {stats['cluster_retries']} refreshes {stats['cluster_refreshes']}"
    )
    assert [w.errors for w in writers] == [[], []]
    assert [w.wrong for w in writers] == [[], []]
    assert stats["cluster_moved"] + stats["cluster_ask"] > 0  # the map did change under it
    for writer in writers:
        assert _assert_all_readable(proxy, writer) == []
    poll_until(
        lambda: _pool_stats(proxy)[target]["slots"] == before + 2000,
        "the new map",
        timeout=15,
    )


def test_manual_failover_gives_no_client_error(cluster: RedisCluster, proxy: CorenetProxy) -> None:
    _flush(cluster)
    master_id, master = cluster.masters()[0]
    replica = cluster.synced_replica(master_id)
    writer = Writer(proxy.address(), prefix=b"fo:", allow_missing=False)
    try:
        poll_until(lambda: writer.done > 100, "traffic before the failover", timeout=30)
        assert replica.raw_command("CLUSTER", "FAILOVER") == b"+OK\r\n"
        poll_until(
            lambda: replica.address in {a for _, a in cluster.masters()},
            "the replica to become a master",
            timeout=20,
        )
        poll_until(lambda: replica.address in _pool_stats(proxy), "the proxy to follow", timeout=15)
        seen = writer.done
        poll_until(lambda: writer.done > seen + 100, "traffic after the failover", timeout=30)
    finally:
        writer.stop()
    assert writer.errors == []
    assert writer.wrong == []
    assert _assert_all_readable(proxy, writer) == []
    cluster.wait_ok()


def test_killed_master_errors_are_bounded_to_the_failover(
    cluster: RedisCluster, proxy: CorenetProxy
) -> None:
    _flush(cluster)
    cluster.wait_ok()
    master_id, master = cluster.masters()[-1]
    heir = cluster.synced_replica(master_id)
    victim = cluster.node_at(master)
    writer = Writer(proxy.address(), prefix=b"kill:")  # a failover may lose acknowledged writes
    try:
        poll_until(lambda: writer.done > 100, "traffic before the kill", timeout=30)
        killed = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        poll_until(
            lambda: master not in {a for _, a in cluster.masters()}, "a new master", timeout=30
        )
        promoted = time.monotonic()
        # The proxy learns of the new master after the cluster has it: the
        # bound is when the proxy routes there, not when the cluster says so.
        poll_until(lambda: heir.address in _pool_stats(proxy), "the proxy to follow", timeout=15)
        followed = time.monotonic()
        seen = writer.done
        poll_until(lambda: writer.done > seen + 200, "traffic after the failover", timeout=30)
    finally:
        writer.stop()
    window = [at - killed for at, _ in writer.errors]
    print(
        f"kill -9: replica promoted after {promoted - killed:.1f} s, followed after "
        f"{followed - killed:.1f} s; {len(window)} client errors "
        f"from {min(window, default=0):.2f} to {max(window, default=0):.2f} s after the kill"
    )
    assert writer.wrong == []  # never another key's value, never a wrong reply
    # Requests never sent wait for the new master; only what was on the wire
    # when the master died fails (one pipeline of the writer's).
    assert len(window) <= 2
    assert all(0 <= t <= followed - killed for t in window)
    print("errors:", sorted({f"{at - killed:.1f} s: {text[-40:]}" for at, text in writer.errors}))
    lost = _assert_all_readable(proxy, writer)
    print(f"writes lost with the killed master: {len(lost)}")


def test_nodes_found_in_the_map_get_the_pools_password(
    request: pytest.FixtureRequest, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    """A cluster with ``requirepass``: one seed is given, and the masters the
    map names are reached with ``redis_auth`` too (on connections the proxy
    opens for them when first needed)."""
    need_binary(request.config, "redis-cli")
    secured = RedisCluster(masters=3, replicas=0, password="cl-s3cret")
    try:
        config = pool_config(
            POOL,
            None,
            [f"{secured.nodes[0].address}:1"],
            redis_cluster=True,
            hash=None,
            distribution=None,
            redis_auth="cl-s3cret",
            timeout=3000,
        )
        proxy = corenet_proxy_factory(config)
        with proxy.client(password="cl-s3cret") as client:
            client.mset({f"auth:{i}": i for i in range(300)})
            assert client.mget([f"auth:{i}" for i in range(300)]) == [b"%d" % i for i in range(300)]
            assert client.dbsize() == 300
        stats = _pool_stats(proxy)
        masters = {address for _, address in secured.masters()}
        assert {name for name, value in stats.items() if isinstance(value, dict)} == masters
        assert stats["forward_error"] == 0
        # Every master holds its share, written over an authenticated connection.
        counts = [int(secured.ask(secured.node_at(a), "DBSIZE")[1:]) for a in masters]
        assert sum(counts) == 300 and all(counts)
    finally:
        secured.stop()
