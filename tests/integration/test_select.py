"""SELECT through a 2-server pool, against real redis-servers: each database
gets its own backend connections, and a pipeline switching databases runs
each command in the database of its turn, as one redis-server does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from tests.servers import exchange, pool_config, spread_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers import CorenetProxy, RedisServer

PIPELINE = (
    b"SET k zero\r\nSELECT 1\r\nSET k one\r\nGET k\r\nSELECT 0\r\nGET k\r\n"
    b"SELECT 1\r\nMULTI\r\nINCR n\r\nEXEC\r\nSELECT 0\r\nEXISTS n\r\nSELECT 16\r\n"
    b"HELLO 3\r\nSELECT 1\r\nGET k\r\nSELECT 0\r\nGET k\r\n"
)


def test_a_pipeline_switching_databases_runs_as_on_one_redis(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    servers = redis_servers(3)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [s.address for s in servers[:2]]))
    direct = exchange(servers[2].address, PIPELINE)
    through = exchange(proxy.address(), PIPELINE)
    assert b"$3\r\none\r\n" in direct and b"-ERR DB index is out of range" in direct
    # HELLO's map differs (the proxy says who it is); everything else is Redis's.
    cut = direct.index(b"%")
    assert through[: through.index(b"%")] == direct[:cut]
    assert through.endswith(b"+OK\r\n$3\r\none\r\n+OK\r\n$4\r\nzero\r\n")
    assert direct.endswith(b"+OK\r\n$3\r\none\r\n+OK\r\n$4\r\nzero\r\n")


def test_databases_are_kept_apart_on_every_server(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    servers = redis_servers(2)
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [s.address for s in servers], redis_db=2)
    )
    keys = spread_keys(50)
    url = f"redis://{proxy.address()}"
    with redis.Redis.from_url(url) as default, redis.Redis.from_url(url, db=3) as third:
        for key in keys:
            default.set(key, "db2")
            third.set(key, "db3")
        assert default.mget(keys) == [b"db2"] * 50
        assert third.mget(keys) == [b"db3"] * 50
        with third.pipeline(transaction=False) as pipe:
            pipe.execute_command("SELECT", 0).get(keys[0]).execute_command("SELECT", 3)
            assert pipe.execute() == [True, None, True]
    by_db = {db: sum(s.client(db=db).dbsize() for s in servers) for db in (0, 2, 3)}
    assert by_db == {0: 0, 2: 50, 3: 50}
    assert all(s.client(db=3).dbsize() for s in servers)  # both servers hold some
