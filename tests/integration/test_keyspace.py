"""Whole-keyspace commands through a 3-server pool, against real redis-servers."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.servers import pool_config, spread_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    import redis

    from tests.servers import CorenetProxy, RedisServer

    Pool = Callable[..., tuple[CorenetProxy, list[RedisServer]]]


@pytest.fixture
def sharded(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> tuple[CorenetProxy, list[RedisServer], list[bytes]]:
    servers = redis_servers(3)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    keys = [k.encode() for k in spread_keys(10_000)]
    with proxy.client() as client:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.set(key, key)
        pipe.execute()
    return proxy, servers, keys


@pytest.fixture
def pool_of(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> Pool:
    """``pool_of(n, **keys)``: a proxy over ``n`` fresh redis-servers."""

    def make(n: int, **keys: object) -> tuple[CorenetProxy, list[RedisServer]]:
        servers = redis_servers(n)
        config = pool_config("alpha", None, [s.address for s in servers], **keys)
        return corenet_proxy_factory(config), servers

    return make


def _direct(servers: list[RedisServer]) -> list[redis.Redis]:
    return [s.client() for s in servers]


def test_scan_returns_every_key_exactly_once(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]],
) -> None:
    proxy, _, keys = sharded
    with proxy.client() as client:
        for count in (10, 1000):
            seen = list(client.scan_iter(count=count))
            assert len(seen) == len(keys) and set(seen) == set(keys), count
        matched = list(client.scan_iter(match="key:a*", count=100))
        assert sorted(matched) == sorted(k for k in keys if k.startswith(b"key:a"))
    port = proxy.address().rsplit(":", 1)[1]
    out = subprocess.run(
        ["redis-cli", "-p", port, "--scan"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(k.decode() for k in keys)


def test_dbsize_keys_and_randomkey_agree_with_the_servers(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]],
) -> None:
    proxy, servers, keys = sharded
    direct = _direct(servers)
    try:
        sizes = [c.dbsize() for c in direct]
        assert all(sizes) and sum(sizes) == len(keys)  # every server holds some
        with proxy.client() as client:
            assert client.dbsize() == len(keys)
            assert sorted(client.keys("*")) == sorted(keys)
            assert sorted(client.keys("key:b*")) == sorted(
                k for k in keys if k.startswith(b"key:b")
            )
            assert client.randomkey() in set(keys)
    finally:
        for c in direct:
            c.close()


def test_script_load_makes_evalsha_work_on_every_server(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]],
) -> None:
    proxy, servers, keys = sharded
    with proxy.client() as client:
        sha = client.script_load("return redis.call('GET', KEYS[1])")
        assert client.script_exists(sha, "0" * 40) == [True, False]
        # Keys on every server: a thousand of them spread over all three.
        for key in keys[:1000]:
            assert client.evalsha(sha, 1, key) == key
        for server in servers:
            with server.client() as direct:
                assert direct.script_exists(sha) == [True]
        assert client.script_flush() is True
        assert client.script_exists(sha) == [False]


def test_refusals_in_redis_wording(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]],
) -> None:
    import redis as redis_py

    proxy, _, _ = sharded
    with proxy.client() as client:
        with pytest.raises(redis_py.ResponseError, match="invalid cursor"):
            client.execute_command("SCAN", "abc")
        with pytest.raises(redis_py.ResponseError, match="SCRIPT DEBUG is not supported"):
            client.execute_command("SCRIPT", "DEBUG", "YES")
        with pytest.raises(redis_py.ResponseError, match="wrong number of arguments for 'keys'"):
            client.execute_command("KEYS")


def test_a_down_server_fails_the_whole_command(pool_of: Pool) -> None:
    import redis as redis_py

    proxy, servers = pool_of(2)
    servers[1].stop()
    with proxy.client() as client:
        with pytest.raises(redis_py.ResponseError, match="Connection refused"):
            client.dbsize()
        with pytest.raises(redis_py.ResponseError, match="Connection refused"):
            client.keys("*")


def test_info_keyspace_is_the_sum_over_the_servers(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]],
) -> None:
    proxy, servers, keys = sharded
    with proxy.client() as client:
        for key in keys[:300]:  # spread over the three servers too
            client.expire(key, 1000)
        merged = client.info("keyspace")["db0"]
        everything = client.info()
    per_server, memory = [], []
    for server in servers:
        with server.client() as direct:
            per_server.append(direct.info("keyspace")["db0"])
            memory.append(direct.info("memory")["used_memory"])
    assert all(db["keys"] < len(keys) for db in per_server)  # each holds a part
    assert merged["keys"] == sum(db["keys"] for db in per_server) == len(keys)
    assert merged["expires"] == sum(db["expires"] for db in per_server) == 300
    assert 0 <= merged["avg_ttl"] <= 1_000_000  # an estimate: 0 until an expire cycle ran
    # The whole INFO: one Redis's sections, the keyspace summed as well.
    assert everything["redis_version"] and everything["db0"]["keys"] == len(keys)
    assert everything["used_memory"] > max(memory)
    with proxy.client(protocol=3) as resp3:  # servers answer a verbatim string
        db0 = resp3.info("keyspace")["db0"]
        assert (db0["keys"], db0["expires"]) == (len(keys), 300)  # avg_ttl moves


def test_flushdb_and_flushall_empty_every_server(pool_of: Pool) -> None:
    proxy, servers = pool_of(3)
    keys = spread_keys(300)
    with proxy.client() as client:
        for command in (("FLUSHDB",), ("FLUSHALL", "ASYNC"), ("FLUSHDB", "SYNC")):
            client.mset({k: k for k in keys})
            assert client.dbsize() == len(keys)
            assert client.execute_command(*command) is True
            assert client.dbsize() == 0, command
            for server in servers:
                with server.client() as direct:
                    assert direct.dbsize() == 0
        import redis as redis_py

        with pytest.raises(redis_py.ResponseError, match="syntax error"):
            client.execute_command("FLUSHDB", "SOON")


def test_deny_commands_keeps_flushall_and_info_off(pool_of: Pool) -> None:
    import redis as redis_py

    proxy, _ = pool_of(2, deny_commands=["FLUSHALL", "INFO"])
    with proxy.client() as client:
        client.set("k", "v")
        with pytest.raises(redis_py.ResponseError, match="command 'FLUSHALL' is not allowed"):
            client.flushall()
        with pytest.raises(redis_py.ResponseError, match="command 'INFO' is not allowed"):
            client.info()
        assert client.get("k") == b"v"
        assert client.flushdb() is True
        assert client.get("k") is None


@pytest.mark.parametrize("flag", ["--bigkeys", "--memkeys"])
def test_redis_cli_bigkeys_and_memkeys_see_every_key(
    sharded: tuple[CorenetProxy, list[RedisServer], list[bytes]], flag: str
) -> None:
    # --bigkeys: DBSIZE, SCAN, TYPE and a size command per key; --memkeys:
    # MEMORY USAGE per key, routed by its key.
    proxy, _, keys = sharded
    port = proxy.address().rsplit(":", 1)[1]
    out = subprocess.run(
        ["redis-cli", "-p", port, flag], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert f"Sampled {len(keys)} keys in the keyspace!" in out.stdout
    assert f"{len(keys)} strings with" in out.stdout
