"""Redis Cluster pools: the cluster's slots route the keys, redirections stay inside.

A pool with ``redis_cluster: true`` treats its ``servers`` as seed nodes of
one cluster.  A key's slot is Redis's ``CRC16(key) mod 16384`` (of the part
in ``{}`` when there is one, as :func:`key_slot` computes it), and the
pool's routing table maps each of the 16 384 slots to the master that
serves it: :attr:`Cluster.owners`, indexed by the slot, is what the pool's
key lookup indexes, so a request costs one CRC and one list index, and a
multi-key request is split per *slot* (each piece is then legal in the
cluster) by the same fragment code as a hashed pool.

The map is read with ``CLUSTER SLOTS`` on one of the pool's own connections
(so it uses the pool's ``redis_auth`` and TLS settings): when the pool
starts, every :data:`REFRESH_EVERY` seconds, after a ``MOVED``, after a
``CLUSTERDOWN`` and when a node's connection fails; at most one query is in
flight, and a query that gets no answer in :data:`QUERY_TIMEOUT` is tried on
the next node.  A new map replaces the table in one assignment; nodes that
are new get connections on demand, nodes that left retire (their requests
in flight are answered, then they close).

Replies pass through :meth:`Cluster.reply` before they reach a client:

``MOVED slot host:port``
    the slot's owner changed: the table says so at once, a refresh is asked
    for, and the request goes to the new owner;
``ASK slot host:port``
    the slot is being migrated and this key is already on the importing
    node: ``ASKING`` and the request go there, for this request only;
``TRYAGAIN``, ``CLUSTERDOWN``
    resharding or failing over: the request is sent again after a short
    back-off (:data:`RETRY_DELAYS`), by the map as it is then.

A request that could not be *sent* because its node cannot be reached (a
master killed and not yet failed over) is retried the same way; one that was
sent and lost its connection before the answer is not (it may have been
carried out), and gets the connection's error.  Retries last as long as the
pool's ``timeout`` allows (:data:`RETRY_BUDGET` without one), counted from
when the request was read; then the client gets the cluster's own error (or
the connection's).  A request is redirected or retried at most
:data:`MAX_HOPS` times.  Requests on a client's dedicated connection (a
transaction, a blocking pop, a subscription) are not redirected: the state
lives on that connection, so the client sees the cluster's ``MOVED`` there,
as a cluster client would.
"""

from __future__ import annotations

import logging
import socket
from binascii import crc_hqx
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
import hiredis

from corenet.msg import Msg
from corenet.net import ListenAddress
from corenet.proxy.backends import Server, ServerOwner
from corenet.proxy.client import complete
from corenet.proxy.config import ServerConfig
from corenet.proxy.control import read_replies, redis_command
from corenet.proxy.naming import sort_key
from corenet.proxy.tls import build_contexts

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from corenet.proxy.config import PoolConfig
    from corenet.proxy.server import ServerConn
    from corenet.timers import TimerHandle

__all__ = [
    "MAX_HOPS",
    "RETRY_BUDGET",
    "QUERY_TIMEOUT",
    "REFRESH_EVERY",
    "RETRY_DELAYS",
    "SLOTS",
    "Cluster",
    "ClusterPool",
    "SlotRange",
    "ask_slots",
    "cluster_watches",
    "key_slot",
    "parse_slots",
]

logger = logging.getLogger("corenet.cluster")

SLOTS = 16384
REFRESH_EVERY = 5.0
"""Seconds between two map refreshes when nothing asks for one sooner."""
REFRESH_GAP = 0.1
"""A burst of ``MOVED`` (a reshard) asks for the map at most this often (seconds)."""
QUERY_TIMEOUT = 2.0
"""Seconds a node may take to answer ``CLUSTER SLOTS`` before the next is asked."""
MAX_HOPS = 32
"""Redirections and retries of one request, at most (a cluster that keeps
redirecting is misconfigured: the client is told so)."""
RETRY_DELAYS = (0.01, 0.02, 0.05, 0.1, 0.2)
"""Seconds before each new try of a request (the last repeats)."""
RETRY_BUDGET = 1.0
"""Seconds a request may spend on retries when the pool has no ``timeout``."""

