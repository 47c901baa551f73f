"""Fixtures shared by the integration tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import pytest

from tests.servers import free_port, pool_config

if TYPE_CHECKING:
    from collections.abc import Callable

from tests.servers import CorenetProxy, RedisServer  # noqa: TC001 (NamedTuple fields)


class Pair(NamedTuple):
    proxy: CorenetProxy
    servers: list[RedisServer]


@pytest.fixture
def pair(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> Pair:
    """A 2-server Redis pool (``hash_tag: "{}"``, ``timeout: 400``,
    ``max_pinned_connections: 8``, metrics on ``proxy.metrics_port``) and
    three redis-servers: the pool's two, and a third to compare with directly."""
    servers = redis_servers(3)
    config = pool_config(
        "alpha", None, [s.address for s in servers[:2]], hash_tag="{}", timeout=400
    )
    config["alpha"]["max_pinned_connections"] = 8
    metrics_port = free_port()
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    proxy.metrics_port = metrics_port  # type: ignore[attr-defined]
    return Pair(proxy, servers)
