"""``corenet-proxy --explain POOL KEY``: where a key goes, and why.

Operators reach for this when data looks missing: it prints each routing
step for a pool as configured (every server live), using the same
:class:`~corenet.routing.Router` the proxy uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.proxy.cluster import ask_slots, key_slot
from corenet.proxy.naming import sort_key
from corenet.routing import Router, apply_hash_tag

if TYPE_CHECKING:
    from corenet.plugin import Plugins
    from corenet.proxy.config import PoolConfig

__all__ = ["explain_key"]


def explain_key(pool: PoolConfig, plugins: Plugins, key: bytes) -> str:
    """Return a human-readable account of how ``pool`` routes ``key``.

    Raises:
        PluginError: the pool's hash function or distribution is unknown.
    """
    if pool.redis_cluster:
        return _explain_cluster(pool, key)
    servers = sorted(pool.servers, key=lambda s: sort_key(s.name))
    router = Router(
        plugins.hash_functions.get(pool.hash),
        plugins.distributions.get(pool.distribution),
        pool.hash_tag,
        len(servers),
    )
    router.rebuild([(s.name, s.weight) for s in servers])
    step = router.explain(key)
    server = servers[step.index]
    lines = [
        f"pool:          {pool.name} ({len(servers)} servers, all assumed live)",
        f"key:           {key!r}",
    ]
    if router.single:
        lines.append("hash:          skipped (a pool of one server)")
    else:
        tag = pool.hash_tag.decode("latin-1") if pool.hash_tag else "none"
        lines.append(f"hash_tag:      {tag}; hashed bytes {step.hashed!r}")
        if step.hashed:
            lines.append(f"hash:          {pool.hash}({step.hashed!r}) = {step.hash_value}")
        else:
            lines.append("hash:          0 (an empty key is not hashed)")
        point = "none (no continuum)" if step.point is None else str(step.point)
        lines.append(f"distribution:  {pool.distribution}; continuum point {point}")
    lines.append(
        f"server:        #{step.index} {server.name} ({server.address}, weight {server.weight})"
    )
    if pool.sentinels:
        from corenet.proxy.sentinel import ask_masters

        now = ask_masters(pool)
        where = "no sentinel answered" if now is None else str(now.get(server.name, "unknown"))
        lines.append(f"master now:    {where} (asked the pool's sentinels)")
    return "\n".join(lines)


def _explain_cluster(pool: PoolConfig, key: bytes) -> str:
    """A Redis Cluster pool: the key's slot, and its master as a seed says now."""
    slot = key_slot(key)
    hashed = apply_hash_tag(key, b"{}")
    lines = [
        f"pool:          {pool.name} (Redis Cluster, {len(pool.servers)} seed nodes)",
        f"key:           {key!r}",
        f"slot:          crc16({hashed!r}) mod 16384 = {slot}",
    ]
    ranges, seed = ask_slots(pool)
    if ranges is None:
        lines.append("node:          unknown (no seed node answered CLUSTER SLOTS)")
        return "\n".join(lines)
    span = next((r for r in ranges if r.first <= slot <= r.last), None)
    if span is None:
        lines.append(f"node:          none: slot {slot} is not served (asked {seed})")
    else:
        replicas = ", ".join(map(str, span.replicas)) or "none"
        lines.append(f"node:          {span.master} (slots {span.first}-{span.last}; asked {seed})")
        lines.append(f"replicas:      {replicas}")
    return "\n".join(lines)