_CLUSTER_SLOTS = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"
_ASKING = b"*1\r\n$6\r\nASKING\r\n"
_READONLY = b"*1\r\n$8\r\nREADONLY\r\n"
_TOO_MANY = b"-ERR too many Redis Cluster redirections (last: %s)\r\n"


def key_slot(key: bytes) -> int:
    """The cluster slot of ``key``, as Redis's ``keyHashSlot``: the CRC16
    (XMODEM) of the bytes between the first ``{`` and the first ``}`` after
    it when at least one byte is between them, else of the whole key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) & 0x3FFF


@attrs.frozen
class SlotRange:
    """Slots ``first..last`` (inclusive), their master and its replicas."""

    first: int
    last: int
    master: ListenAddress
    replicas: tuple[ListenAddress, ...] = ()


def parse_slots(reply: Any, default_host: str) -> list[SlotRange] | None:
    """A ``CLUSTER SLOTS`` reply (as hiredis decodes it) as slot ranges, or
    None when it is not one.  A node without an address of its own (an
    empty or ``?`` host) is on ``default_host``, the node that answered."""
    if not isinstance(reply, list):
        return None
    ranges: list[SlotRange] = []
    for entry in reply:
        if not isinstance(entry, list) or len(entry) < 3:
            return None
        first, last = entry[0], entry[1]
        if not (isinstance(first, int) and isinstance(last, int) and 0 <= first <= last < SLOTS):
            return None
        nodes = [_node_address(node, default_host) for node in entry[2:]]
        master = nodes[0]
        if master is None:
            return None
        replicas = tuple(node for node in nodes[1:] if node is not None)
        ranges.append(SlotRange(first, last, master, replicas))
    return ranges


def _node_address(node: Any, default_host: str) -> ListenAddress | None:
    if not isinstance(node, list) or len(node) < 2:
        return None
    host, port = node[0], node[1]
    if not isinstance(host, bytes) or not isinstance(port, int) or not 0 < port < 65536:
        return None
    text = host.decode("utf-8", "replace")
    return ListenAddress(host=text if text not in ("", "?") else default_host, port=port)


def _redirect_address(where: bytes, default_host: str) -> ListenAddress | None:
    """``host:port`` of a ``MOVED``/``ASK`` error (an empty host: the node that said it)."""
    host, sep, port = where.rpartition(b":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    text = host.decode("utf-8", "replace").strip("[]")
    return ListenAddress(host=text if text not in ("", "?") else default_host, port=int(port))


class ClusterPool(ServerOwner, Protocol):
    """What a cluster needs of its pool (:class:`corenet.proxy.pool.Pool`)."""

    servers: list[Server]

    def rebuild(self) -> None: ...

    def forward_failed(self, msg: Msg, reason: str) -> None: ...


class Cluster:
    """The slot map of one pool's cluster, and what follows its changes."""

    def __init__(self, pool: ClusterPool) -> None:
        self.pool = pool
        self.seeds: list[ListenAddress] = [s.config.address for s in pool.servers]
        """Where the first map is asked for (and any later one, when no node answers)."""
        self.nodes: dict[tuple[ListenAddress, bool], Server] = {}
        """Every node of the map by ``(address, is a replica)``."""
        for address in self.seeds:
            self._node(address, replica=False, into=self.nodes)
        self._seed_servers = dict(self.nodes)
        """The seeds' nodes, kept to ask for the map when no master answers."""
        self.masters: list[Server] = list(self.nodes.values())
        self.owners: list[Server] = [self.masters[0]] * SLOTS
        """The master serving each slot: the seed until a map says otherwise
        (then a request there is answered ``MOVED`` and follows it)."""
        self._query: Msg | None = None
        self._query_node: Server | None = None
        self._query_timer: TimerHandle | None = None
        self._refresh_timer: TimerHandle | None = None
        self._soon_timer: TimerHandle | None = None
        self._last_query = float("-inf")
        self._next = 0
        self.started = False
        pool.servers[:] = self.masters

    def __repr__(self) -> str:
        return f"<Cluster of {self.pool.name}: {len(self.masters)} masters>"

    # -- nodes -------------------------------------------------------------

    def _node(
        self,
        address: ListenAddress,
        *,
        replica: bool,
        into: dict[tuple[ListenAddress, bool], Server],
    ) -> Server:
        """The node at ``address`` in this role: the one known, else a new one."""
        key = (address, replica)
        server = self.nodes.get(key) or into.get(key)
        if server is None:
            name = f"{address.host}:{address.port}"
            config = ServerConfig(address=address, weight=1, name=name, spec=name)
            server = Server(self.pool, config)
            server.reply_hook = self.reply
            server.retry_hook = self._unsent
            if replica:
                # Reads on a replica's connections: the cluster refuses them
                # (MOVED to the master) unless the connection said READONLY.
                server.setup = (_READONLY,)
        into[key] = server
        return server

    def apply(self, ranges: Sequence[SlotRange]) -> None:
        """Serve the slots as ``ranges`` say from now on."""
        nodes: dict[tuple[ListenAddress, bool], Server] = {}
        owners: list[Server | None] = [None] * SLOTS
        masters: dict[Server, None] = {}
        replicas: dict[Server, list[Server]] = {}
        for span in ranges:
            master = self._node(span.master, replica=False, into=nodes)
            masters[master] = None
            known = replicas.setdefault(master, [])
            for address in span.replicas:
                replica = self._node(address, replica=True, into=nodes)
                if replica not in known:
                    known.append(replica)
            owners[span.first : span.last + 1] = [master] * (span.last - span.first + 1)
        if not masters:
            logger.warning("pool %s: the cluster serves no slot; keeping the map", self.pool.name)
            return
        ordered = sorted(masters, key=lambda s: sort_key(s.name))
        # A slot no master serves: its requests go to some master, which
        # answers CLUSTERDOWN, as the cluster would answer a cluster client.
        fallback = ordered[0]
        table = [owner if owner is not None else fallback for owner in owners]
        for server in ordered:
            server.replicas = replicas[server]
            server.slots = 0
        for owner in owners:
            if owner is not None:
                owner.slots += 1
        for key, server in self.nodes.items():
            if key not in nodes:
                server.retire()
        changed = ordered != self.masters
        self.nodes = nodes
        self.masters = ordered
        self.owners = table
        self.pool.servers[:] = ordered
        self.pool.rebuild()
        if changed:
            logger.info(
                "pool %s: cluster masters: %s",
                self.pool.name,
                ", ".join(f"{s.name} ({s.slots} slots)" for s in ordered),
            )

    # -- replies -----------------------------------------------------------

    def reply(self, conn: ServerConn, msg: Msg, reply: bytes) -> None:
        """A node's reply to ``msg``: to its client, unless it redirects."""
        if msg is self._query:
            self._answered(conn, reply)
            return
        if (
            reply[0] == 45  # "-": errors only; MOVED and friends are simple errors
            and conn.pinned_by is None
            and conn.push_to is None
            and (msg.client is not None or msg.parent is not None)
            and self._redirect(conn, msg, reply)
        ):
            return
        complete(msg, reply)

    def _redirect(self, conn: ServerConn, msg: Msg, reply: bytes) -> bool:
        word, _, rest = reply[1:-2].partition(b" ")
        stats = self.pool.stats
        if word == b"MOVED" or word == b"ASK":
            slot_text, _, where = rest.partition(b" ")
            address = _redirect_address(where, conn.server.config.address.host or "")
            if address is None or not slot_text.isdigit() or int(slot_text) >= SLOTS:
                return False
            hops: int = getattr(msg, "hops", 0)
            if hops >= MAX_HOPS:
                complete(msg, _TOO_MANY % reply[1:-2])
                return True
            msg.hops = hops + 1
            # Known from now on (until the next map), as the master it names.
            node = self._node(address, replica=False, into=self.nodes)
            if word == b"MOVED":
                stats.cluster_moved += 1
                self.owners[int(slot_text)] = node
                self.refresh_soon()
                self._send(msg, node, conn.variant, asking=False)
            else:
                stats.cluster_ask += 1
                self._send(msg, node, conn.variant, asking=True)
            return True
        if word == b"TRYAGAIN" or word == b"CLUSTERDOWN":
            if word == b"CLUSTERDOWN":
                self.refresh_soon()
            # False: the time is spent; the client gets the cluster's own error.
            return self.retry_later(msg, cast("Server", conn.server), conn.variant)
        return False

    def retry_later(self, msg: Msg, server: Server, variant: int) -> bool:
        """Send ``msg`` again after a back-off, by the map as it is then
        (``server`` for a keyless request), if the request's time allows.

        For a request the cluster asked to repeat, and for one that was
        never sent because ``server`` cannot be reached (a master that died
        and is being failed over): a request that *was* sent and got no
        answer is never repeated, as it may have been carried out.
        """
        if msg.client is None and msg.parent is None:
            return False  # the proxy's own request (a set-up or a map query)
        hops: int = getattr(msg, "hops", 0)
        delay = RETRY_DELAYS[min(hops, len(RETRY_DELAYS) - 1)]
        loop = self.pool.loop
        started = (msg.parent or msg).start_time
        if hops >= MAX_HOPS or loop.now + delay > started + (self.pool.timeout or RETRY_BUDGET):
            return False
        msg.hops = hops + 1
        self.pool.stats.cluster_retries += 1
        loop.timers.call_later(delay, self._retry, msg, server, variant)
        return True

    def _unsent(self, conn: ServerConn, msg: Msg) -> bool:
        """``msg`` was never written to ``conn``, which failed: retry it."""
        return self.retry_later(msg, cast("Server", conn.server), conn.variant)

    def _retry(self, msg: Msg, server: Server, variant: int) -> None:
        if msg.done:  # answered meanwhile (the client's connection closed)
            return
        key = msg.key if msg.key is not None else (msg.keys[0] if msg.keys else None)
        # By the map as it is now (a failover may have moved the slot);
        # a keyless request (one server's part of DBSIZE) to the same node.
        node = self.owners[key_slot(key)] if key is not None else server
        self._send(msg, node, variant, asking=False)

    def _send(self, msg: Msg, node: Server, variant: int, *, asking: bool) -> None:
        """Send ``msg`` to ``node``, on the connection its client uses there."""
        client = msg.client if msg.parent is None else msg.parent.client
        target = node.conn_for(client.index if client is not None else 0, variant)
        if target is None:  # the node's reconnect is backing off
            self.node_failed(node)
            if not self.retry_later(msg, node, variant):
                self.pool.forward_failed(msg, node.connect_reason)
            return
        if asking:
            target.enqueue(Msg(_ASKING, len(_ASKING)))
        target.enqueue(msg)

    # -- the map -----------------------------------------------------------

    def start(self) -> Cluster:
        """Read the map now and every :data:`REFRESH_EVERY` seconds."""
        self.started = True
        self._refresh_timer = self.pool.loop.timers.call_later(REFRESH_EVERY, self._periodic)
        self.refresh()
        return self

    def _periodic(self) -> None:
        self._refresh_timer = self.pool.loop.timers.call_later(REFRESH_EVERY, self._periodic)
        self.refresh()

    def refresh_soon(self) -> None:
        """Ask for the map again, no sooner than :data:`REFRESH_GAP` after the last ask."""
        if not self.started or self._soon_timer is not None or self._query is not None:
            return
        loop = self.pool.loop
        wait = self._last_query + REFRESH_GAP - loop.now
        if wait <= 0:
            self.refresh()
        else:
            self._soon_timer = loop.timers.call_later(wait, self._soon)

    def _soon(self) -> None:
        self._soon_timer = None
        self.refresh()

    def node_failed(self, server: Server) -> None:
        """A node's connection failed: the cluster may be failing it over."""
        if self._query is not None and self._query_node is server:
            # The failed connection took the query with it: ask another now.
            self._unanswered(self._query)
        self.refresh_soon()

    def refresh(self) -> None:
        """Ask one node for the map (unless a query is in flight)."""
        if not self.started or self._query is not None:
            return
        loop = self.pool.loop
        nodes = [*self.masters, *self._seed_nodes()]
        # Not a node whose connections fail right now (a killed master the
        # map still names): its answer is the one that cannot come.
        candidates = [s for s in nodes if s.connect_after <= loop.now] or nodes
        node = candidates[self._next % len(candidates)]
        self._next += 1
        conn = node.conn_for(0, 0)
        self._last_query = loop.now
        if conn is None:  # backing off: the next one, after the gap
            self.pool.stats.cluster_refresh_errors += 1
            self._soon_timer = loop.timers.call_later(REFRESH_GAP, self._soon)
            return
        query = Msg(_CLUSTER_SLOTS, len(_CLUSTER_SLOTS))
        self._query = query
        self._query_node = node
        self._query_timer = loop.timers.call_later(QUERY_TIMEOUT, self._unanswered, query)
        conn.enqueue(query)

    def _seed_nodes(self) -> list[Server]:
        return [self._node(a, replica=False, into=self._seed_servers) for a in self.seeds]

    def _unanswered(self, query: Msg) -> None:
        # The node did not answer (down, or its connection failed and took
        # the query with it): ask the next.
        if query is not self._query:
            return
        self._query_timer = None
        self._query = None
        self.pool.stats.cluster_refresh_errors += 1
        self.refresh_soon()

    def _answered(self, conn: ServerConn, reply: bytes) -> None:
        if self._query_timer is not None:
            self._query_timer.cancel()
            self._query_timer = None
        self._query = None
        reader = hiredis.Reader()
        reader.feed(reply)
        decoded = reader.gets()
        ranges = parse_slots(decoded, conn.server.config.address.host or "")
        if ranges is None:
            self.pool.stats.cluster_refresh_errors += 1
            logger.warning(
                "pool %s: node %s cannot say the cluster's slots: %s",
                self.pool.name,
                conn.server.name,
                decoded if isinstance(decoded, hiredis.ReplyError) else "unexpected reply",
            )
            self.refresh_soon()
            return
        self.pool.stats.cluster_refreshes += 1
        self.apply(ranges)

    # -- reload and close --------------------------------------------------

    def adopt(self, new: Cluster, *, handshake_changed: bool, connections: int) -> None:
        """Take ``new``'s seeds (a reload); the nodes and map stay, their
        connections are replaced when ``handshake_changed`` and kept to
        ``connections`` per variant."""
        self.seeds = new.seeds
        for server in {*self.nodes.values(), *self._seed_servers.values()}:
            if handshake_changed:
                server.retire()
            server.resize(connections)

    def stop(self) -> None:
        """Stop refreshing the map (a reload restarts it)."""
        self.started = False
        for timer in (self._refresh_timer, self._soon_timer, self._query_timer):
            if timer is not None:
                timer.cancel()
        self._refresh_timer = self._soon_timer = self._query_timer = None
        self._query = None

    def close(self) -> None:
        """Stop refreshing; close every node's connections (the pool is closing)."""
        self.stop()
        for server in {*self.nodes.values(), *self._seed_servers.values()}:
            server.close()


