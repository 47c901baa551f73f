"""corenet-proxy in front of real redis-servers, driven by real clients."""

from __future__ import annotations

import select
import shutil
import socket

import pytest

from tests.servers import encode_command, pool_config, redis_benchmark, redis_raw, spread_keys

BACKENDS = [
    name
    for name, attr in (("epoll", "epoll"), ("poll", "poll"), ("select", "select"))
    if hasattr(select, attr)
]


def keys(n: int, prefix: str = "key") -> list[str]:
    return spread_keys(n, prefix, digits=12)


@pytest.fixture
def two_redis(redis_servers):
    return redis_servers(2)


@pytest.fixture
def proxy(two_redis, corenet_proxy_factory):
    config = pool_config("alpha", None, [s.address for s in two_redis])
    return corenet_proxy_factory(config)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pipelines_of_mixed_set_get_on_every_backend(backend, two_redis, corenet_proxy_factory):
    config = pool_config("alpha", None, [s.address for s in two_redis])
    proxy = corenet_proxy_factory(config, ["--event-backend", backend])
    client = proxy.client("alpha")
    names = keys(5000)
    pipe = client.pipeline(transaction=False)
    for i, key in enumerate(names):
        pipe.set(key, f"value-{i}-{key}".encode() * (1 + i % 7))
        pipe.get(key)
    replies = pipe.execute()
    assert len(replies) == 10_000
    for i, key in enumerate(names):
        assert replies[2 * i] is True
        assert replies[2 * i + 1] == f"value-{i}-{key}".encode() * (1 + i % 7)
    # Both backends got a share, and every key is on exactly one of them.
    counts = [s.keys_count() for s in two_redis]
    assert sum(counts) == 5000
    assert min(counts) > 1000


def test_key_placement_equals_nutcracker(two_redis, corenet_proxy_factory, nutcracker_factory):
    config = pool_config("alpha", None, [s.address for s in two_redis])
    names = keys(2000) + ["", "\u00e9t\u00e9", "{tag}a", "x" * 300]
    placements = []
    for factory in (nutcracker_factory, corenet_proxy_factory):
        proxy = factory(config)
        client = proxy.client("alpha")
        pipe = client.pipeline(transaction=False)
        for key in names:
            pipe.set(key, b"1")
        assert all(pipe.execute())
        placements.append([tuple(s.client().exists(key) for s in two_redis) for key in names])
        for server in two_redis:
            server.client().flushall()
        proxy.stop()
    nutcracker, corenet = placements
    assert all(sum(p) == 1 for p in nutcracker)
    mismatches = [key for key, a, b in zip(names, nutcracker, corenet, strict=True) if a != b]
    assert mismatches == []


def test_multi_key_commands_fan_out_and_merge(proxy, two_redis):
    client = proxy.client("alpha")
    names = keys(50, "multi")
    assert client.mset({k: k.upper() for k in names}) is True
    counts = [s.keys_count() for s in two_redis]
    assert min(counts) > 0 and sum(counts) == 50
    assert client.mget(names + ["missing"]) == [k.upper().encode() for k in names] + [None]
    assert client.exists(*names[:10], "missing") == 10
    assert client.delete(*names[:20]) == 20
    assert client.mget(names[:21]) == [None] * 20 + [names[20].upper().encode()]


def test_local_commands_and_inline(proxy):
    address = proxy.address("alpha")
    reply = redis_raw(
        address, b"PING\r\nping hello\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n", expect_replies=3
    )
    assert reply == b"+PONG\r\n$5\r\nhello\r\n$3\r\nabc\r\n"


def test_value_larger_than_many_buffers_and_large_keys(proxy):
    client = proxy.client("alpha")
    big = bytes(range(256)) * 65536  # 16 MiB
    key = "k" * 20_000
    assert client.set(key, big)
    assert client.get(key) == big
    assert client.strlen(key) == len(big)


@pytest.mark.parametrize(
    "payload",
    [
        b"*abc\r\n",
        b"*2147483648\r\n",
        b"*4294967298\r\n",
        b"*1\r\n$-10\r\n",
        b"*1\r\n$blabla\r\n",
        b"*1\r\n$4294967297\r\n",
        b"*1\r\nx3\r\n",
        b'set "a b\r\n',
        b"*1\r\n$4\r\nPING\r\n*1\r\n$-1\r\n",
    ],
)
def test_protocol_errors_match_redis_byte_for_byte(payload, redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    direct = redis_raw(redis_server.address, payload)  # reads until Redis closes
    through = redis_raw(proxy.address("alpha"), payload)
    assert through == direct
    assert through.endswith(b"\r\n") and b"-ERR Protocol error" in through
    # Nothing reached the backend, and the proxy still serves.
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"


@pytest.mark.parametrize(
    "command",
    [
        [b"GET"],
        [b"SET", b"k"],
        [b"NOSUCHCOMMAND", b"a", b"b"],
        [b"nosuch"],
        [b"GET", b"k", b"extra"],
    ],
)
def test_command_errors_match_redis_and_keep_the_connection(
    command, redis_server, corenet_proxy_factory
):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    payload = encode_command(*command) + b"PING\r\n"
    direct = redis_raw(redis_server.address, payload, expect_replies=2)
    through = redis_raw(proxy.address("alpha"), payload, expect_replies=2)
    assert through == direct
    assert through.endswith(b"+PONG\r\n")


def test_backend_replies_pass_through_byte_exact(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    payload = b"".join(
        [
            encode_command("RPUSH", "list", "a", "", "c"),
            encode_command("LRANGE", "list", "0", "-1"),
            encode_command("GET", "list"),  # -WRONGTYPE
            encode_command("GET", "missing"),  # null bulk
            encode_command("HSET", "h", "f", "v"),
            encode_command("HGETALL", "h"),
            encode_command(
                "EVAL", "return {1,{2,{'x'}},redis.error_reply('FOO custom')}", "1", "k"
            ),
            encode_command("EVAL", "return redis.error_reply('MOVED 1 127.0.0.1:1')", "1", "k"),
            encode_command("INCRBYFLOAT", "f", "1.5"),
        ]
    )
    direct = redis_raw(redis_server.address, payload, expect_replies=9)
    redis_server.client().flushall()
    through = redis_raw(proxy.address("alpha"), payload, expect_replies=9)
    assert through == direct
    assert b"-WRONGTYPE" in through and b"-FOO custom" in through


def test_client_vanishing_mid_pipeline_leaves_backend_in_sync(proxy, two_redis):
    address = proxy.address("alpha")
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"".join(encode_command("SET", k, "v" * 1000) for k in keys(100, "gone")))
    sock.close()
    client = proxy.client("alpha")
    for key in keys(20, "after"):
        assert client.set(key, key)
        assert client.get(key) == key.encode()


@pytest.mark.skipif(shutil.which("redis-benchmark") is None, reason="needs redis-benchmark")
@pytest.mark.parametrize("backend", BACKENDS[:2])
def test_redis_benchmark_runs_without_errors(backend, two_redis, corenet_proxy_factory):
    config = pool_config("alpha", None, [s.address for s in two_redis])
    proxy = corenet_proxy_factory(config, ["--event-backend", backend])
    tests = "ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,mset"
    output = redis_benchmark(
        proxy.address("alpha"),
        *("-c", "50", "-P", "16", "-n", "20000", "-r", "100000", "-t", tests, "-q"),
        timeout=120,
    )
    assert "ERR" not in output and "rror" not in output, output
    assert output.count("requests per second") >= 12, output
