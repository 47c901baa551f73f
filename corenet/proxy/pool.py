"""Server pools: servers, their connections, routing, ejection, stats.

A :class:`Pool` is built once from a :class:`~corenet.proxy.config.PoolConfig`:
it resolves its protocol, hash function and distribution from the plugin
registries there and binds them as plain callables, so routing a request
costs a hash-tag slice, one hash call and one dispatcher lookup.

Servers are kept in nutcracker's order (by name length, then name bytes),
which is what ``modula`` indexes into.  With ``auto_eject_hosts``, a server
whose connections fail ``server_failure_limit`` times in a row leaves the
distribution until ``server_retry_timeout`` has passed; the distribution is
then rebuilt over the live servers, as nutcracker does.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import time
from typing import TYPE_CHECKING

import attrs

from corenet.errors import ConfigError, PluginError
from corenet.event import EV_READ
from corenet.msg import ACTION_EVERY
from corenet.net import Listener, bind_listener, file_identity
from corenet.proxy.backends import SERVER_TLS_KEYS, Server, ServerChanges
from corenet.proxy.client import ClientConn, TLSClientConn, complete
from corenet.proxy.cluster import Cluster, key_slot
from corenet.proxy.config import pool_options
from corenet.proxy.counters import PoolStats, ServerStats
from corenet.proxy.naming import sort_key
from corenet.proxy.pinning import forward_beside_pin, forward_pinned, release_pin
from corenet.proxy.subscribers import close_streams, forward_streams
from corenet.proxy.tls import build_contexts, check_protocol
from corenet.proxy.validate import check_protocol_keys
from corenet.routing import Router

if TYPE_CHECKING:
    from corenet.loop import Loop
    from corenet.msg import Msg
    from corenet.net import ListenAddress
    from corenet.plugin import Plugins
    from corenet.protocol import Protocol
    from corenet.proxy.config import PoolConfig
    from corenet.proxy.latency import LatencyHistogram
    from corenet.proxy.server import ServerConn
    from corenet.timers import TimerHandle

__all__ = ["bind_pool", "Pool", "PoolStats", "Server", "ServerChanges", "ServerStats"]

logger = logging.getLogger("corenet.pool")


def bind_pool(config: PoolConfig, *, reuseport: bool = False) -> socket.socket:
    """A listening socket for ``config``'s ``listen`` address.

    Raises:
        OSError: it cannot be bound; the message names the pool and the address.
    """
    try:
        return bind_listener(config.listen, config.backlog, reuseport=reuseport)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OSError(
            exc.errno, f"pool {config.name}: cannot listen on {config.listen}: {reason}"
        ) from exc


class Pool:
    """A listener's worth of clients sharded over a list of servers."""

    def __init__(
        self, config: PoolConfig, plugins: Plugins, loop: Loop, *, read_size: int = 16384
    ) -> None:
        self.config = config
        self.read_size = read_size
        self.name = config.name
        self.loop = loop
        try:
            self.protocol: Protocol = plugins.protocols.get(config.protocol)
            hash_fn = plugins.hash_functions.get(config.hash)
            distribution = plugins.distributions.get(config.distribution)
        except PluginError as exc:
            raise ConfigError(f"pool '{config.name}' (line {config.line}): {exc}") from exc
        check_protocol_keys(config, self.protocol)
        check_protocol(config, self.protocol)
        self.tls = build_contexts(config)
        """The TLS contexts (see :mod:`corenet.proxy.tls`); a reload may replace them."""
        self.options = pool_options(config)
        """What the protocol's parsers see of this pool (read-only)."""
        self.timeout = config.timeout / 1000.0 if config.timeout is not None else None
        # How often each client's idle/request timeouts are checked (seconds),
        # or None when neither is set: half the shorter one.
        timeouts = [ms for ms in (config.client_idle_timeout, config.client_request_timeout) if ms]
        self.client_check_interval = min(timeouts) / 2000.0 if timeouts else None
        self.servers = [
            Server(self, s) for s in sorted(config.servers, key=lambda s: sort_key(s.name))
        ]
        self.router = Router(hash_fn, distribution, config.hash_tag, len(self.servers))
        self.index_of = self.router.index_of
        self.owners: list[Server] = []
        """The servers :attr:`index_of`'s values index: the live servers, or
        for a Redis Cluster pool the 16 384 slots' masters."""
        self.cluster = Cluster(self) if config.redis_cluster else None
        """The slot map of a Redis Cluster pool (corenet.proxy.cluster)."""
        self.stats = PoolStats()
        # Set by the proxy when /metrics is on; read on every reply.
        self.latency: LatencyHistogram | None = None
        self.clients: set[ClientConn] = set()
        self.pinned = 0
        """Dedicated server connections open (``max_pinned_connections`` bounds it)."""
        self.total_clients = 0  # also each new client's index
        self.live: list[Server] = []
        self._retry_timer: TimerHandle | None = None
        self.listener: Listener | None = None
        """Where clients are accepted, once :meth:`listen` has run."""
        self.read_only = getattr(self.protocol, "is_read_only", None)
        if config.read_from != "master" and self.read_only is not None:
            # Only pools that read from replicas pay for the check.
            self.forward = self._forward_read  # type: ignore[method-assign]
        self.rebuild()

    def __repr__(self) -> str:
        return f"<Pool {self.name}>"

    # -- reload ------------------------------------------------------------

    def adopt(self, new: Pool) -> ServerChanges:
        """Take ``new``'s configuration, keeping this pool's clients and every
        server whose name and address are unchanged (with its connections
        and ejection state).

        ``new`` is a pool built from the new configuration and never started:
        building it is what validates the configuration, so this only
        assigns.  Routing switches at once: requests parsed from now on use
        the new servers, hash and distribution; requests already sent
        complete where they went.  Removed servers, connections beyond a
        smaller ``server_connections``, and every connection when the
        protocol's set-up requests change (``redis_auth``, ``redis_db``) or
        the ``server_tls`` settings do, retire: they take no new requests
        and close once answered.  TLS certificates are read again (the new
        pool built them): new connections use them.
        """
        old_options = self.options
        variants = range(getattr(self.protocol, "variants", 1))
        handshake_changed = any(
            list(self.protocol.server_handshake(old_options, v))
            != list(new.protocol.server_handshake(new.options, v))
            for v in variants
        ) or any(
            # TLS to the servers turned on or off, or its settings changed:
            # connections made the old way are replaced too.
            getattr(self.config, key) != getattr(new.config, key)
            for key in SERVER_TLS_KEYS
        )
        changes = ServerChanges()
        if self.cluster is not None and new.cluster is not None:
            # The map names the nodes, not the file: only the seeds change.
            self.cluster.adopt(
                new.cluster,
                handshake_changed=handshake_changed,
                connections=new.config.server_connections,
            )
            changes.kept.extend(s.name for s in self.servers)
            servers = self.servers
        else:
            servers = self._adopt_servers(new, changes, handshake_changed=handshake_changed)
        self.config = new.config
        self.protocol = new.protocol
        self.options = new.options
        self.timeout = new.timeout
        self.client_check_interval = new.client_check_interval
        self.servers = servers
        self.router = new.router
        self.tls = new.tls  # certificates read again: new connections use them
        self.read_only = new.read_only
        if "forward" in vars(self):
            del self.forward  # back to the plain method, unless replicas are read
        if new.config.read_from != "master" and self.read_only is not None:
            self.forward = self._forward_read  # type: ignore[method-assign]
        for server in servers:
            for conn in server.conns:
                conn.timeout = self.timeout
        update = getattr(self.protocol, "update_request_parser", None)
        for client in self.clients:
            client.reconfigure()
            if update is not None:
                update(client.parser, self.options)
        self.rebuild()
        return changes

    def _adopt_servers(
        self, new: Pool, changes: ServerChanges, *, handshake_changed: bool
    ) -> list[Server]:
        """``new``'s servers, each kept from this pool when its name and
        address are unchanged (see :meth:`adopt`); ``changes`` says which."""
        # With Sentinel a server is its name: its address is Sentinel's to say.
        followed = bool(new.config.sentinels) and bool(self.config.sentinels)

        def identity(s: Server) -> object:
            return s.name if followed else (s.name, s.config.address)

        old_servers = {identity(s): s for s in self.servers}
        servers: list[Server] = []
        for fresh in new.servers:
            server = old_servers.pop(identity(fresh), None)
            if server is None:
                fresh.pool = self
                servers.append(fresh)
                changes.added.append(fresh.name)
                continue
            address = server.config.address if followed else fresh.config.address
            server.config = attrs.evolve(fresh.config, address=address)
            server.weight = fresh.weight
            if handshake_changed:
                server.retire()
            server.resize(new.config.server_connections)
            servers.append(server)
            changes.kept.append(server.name)
        for gone in old_servers.values():
            gone.retire()
            changes.removed.append(gone.name)
        return servers

    def move_server(self, name: str, address: ListenAddress, *, switch: bool = True) -> bool:
        """Serve server ``name`` from ``address`` from now on (a Sentinel failover).

        The server keeps its name, so its place on the ring and every key's
        placement stay as they are; its connections to the old address
        retire (requests already sent there get that server's reply or the
        usual connection error, never another request's), new requests
        connect to the new address.  Its failure and ejection state start
        afresh.  Returns whether anything changed.
        """
        server = next((s for s in self.servers if s.name == name), None)
        if server is None or server.config.address == address:
            return False
        old = server.config.address
        server.retire()
        server.replicas = []  # the new master was one; the next ask says who is left
        server.config = attrs.evolve(server.config, address=address)
        server.failures = 0
        server.ejected = False
        server.backoff = server.connect_after = 0.0
        if switch:
            server.switches += 1
            logger.warning(
                "pool %s: server %s moved from %s to %s (sentinel)", self.name, name, old, address
            )
        self.rebuild()
        return True

    # -- routing ---------------------------------------------------------

    def rebuild(self) -> None:
        """Recompute the live servers and the distribution over them."""
        if self.cluster is not None:
            # The cluster decides which node serves what (and fails over by
            # itself): no ejection, the map's masters are the live servers.
            self.live = self.cluster.masters
            self.owners = self.cluster.owners
            self.index_of = key_slot
            return
        now = time.monotonic()
        for server in self.servers:
            if server.ejected and server.next_retry <= now:
                server.ejected = False
                server.failures = 0
                server.connect_after = 0.0  # the retry is a real connect
        self.live = self.owners = [s for s in self.servers if not s.ejected]
        self.router.rebuild([(s.name, s.weight) for s in self.live])
        self.index_of = self.router.index_of
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        retries = [s.next_retry for s in self.servers if s.ejected]
        if retries:
            self._retry_timer = self.loop.timers.call_at(min(retries), self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        self.rebuild()

    def forward(self, msg: Msg, key: bytes, client: ClientConn) -> None:
        """Send ``client``'s single-server request, routed by ``key``, on its way."""
        owners = self.owners
        if not owners:
            self.unroutable(msg)
            return
        try:
            server = owners[self.index_of(key)]
        except Exception as exc:  # a hash or distribution plugin's bug
            self.plugin_failed(msg, exc)
            return
        # Server.conn_for's lookup, inlined; it still opens missing connections.
        conns = server.conn_sets[client.parser.variant]
        conn = conns[client.index % len(conns)]
        if conn is None:
            conn = server.conn_for(client.index, client.parser.variant)
            if conn is None:
                self._backing_off(msg, server, client.parser.variant)
                return
        conn.enqueue(msg)

    def _forward_read(self, msg: Msg, key: bytes, client: ClientConn) -> None:
        """``forward`` for ``read_from: replica``: read-only commands go to a replica."""
        assert self.read_only is not None
        owners = self.owners
        if owners and self.read_only(msg):
            try:
                master = owners[self.index_of(key)]
            except Exception as exc:  # a hash or distribution plugin's bug
                self.plugin_failed(msg, exc)
                return
            prefer = self.config.read_from == "prefer-replica"
            replica = master.replica_for(client.index, usable_only=prefer)
            if replica is not None:
                conn = replica.conn_for(client.index, client.parser.variant)
                if conn is not None:
                    conn.enqueue(msg)
                    return
                if not prefer:
                    self._backing_off(msg, replica, client.parser.variant)
                    return
        Pool.forward(self, msg, key, client)

    def set_replicas(self, name: str, addresses: list[ListenAddress]) -> None:
        """Server ``name``'s replicas are at ``addresses`` now (from Sentinel)."""
        server = next((s for s in self.servers if s.name == name), None)
        if server is None:
            return
        current = {r.config.address: r for r in server.replicas}
        if list(current) == addresses:
            return
        replicas = []
        for address in addresses:
            replica = current.pop(address, None)
            if replica is None:
                replica = Server(
                    self, attrs.evolve(server.config, address=address, name=f"{name}@{address}")
                )
            replicas.append(replica)
        for gone in current.values():
            gone.retire()
        server.replicas = replicas
        logger.info(
            "pool %s: server %s replicas: %s",
            self.name,
            name,
            ", ".join(map(str, addresses)) or "-",
        )

    def fanout(self, msg: Msg, client: ClientConn) -> None:
        """Split ``client``'s multi-key request across servers (or forward it whole)."""
        live = self.live
        if not live:
            self.unroutable(msg)
            return
        try:
            if msg.action == ACTION_EVERY:
                frags = self.protocol.fragment_every(msg, len(live))  # type: ignore[attr-defined]
            else:
                frags = self.protocol.fragment(msg, self.index_of)
                live = self.owners
        except Exception as exc:  # a plugin's bug: answer this request, keep the client
            self.plugin_failed(msg, exc)
            return
        if not frags:  # answered by the protocol itself (CROSSSLOT)
            complete(msg, msg.reply or self.protocol.error_reply("no server for the request"))
            return
        client_index = client.index
        variant = client.parser.variant
        if len(frags) > 1:
            self.stats.fragments += len(frags)
        pin = client.pin
        for index, frag in frags:
            server = live[index]
            if (
                pin is not None
                and pin.conn is not None
                and server is pin.server
                and pin.conn.variant == variant
            ):
                conn: ServerConn | None = pin.conn  # in order with the pinned requests
            else:
                conn = server.conn_for(client_index, variant)
            if conn is None:
                self._backing_off(frag, server, variant)
            else:
                conn.enqueue(frag)

    def forward_pinned(self, msg: Msg, client: ClientConn) -> bool:
        """Send an ``ACTION_PIN`` request on ``client``'s own connection, or
        return False: it waits for the client's earlier requests (pinning)."""
        if msg.info.reply:  # (un)subscriptions: on the subscriber connections
            forward_streams(self, msg, client)
            return True
        return forward_pinned(self, msg, client)

    def forward_beside_pin(self, msg: Msg, client: ClientConn) -> None:
        """Send a pinned client's plain request (pinning)."""
        forward_beside_pin(self, msg, client)

    def _backing_off(self, msg: Msg, server: Server, variant: int) -> None:
        cluster = self.cluster
        if cluster is not None and cluster.retry_later(msg, server, variant):
            # The cluster may be failing the node over: try again by the new map.
            cluster.node_failed(server)
            return
        self.forward_failed(msg, server.connect_reason)
        # Each request refused this way is a failure too, so auto_eject_hosts
        # takes the server out instead of failing requests until the back-off ends.
        self.server_failed(server, server.connect_error)

    def plugin_failed(self, msg: Msg, exc: Exception) -> None:
        """Answer ``msg`` with an error: routing it raised in a plugin."""
        logger.error("pool %s: routing a request failed in a plugin: %r", self.name, exc)
        self.forward_failed(msg, "routing failed in a plugin")

    def unroutable(self, msg: Msg) -> None:
        """Answer ``msg`` with an error: no server is live."""
        self.forward_failed(msg, os.strerror(errno.ECONNREFUSED))

    def forward_failed(self, msg: Msg, reason: str) -> None:
        """Answer ``msg`` with the error ``reason``, counted in ``forward_error``."""
        self.stats.forward_error += 1
        # A request sent with noreply was answered (with nothing) when parsed.
        if msg.expect_reply:
            complete(msg, self.protocol.error_reply(reason))

    # -- failures ----------------------------------------------------------

    def server_failed(self, server: Server, err: int) -> None:
        """A connection to ``server`` failed; count it and maybe eject it."""
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "pool %s: server %s: %s", self.name, server.name, errno.errorcode.get(err, err)
            )
        if self.cluster is not None:
            self.cluster.node_failed(server)
            return
        if not self.config.auto_eject_hosts:
            return
        server.failures += 1
        if server.failures < self.config.server_failure_limit or server.ejected:
            return
        server.ejected = True
        server.next_retry = time.monotonic() + self.config.server_retry_timeout / 1000.0
        server.stats.server_ejected_at = int(time.time() * 1_000_000)
        self.stats.server_ejects += 1
        logger.warning(
            "pool %s: ejecting server %s for %d ms after %d failures",
            self.name,
            server.name,
            self.config.server_retry_timeout,
            server.failures,
        )
        self.rebuild()

    # -- clients -----------------------------------------------------------

    def accept(self, sock: socket.socket) -> None:
        """Adopt a freshly accepted client socket."""
        limit = self.config.client_connections
        if limit and len(self.clients) >= limit:
            self._refuse(sock)
            return
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.total_clients += 1
        parser = self.protocol.new_request_parser(self.options)
        tls = self.tls.accept
        conn: ClientConn
        if tls is None:
            conn = ClientConn(self.loop, self, sock, parser, self.total_clients)
        else:
            tls_conn = TLSClientConn(self.loop, self, sock, parser, self.total_clients)
            tls_conn.start_tls(tls, server_side=True, timeout=self.tls.handshake_timeout)
            conn = tls_conn
        conn.read_size = self.read_size
        conn.register(EV_READ)
        self.clients.add(conn)
        self.stats.client_connections = len(self.clients)

    def listen(
        self,
        *,
        sock: socket.socket | None = None,
        reuseport: bool = False,
        unix_identity: tuple[int, int] | None = None,
    ) -> Listener:
        """Start accepting clients on this pool's ``listen`` address (or the
        bound, listening ``sock``, whose socket file stays its owner's unless
        ``unix_identity`` says it is ours).

        Raises:
            OSError: the address cannot be bound; the message names pool and address.
        """
        address = self.config.listen
        identity = unix_identity
        if sock is None:
            sock = bind_pool(self.config, reuseport=reuseport)
            if address.path is not None:
                identity = file_identity(address.path)
        else:
            sock.setblocking(False)
        listener = Listener(
            self.loop,
            sock,
            self.accept,
            name=f"pool {self.name}",
            unix_identity=identity,
            path=address.path,
        )
        listener.on_shed = self.shed
        listener.register(EV_READ)
        self.listener = listener
        return listener

    def shed(self, count: int) -> None:
        # Clients turned away for lack of descriptors count as client errors.
        self.stats.client_err += count

    def _refuse(self, sock: socket.socket) -> None:
        # nutcracker ignores client_connections; we enforce it, with a reply.
        try:
            sock.setblocking(False)
            sock.send(self.protocol.error_reply("max number of clients reached"))
        except OSError:
            pass
        sock.close()
        self.stats.client_err += 1

    def client_closed(self, conn: ClientConn) -> None:
        if conn.pin is not None:
            release_pin(conn)
        if conn.streams:
            close_streams(conn)
        self.clients.discard(conn)
        self.stats.client_connections = len(self.clients)

    def preconnect(self) -> None:
        default_variant = getattr(self.protocol, "default_variant", None)
        variant = default_variant(self.options) if default_variant is not None else 0
        for server in self.servers:
            for slot in range(self.config.server_connections):
                server.conn_for(slot, variant)

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        for server in self.servers:
            server.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
