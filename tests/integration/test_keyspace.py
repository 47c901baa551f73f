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


def test_a_down_server_fails_the_whole_command(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    import redis as redis_py

    servers = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    servers[1].stop()
    with proxy.client() as client:
        with pytest.raises(redis_py.ResponseError, match="Connection refused"):
            client.dbsize()
        with pytest.raises(redis_py.ResponseError, match="Connection refused"):
            client.keys("*")
