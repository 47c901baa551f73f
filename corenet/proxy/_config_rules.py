"""Rules between the keys of one pool in nutcracker.yml: what a key needs,
and what does not apply together (read by :mod:`corenet.proxy.config`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.errors import ConfigError

__all__ = ["ClusterPoolKeys", "Where", "check_cluster_keys", "check_tls_keys"]


class ClusterPoolKeys(Protocol):
    """What the cluster rules read of a pool (:class:`corenet.proxy.config.PoolConfig`)."""

    @property
    def protocol(self) -> str: ...

    @property
    def hash_tag(self) -> bytes | None: ...

    @property
    def redis_db(self) -> int: ...


class Where(Protocol):
    """Where a pool was read, to word an error (file, line, pool, key)."""

    def error(self, key: str | None, message: str, line: int | None = None) -> ConfigError: ...


def check_cluster_keys(pool: ClusterPoolKeys, lines: Mapping[str, int], where: Where) -> None:
    """Refuse what cannot apply to a Redis Cluster pool: its slots place the
    keys (no hash or distribution), its hash tag is Redis's braces, it has
    one database, and it fails over by itself (no sentinels)."""
    line = lines["redis_cluster"]
    if pool.protocol != "redis":
        raise where.error("redis_cluster", "a Redis Cluster pool needs redis: true", line)
    for key in ("hash", "distribution", "sentinels", "sentinel_masters", "sentinel_auth"):
        if key in lines:
            raise where.error(
                key,
                f'directive "{key}" does not apply to a Redis Cluster pool: '
                "the cluster's slots place the keys and it fails over by itself",
                lines[key],
            )
    if pool.hash_tag not in (None, b"{}"):
        raise where.error(
            "hash_tag", 'a Redis Cluster hashes the part of a key in "{}"', lines["hash_tag"]
        )
    if pool.redis_db != 0:
        raise where.error("redis_db", "a Redis Cluster has database 0 only", lines["redis_db"])


# key -> the key it needs (with the value that key must have, for messages)
_TLS_NEEDS = {
    "tls_key": "tls_cert",
    "tls_ca": "tls_cert",
    "tls_protocols": "tls_cert",
    "tls_ciphers": "tls_cert",
    "server_tls_key": "server_tls_cert",
}


def check_tls_keys(values: dict[str, Any], lines: Mapping[str, int], where: Where) -> None:
    """Refuse TLS keys that cannot take effect: a key without the key it
    qualifies, server-side keys without ``server_tls: true``, and a server
    whose host name cannot be verified."""
    for key in sorted(lines, key=lines.__getitem__):
        needed = _TLS_NEEDS.get(key)
        if needed is not None and values.get(needed) is None:
            raise where.error(key, f'directive "{key}" needs "{needed}"', lines[key])
        if key.startswith("server_tls_") and not values.get("server_tls"):
            raise where.error(key, f'directive "{key}" needs "server_tls: true"', lines[key])
        if (
            key == "tls_handshake_timeout"
            and values.get("tls_cert") is None
            and not values.get("server_tls")
        ):
            message = 'directive "tls_handshake_timeout" needs "tls_cert" or "server_tls"'
            raise where.error(key, message, lines[key])
    verify_names = (
        values.get("server_tls")
        and values.get("server_tls_verify", True)
        and values.get("server_tls_sni") is None
    )
    for server in values["servers"] if verify_names else ():
        if server.address.is_unix:
            raise where.error(
                "servers",
                f'server "{server.spec}": no host name to verify its TLS certificate '
                'against; set "server_tls_sni" (or "server_tls_verify: false")',
                lines["servers"],
            )
