"""The proxy's own facts about a pool, for protocols that report them.

A protocol that answers a question about "the server" on the proxy's behalf
(Redis ``INFO``) needs facts only the application has: which process the
client talks to, since when, on which address, and the pool's counters.  It
gets them, when it needs them, from ``facts()`` on the request's
``Msg.client`` (the contract is in :mod:`corenet.protocol`): a read-only
snapshot, built on that call, so the data path pays nothing for it.
"""

from __future__ import annotations

import os
from types import MappingProxyType
from typing import TYPE_CHECKING

from corenet import __version__
from corenet.protocol import POOL_COUNTER_FACTS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.net import ListenAddress
    from corenet.proxy.counters import PoolStats

__all__ = ["pool_facts"]


def pool_facts(
    name: str, listen: ListenAddress, stats: PoolStats, accepted: int, uptime: float
) -> Mapping[str, object]:
    """The facts of :data:`corenet.protocol.POOL_FACTS` for one pool, now.

    Args:
        name: the pool's name.
        listen: where it accepts clients.
        stats: its counters.
        accepted: the client connections it has accepted since it started.
        uptime: seconds since the process's loop started.
    """
    facts: dict[str, object] = {
        "pool": name,
        "listen": str(listen),
        "port": listen.port if listen.path is None else 0,
        "process_id": os.getpid(),
        "uptime": int(uptime),
        "version": __version__,
        "client_connections": stats.client_connections,
        "total_connections": accepted,
    }
    facts.update((counter, getattr(stats, counter)) for counter in POOL_COUNTER_FACTS)
    return MappingProxyType(facts)
