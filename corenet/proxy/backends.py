"""A pool's servers: one backend each, its connections, its failure state.

A :class:`Server` holds ``server_connections`` connections per protocol
variant (Redis: RESP2 and RESP3 clients never share one), its reconnect
back-off, nutcracker's per-server counters, and, for a pool that follows
Sentinel, its replicas.  The pool owns the servers and routes to them.
"""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Protocol

import attrs

from corenet.proxy.counters import ServerStats
from corenet.proxy.pinning import pin_lost
from corenet.proxy.server import BackendOwner, ServerConn, TLSServerConn
from corenet.proxy.subscribers import stream_lost

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop
    from corenet.msg import Msg
    from corenet.proxy.config import ServerConfig


class ServerOwner(BackendOwner, Protocol):
    """What a server needs of its pool (:class:`corenet.proxy.pool.Pool`)."""

    loop: Loop
    pinned: int


__all__ = ["SERVER_TLS_KEYS", "Server", "ServerChanges", "ServerOwner"]


@attrs.define
class ServerChanges:
    """What :meth:`Pool.adopt` did to a pool's servers, by name."""

    added: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    kept: list[str] = attrs.field(factory=list)


SERVER_TLS_KEYS = (
    "server_tls",
    "server_tls_ca",
    "server_tls_cert",
    "server_tls_key",
    "server_tls_sni",
    "server_tls_verify",
    "server_tls_protocols",
    "server_tls_ciphers",
)
"""The pool keys that change how server connections are made."""


class Server:
    """One backend of a pool and its connections (``server_connections`` of them)."""

    def __init__(self, pool: ServerOwner, config: ServerConfig) -> None:
        self.pool = pool
        self.config = config
        self.name = config.name
        self.weight = config.weight
        # One set of connections per protocol variant (Redis: RESP2, RESP3),
        # each of ``server_connections`` connections.
        variants = getattr(pool.protocol, "variants", 1)
        self.conn_sets: list[list[ServerConn | None]] = [
            [None] * pool.config.server_connections for _ in range(variants)
        ]
        self.failures = 0
        self.next_retry = 0.0
        self.ejected = False
        self.stats = ServerStats()
        self.total_connections = 0
        # Reconnect back-off: after a failed connect, new connects wait
        # (50 ms doubling to 500 ms), and requests meanwhile fail at once
        # with the connect error, so a dead server costs no connect storm.
        self.backoff = 0.0
        self.connect_after = 0.0
        self.connect_error = 0
        self.switches = 0
        """Times Sentinel moved this server to another address."""
        self.replicas: list[Server] = []
        """Its replicas, as Sentinel or the cluster's map lists them (``read_from``);
        not on the ring."""
        self.slots = 0
        """Cluster slots this master serves (Redis Cluster pools)."""
        self.connect_reason = ""
        self.setup: tuple[bytes, ...] = ()
        """Requests each new connection sends after the protocol's handshake
        (a Redis Cluster replica's ``READONLY``)."""
        self.reply_hook: Callable[[ServerConn, Msg, bytes], None] | None = None
        """Where this server's replies go instead of straight to their
        clients (a Redis Cluster node's redirections, corenet.proxy.cluster)."""
        self.retry_hook: Callable[[ServerConn, Msg], bool] | None = None
        """True if it takes a request a connection of this server failed
        before sending (a Redis Cluster node's, corenet.proxy.cluster)."""
        self.dedicated: set[ServerConn] = set()
        """Connections of one client's own (corenet.proxy.pinning), busy or idle."""
        self.idle_dedicated: list[ServerConn] = []

    def __repr__(self) -> str:
        return f"<Server {self.name} of {self.pool.name}>"

    def conn_for(self, client_index: int, variant: int = 0) -> ServerConn | None:
        """The connection a client's requests use: one per client, so a
        client's requests to this server stay in order.  None while a
        reconnect is backing off (``connect_error`` says why)."""
        conns = self.conn_sets[variant]
        slot = client_index % len(conns)
        conn = conns[slot]
        if conn is None:
            conn = self._connect(variant)
            if conn is not None:
                conns[slot] = conn
        return conn

    def connect_dedicated(self, variant: int) -> ServerConn | None:
        """A new connection outside the shared sets, for one client's pin
        (None while a reconnect is backing off)."""
        conn = self._connect(variant)
        if conn is not None:
            self.dedicated.add(conn)
            self.pool.pinned += 1
        return conn

    def _connect(self, variant: int) -> ServerConn | None:
        pool = self.pool
        if self.connect_after and pool.loop.now < self.connect_after:
            return None
        # Looked up per connect, so a reload that swaps pool.tls takes effect.
        kind = ServerConn if pool.tls.connect is None else TLSServerConn
        conn = kind.connect(pool.loop, pool, self, pool.protocol.new_reply_parser(), variant)
        if self.reply_hook is not None:
            conn.on_reply = partial(self.reply_hook, conn)
        if self.retry_hook is not None:
            conn.on_unsent = partial(self.retry_hook, conn)
        self.total_connections += 1
        return conn

    @property
    def conns(self) -> list[ServerConn]:
        """Every open connection to this server."""
        shared = [c for conns in self.conn_sets for c in conns if c is not None]
        return shared + list(self.dedicated) if self.dedicated else shared

    def connect_failed(self, err: int, reason: str | None = None) -> None:
        self.backoff = min(max(self.backoff * 2, 0.05), 0.5)
        self.connect_after = self.pool.loop.now + self.backoff
        self.connect_error = err
        self.connect_reason = reason or os.strerror(err)

    def connect_succeeded(self) -> None:
        self.backoff = 0.0
        self.connect_after = 0.0

    def conn_closed(self, conn: ServerConn) -> None:
        if conn in self.dedicated:
            self.dedicated.discard(conn)
            if conn in self.idle_dedicated:
                self.idle_dedicated.remove(conn)
            self.pool.pinned -= 1
            pin_lost(conn)
            stream_lost(conn)
            return
        conns = self.conn_sets[conn.variant]
        for i, c in enumerate(conns):
            if c is conn:
                conns[i] = None

    def queues(self) -> tuple[int, int, int, int]:
        """``in_queue, in_queue_bytes, out_queue, out_queue_bytes`` over all connections."""
        iq = iqb = oq = oqb = 0
        for conn in self.conns:
            iq += len(conn.in_q)
            iqb += sum(len(m.data) for m in conn.in_q)
            oq += len(conn.out_q)
            oqb += sum(len(m.data) for m in conn.out_q)
        return iq, iqb, oq, oqb

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        for replica in self.replicas:
            replica.close()

    def replica_for(self, client_index: int, *, usable_only: bool) -> Server | None:
        """The replica a client's reads go to (spread by client), or None."""
        replicas = self.replicas
        if usable_only:
            now = self.pool.loop.now
            replicas = [r for r in replicas if not r.ejected and r.connect_after <= now]
        return replicas[client_index % len(replicas)] if replicas else None

    def retire(self) -> None:
        """Leave the pool: every connection closes once its requests are answered."""
        for replica in self.replicas:
            replica.retire()
        for dedicated in list(self.dedicated):
            dedicated.retire()
        for conns in self.conn_sets:
            for slot, conn in enumerate(conns):
                if conn is not None:
                    conns[slot] = None
                    conn.retire()

    def resize(self, per_variant: int) -> None:
        """Use ``per_variant`` connections per variant; extra ones retire."""
        for conns in self.conn_sets:
            for conn in conns[per_variant:]:
                if conn is not None:
                    conn.retire()
            del conns[per_variant:]
            conns.extend([None] * (per_variant - len(conns)))