class _Following:
    """A started cluster as the proxy's watchers see it: closing it stops the
    refreshes, not the pool."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster.start()

    def close(self) -> None:
        self.cluster.stop()


class _MaybeCluster(Protocol):
    cluster: Cluster | None


def cluster_watches(pools: Iterable[_MaybeCluster]) -> list[_Following]:
    """Start following the map of every cluster pool of ``pools``."""
    return [_Following(pool.cluster) for pool in pools if pool.cluster is not None]


def ask_slots(
    config: PoolConfig, timeout: float = 1.0
) -> tuple[list[SlotRange] | None, ListenAddress | None]:
    """The cluster's slots as the first seed of ``config`` that answers says
    them, and which seed that was (blocking; for ``--explain``)."""
    tls = build_contexts(config)
    requests = []
    if config.redis_auth is not None:
        requests.append(redis_command(b"AUTH", config.redis_auth.encode()))
    requests.append(_CLUSTER_SLOTS)
    for server in config.servers:
        address = server.address
        try:
            with socket.create_connection((address.host, address.port), timeout=timeout) as raw:
                sock = raw
                if tls.connect is not None:
                    sock = tls.connect.wrap_socket(raw, server_hostname=tls.hostname(server))
                sock.sendall(b"".join(requests))
                replies = read_replies(sock, len(requests))
        except OSError as exc:
            logger.warning("pool %s: seed %s: %s", config.name, address, exc)
            continue
        ranges = parse_slots(replies[-1], address.host or "")
        if ranges is not None:
            return ranges, address
    return None, None
