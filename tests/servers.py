"""Helpers of corenet's tests for real servers: the process harness plus test-only bits.

The process harness itself (free loopback ports, start and stop by PID,
redis-server, memcached, nutcracker and corenet-proxy recipes, raw RESP and
memcache exchanges) lives in ``corenet.testing.process`` and
``corenet.proxy.harness``, shared with the benchmark, the demo and plugin
authors; it is re-exported here so tests keep importing from one place.
"""

from __future__ import annotations

import hashlib

from corenet.proxy.harness import (
    CorenetProxy,
    Memcached,
    Nutcracker,
    RedisServer,
    ServerPool,
    count_resp_replies,
    dump_config,
    encode_command,
    listen_addresses,
    memcache_client,
    memcache_raw,
    pool_config,
    redis_client,
    redis_raw,
    resp_reply_end,
)
from corenet.testing.process import (
    ADDR_IN_USE_MARKERS,
    LOOPBACK,
    Process,
    RawReplyTimeout,
    ServerStartError,
    exited,
    find_binary,
    free_port,
    listening_tcp_ports,
    parse_address,
    raw_exchange,
    running_processes,
    stop_all,
    wait_for,
)

__all__ = [
    "ADDR_IN_USE_MARKERS",
    "LOOPBACK",
    "CorenetProxy",
    "Memcached",
    "Nutcracker",
    "Process",
    "RawReplyTimeout",
    "RedisServer",
    "ServerPool",
    "ServerStartError",
    "count_resp_replies",
    "dump_config",
    "encode_command",
    "exited",
    "find_binary",
    "free_port",
    "listen_addresses",
    "listening_tcp_ports",
    "memcache_client",
    "memcache_raw",
    "parse_address",
    "pool_config",
    "raw_exchange",
    "redis_client",
    "redis_raw",
    "resp_reply_end",
    "running_processes",
    "spread_keys",
    "stop_all",
    "wait_for",
]


def spread_keys(n: int, prefix: str = "key", digits: int = 10) -> list[str]:
    """``n`` well-mixed key names ``prefix:<sha1 hex>``: fnv1a_64 puts names
    that differ only in their last byte close together on the ketama ring,
    which would hide placement bugs."""
    return [f"{prefix}:{hashlib.sha1(str(i).encode()).hexdigest()[:digits]}" for i in range(n)]
