"""``INFO`` through the proxy: the proxy's own server, clients and stats
fields, the servers' keyspace summed (against real redis-servers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.servers import pool_config, spread_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers import CorenetProxy, RedisServer


def test_info_says_the_proxy_and_sums_the_keyspace(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    servers = redis_servers(3)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers]))
    keys = spread_keys(300)
    port = int(proxy.address().rsplit(":", 1)[1])
    with proxy.client() as client, proxy.client() as other:
        other.ping()  # two client connections now
        client.mset({key: key for key in keys})  # fragments over the three servers
        client.mget(keys)
        info = client.info()
        stats = proxy.stats()["alpha"]  # what the stats port says at that moment
        server = client.info("server")
        keyspace = client.info("keyspace")
        with proxy.client(protocol=3) as resp3:
            verbatim = resp3.info("everything")
    direct = []
    for redis_server in servers:
        with redis_server.client() as c:
            direct.append(c.info())
    # The proxy's process, address and clients, not a server's.
    assert info["proxy"] == "corenet" and info["proxy_pool"] == "alpha"
    assert info["process_id"] == proxy.pid != direct[0]["process_id"]
    assert info["tcp_port"] == port and info["proxy_listen"] == proxy.address()
    assert 0 <= info["uptime_in_seconds"] < direct[0]["uptime_in_seconds"] + 600
    assert info["connected_clients"] == 2
    accepted = info["total_connections_received"]
    assert accepted >= 2  # and the harness's readiness probe
    assert info["fragments"] == stats["fragments"] > 0
    assert (info["client_err"], info["forward_error"]) == (stats["client_err"], 0)
    # What the proxy forwards to: the servers' version, their work summed.
    assert info["redis_version"] == direct[0]["redis_version"]
    assert (
        0
        < info["total_commands_processed"]
        <= sum(
            d["total_commands_processed"]
            for d in direct  # read later: more by now
        )
    )
    assert info["db0"]["keys"] == sum(d["db0"]["keys"] for d in direct) == len(keys)
    # INFO server has the proxy's fields; INFO keyspace only the servers'.
    assert server["proxy"] == "corenet" and "db0" not in server
    assert keyspace == {"db0": info["db0"]} and "proxy" not in keyspace
    # RESP3: a verbatim string, the same fields; a third client now.
    assert verbatim["proxy"] == "corenet" and verbatim["connected_clients"] == 3
    assert verbatim["total_connections_received"] == accepted + 1
    assert verbatim["db0"]["keys"] == len(keys)
