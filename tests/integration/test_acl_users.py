"""``redis_users``: ACL users checked by the proxy, against real redis-servers
that hold the same users (``ACL SETUSER``), reply bytes compared."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import redis

from tests.servers import exchange, pool_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers import CorenetProxy, RedisServer

PASSWORD = "defpw"
USERS = {
    "alice": "on >apw ~* +@read +ping",
    "writer": "on >wpw ~* +@all -@dangerous",
    "gone": "off >gpw ~* +@all",
    "lists": "on >lpw ~* +@list -lpush +echo",
}
SCRIPT = (
    b"GET k\r\n"
    b"AUTH alice apw\r\nGET k\r\nSET k v\r\nPING\r\nECHO hi\r\nAUTH alice nope\r\nGET k\r\n"
    b"AUTH gone gpw\r\nAUTH nobody x\r\n"
    b"AUTH writer wpw\r\nSET k v\r\nGET k\r\nFLUSHALL\r\nKEYS *\r\nDEL k\r\n"
    b"AUTH lists lpw\r\nRPUSH l a\r\nLPUSH l b\r\nLRANGE l 0 -1\r\nECHO ok\r\nGET k\r\n"
    b"AUTH default defpw\r\nSET k w\r\nGET k\r\nDEL k l\r\n"
)


@pytest.fixture
def secured(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> tuple[CorenetProxy, RedisServer]:
    servers = redis_servers(3, extra_args=["--requirepass", PASSWORD])
    direct = servers[2]
    with direct.client(password=PASSWORD) as admin:
        for name, rules in USERS.items():
            admin.execute_command("ACL", "SETUSER", name, "reset", *rules.split())
    config = pool_config("alpha", None, [s.address for s in servers[:2]], redis_auth=PASSWORD)
    config["alpha"]["redis_users"] = USERS
    return corenet_proxy_factory(config), direct


def test_users_get_redis_own_replies(secured: tuple[CorenetProxy, RedisServer]) -> None:
    proxy, direct = secured
    expected = exchange(direct.address, SCRIPT)
    assert b"-NOPERM this user has no permissions to run the 'set' command" in expected
    assert b"-WRONGPASS" in expected
    assert exchange(proxy.address(), SCRIPT) == expected


def test_redis_py_logs_in_as_a_user_over_resp2_and_resp3(
    secured: tuple[CorenetProxy, RedisServer],
) -> None:
    proxy, _ = secured
    url = f"redis://{proxy.address()}"
    for protocol in (2, 3):
        with redis.Redis.from_url(url, username="alice", password="apw", protocol=protocol) as r:
            assert r.get("k") is None
            with pytest.raises(redis.exceptions.NoPermissionError):
                r.set("k", "v")
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis.from_url(url, username="alice", password="bad").ping()


def test_a_bad_user_rule_fails_the_check(tmp_path: object) -> None:
    from tests.servers import dump_config, run_corenet

    config = pool_config("alpha", None, ["127.0.0.1:6379"])
    config["alpha"]["redis_users"] = {"eve": "on >s3cretpw +@nonsense"}
    path = tmp_path / "bad.yml"  # type: ignore[operator]
    path.write_text(dump_config(config), encoding="utf-8")
    done = run_corenet("-t", "-c", path)
    assert done.returncode != 0
    assert "unknown ACL category '@nonsense'" in done.stdout + done.stderr
    assert "s3cretpw" not in done.stdout + done.stderr
