"""A client that half-closes (``shutdown(SHUT_WR)``, ``nc -N``, a batch
script) gets every reply, then the proxy's FIN, as redis-server, memcached
and nutcracker do (issue 15, item 1), against real servers."""

from __future__ import annotations

import socket

import pytest

from tests.servers import encode_command, poll_until, pool_config, read_until


def _half_closed(address: str, payload: bytes) -> bytes:
    """Send ``payload``, shut down writing, read until the proxy closes."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return read_until(sock)  # to EOF: the proxy closes once all is sent


@pytest.mark.parametrize("pairs", [200, 5000])
def test_redis_pipeline_then_eof_gets_every_reply(pairs, redis_servers, corenet_proxy_factory):
    servers = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    payload = b"".join(
        encode_command("SET", f"k{i}", f"v{i}") + encode_command("GET", f"k{i}")
        for i in range(pairs)
    )
    expected = b"".join(b"+OK\r\n" + b"$%d\r\nv%d\r\n" % (len(b"v%d" % i), i) for i in range(pairs))
    # The harness's readiness probe may still be closing: its EOF first.
    poll_until(lambda: proxy.stats()["alpha"]["client_connections"] == 0, "the probe to close")
    eofs = proxy.stats()["alpha"]["client_eof"]
    assert _half_closed(proxy.address("alpha"), payload + b"PING\r\n") == expected + b"+PONG\r\n"
    assert _half_closed(proxy.address("alpha"), b"PING\r\n") == b"+PONG\r\n"
    assert proxy.stats()["alpha"]["client_eof"] == eofs + 2


@pytest.mark.parametrize("count", [100, 5000])
def test_memcache_pipeline_then_eof_gets_every_reply(
    count, memcached_servers, corenet_proxy_factory
):
    servers = memcached_servers(2)
    config = pool_config("alpha", None, [s.address for s in servers], redis=False)
    proxy = corenet_proxy_factory(config)
    stores = b"".join(b"set k%d 0 0 1\r\nv\r\n" % i for i in range(count))
    assert _half_closed(proxy.address("alpha"), stores) == b"STORED\r\n" * count
    gets = b"get k0 k1\r\n" * 10
    reply = b"VALUE k0 0 1\r\nv\r\nVALUE k1 0 1\r\nv\r\nEND\r\n" * 10
    assert _half_closed(proxy.address("alpha"), gets) == reply
