"""Active health checks against real redis-servers and memcacheds."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.servers import Memcached, RedisServer, poll_until, pool_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers import CorenetProxy


@pytest.mark.parametrize("kind", ["redis", "memcache"])
def test_a_dead_idle_server_is_ejected_before_any_request_fails_and_returns(
    kind: str, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    make = RedisServer if kind == "redis" else Memcached
    keep, victim = make(), make()
    try:
        config = pool_config(
            "hc",
            None,
            [keep.address, victim.address],
            redis=kind == "redis",
            auto_eject_hosts=True,
            server_failure_limit=2,
            server_retry_timeout=600_000,  # passive retry would take ten minutes
            health_check_interval=100,
            health_check_timeout=200,
        )
        proxy = corenet_proxy_factory(config)
        port = victim.port
        victim.stop()
        stats, took = poll_until(
            lambda: (s := proxy.stats())["hc"]["server_ejects"] == 1 and s,
            "the health checks to eject the stopped server",
            timeout=5,
        )
        print(f"{kind}: ejected {took * 1000:.0f} ms after the stop (interval 100 ms, limit 2)")
        assert stats["hc"][victim.address]["server_ejected_at"] > 0
        # No client request has failed: all of them now go to the live server.
        if kind == "redis":
            client = proxy.client()
            for i in range(200):
                assert client.set(b"k%d" % i, b"v") is True
        else:
            client = proxy.memcache_client()
            for i in range(200):
                assert client.set(f"k{i}", "v", noreply=False) is True
        assert proxy.stats()["hc"]["forward_error"] == 0

        victim = make(port=port)  # back on its address

        def reached() -> bool:
            # Varied keys: short sequential ones cluster under fnv1a_64.
            for i in range(100):
                key = f"user:{i * 7919}:session"
                if kind == "redis":
                    assert client.set(key.encode(), b"v") is True
                else:
                    assert client.set(key, "v", noreply=False) is True
            return proxy.stats()["hc"][victim.address]["requests"] > 0

        _, took = poll_until(reached, "the restarted server to take requests again", timeout=5)
        print(f"{kind}: back in the distribution {took * 1000:.0f} ms after the restart")
        assert proxy.stats()["hc"]["forward_error"] == 0
        client.close()
    finally:
        keep.stop()
        victim.stop()
