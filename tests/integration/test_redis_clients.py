"""Today's clients out of the box: redis-py 8 in its default RESP3 mode and in
RESP2, AUTH to the proxy and from the proxy to password-protected backends."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import RedisServer, pool_config, spread_keys


def names(n: int, prefix: str) -> list[str]:
    return spread_keys(n, prefix)


def host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


@pytest.mark.parametrize("protocol", [3, 2])
def test_redis_py_default_and_resp2(protocol, redis_servers, corenet_proxy_factory):
    backends = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [b.address for b in backends]))
    host, port = host_port(proxy.address("alpha"))
    # No driver_info override: redis-py sends HELLO and CLIENT SETINFO as it does by default.
    kwargs = {} if protocol == 3 else {"protocol": 2}
    client = redis.Redis(host=host, port=port, socket_timeout=5, **kwargs)
    assert client.ping() is True
    keys = names(40, "py")
    assert client.mset({k: k for k in keys}) is True
    assert client.mget(keys + ["nope"]) == [k.encode() for k in keys] + [None]
    assert client.hset("hash:1", mapping={"a": "1", "b": "2"}) == 2
    assert client.hgetall("hash:1") == {b"a": b"1", b"b": b"2"}
    assert client.zadd("z", {"x": 1.5}) == 1
    assert client.zscore("z", "x") == 1.5
    assert client.sadd("s", "a", "b") == 2
    assert client.smembers("s") == {b"a", b"b"}
    assert client.exists(*keys[:5], "nope") == 5
    assert client.delete(*keys) == 40
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.set(k, b"v")
        pipe.get(k)
    assert pipe.execute() == [True, b"v"] * 40
    client.close()


def test_resp3_replies_come_from_resp3_backend_connections(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    host, port = host_port(proxy.address("alpha"))
    resp3 = redis.Redis(host=host, port=port, protocol=3, socket_timeout=5)
    resp2 = redis.Redis(host=host, port=port, protocol=2, socket_timeout=5)
    resp3.hset("h", "f", "v")
    raw3 = resp3.execute_command("HGETALL", "h")
    raw2 = resp2.execute_command("HGETALL", "h")
    assert raw3 == {b"f": b"v"}
    assert raw2 in ([b"f", b"v"], {b"f": b"v"})  # redis-py may pair a RESP2 list into a dict
    clients = redis_server.client().client_list()
    assert {c.get("resp") for c in clients} >= {"2", "3"}


def test_auth_to_the_proxy_and_to_backends_with_select(corenet_proxy_factory):
    backend = RedisServer(extra_args=["--requirepass", "s3cret"])
    try:
        config = pool_config("alpha", None, [backend.address], redis_auth="s3cret", redis_db=2)
        proxy = corenet_proxy_factory(config)
        host, port = host_port(proxy.address("alpha"))
        no_retry = Retry(NoBackoff(), 0)  # redis-py retries auth errors with back-off by default
        anonymous = redis.Redis(host=host, port=port, protocol=2, socket_timeout=5, retry=no_retry)
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("k")
        wrong = redis.Redis(host=host, port=port, password="nope", socket_timeout=5, retry=no_retry)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        for protocol in (2, 3):
            client = redis.Redis(
                host=host, port=port, password="s3cret", protocol=protocol, socket_timeout=5
            )
            assert client.set(f"k{protocol}", "v") is True
            assert client.get(f"k{protocol}") == b"v"
        direct = redis.Redis(
            host=host_port(backend.address)[0],
            port=host_port(backend.address)[1],
            password="s3cret",
            protocol=2,
            db=2,
        )
        assert direct.get("k2") == b"v" and direct.get("k3") == b"v"
        assert (
            redis.Redis(
                host=host_port(backend.address)[0],
                port=host_port(backend.address)[1],
                password="s3cret",
                protocol=2,
                db=0,
            ).dbsize()
            == 0
        )
    finally:
        backend.stop()
