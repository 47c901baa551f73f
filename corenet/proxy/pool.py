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

from corenet.errors import ConfigError, PluginError
from corenet.event import EV_READ
from corenet.net import Listener, bind_listener, file_identity
from corenet.proxy.client import ClientConn, TLSClientConn, complete
from corenet.proxy.config import check_extra_keys, pool_options
from corenet.proxy.counters import PoolStats, ServerStats
from corenet.proxy.naming import sort_key
from corenet.proxy.server import ServerConn, TLSServerConn
from corenet.proxy.tls import build_contexts, check_protocol
from corenet.routing import Router

if TYPE_CHECKING:
    from corenet.loop import Loop
    from corenet.msg import Msg
    from corenet.plugin import Plugins
    from corenet.protocol import Protocol
    from corenet.proxy.config import PoolConfig, ServerConfig
    from corenet.proxy.latency import LatencyHistogram
    from corenet.timers import TimerHandle

__all__ = ["bind_pool", "Pool", "PoolStats", "Server", "ServerStats"]

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


class Server:
    """One backend of a pool and its connections (``server_connections`` of them)."""

    def __init__(self, pool: Pool, config: ServerConfig) -> None:
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
        self.connect_reason = ""

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
            pool = self.pool
            if self.connect_after and pool.loop.now < self.connect_after:
                return None
            # Looked up per connect, so a reload that swaps pool.tls takes effect.
            kind = ServerConn if pool.tls.connect is None else TLSServerConn
            conn = kind.connect(pool.loop, pool, self, pool.protocol.new_reply_parser(), variant)
            conns[slot] = conn
            self.total_connections += 1
        return conn

    @property
    def conns(self) -> list[ServerConn]:
        """Every open connection to this server."""
        return [c for conns in self.conn_sets for c in conns if c is not None]

    def connect_failed(self, err: int, reason: str | None = None) -> None:
        self.backoff = min(max(self.backoff * 2, 0.05), 0.5)
        self.connect_after = self.pool.loop.now + self.backoff
        self.connect_error = err
        self.connect_reason = reason or os.strerror(err)

    def connect_succeeded(self) -> None:
        self.backoff = 0.0
        self.connect_after = 0.0

    def conn_closed(self, conn: ServerConn) -> None:
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
        check_extra_keys(config, getattr(self.protocol, "pool_keys", ()))
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
        self.stats = PoolStats()
        # Set by the proxy when /metrics is on; read on every reply.
        self.latency: LatencyHistogram | None = None
        self.clients: set[ClientConn] = set()
        self.total_clients = 0  # also each new client's index
        self.live: list[Server] = []
        self._retry_timer: TimerHandle | None = None
        self.rebuild()

    def __repr__(self) -> str:
        return f"<Pool {self.name}>"

    # -- routing ---------------------------------------------------------

    def rebuild(self) -> None:
        """Recompute the live servers and the distribution over them."""
        now = time.monotonic()
        for server in self.servers:
            if server.ejected and server.next_retry <= now:
                server.ejected = False
                server.failures = 0
                server.connect_after = 0.0  # the retry is a real connect
        self.live = [s for s in self.servers if not s.ejected]
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
        live = self.live
        if not live:
            self._unroutable(msg)
            return
        try:
            server = live[self.index_of(key)]
        except Exception as exc:  # a hash or distribution plugin's bug
            self._plugin_failed(msg, exc)
            return
        # Server.conn_for's lookup, inlined; it still opens missing connections.
        conns = server.conn_sets[client.parser.variant]
        conn = conns[client.index % len(conns)]
        if conn is None:
            conn = server.conn_for(client.index, client.parser.variant)
            if conn is None:
                self._backing_off(msg, server)
                return
        conn.enqueue(msg)

    def fanout(self, msg: Msg, client: ClientConn) -> None:
        """Split ``client``'s multi-key request across servers (or forward it whole)."""
        live = self.live
        if not live:
            self._unroutable(msg)
            return
        try:
            frags = self.protocol.fragment(msg, self.index_of)
        except Exception as exc:  # a plugin's bug: answer this request, keep the client
            self._plugin_failed(msg, exc)
            return
        client_index = client.index
        variant = client.parser.variant
        if len(frags) > 1:
            self.stats.fragments += len(frags)
        for index, frag in frags:
            server = live[index]
            conn = server.conn_for(client_index, variant)
            if conn is None:
                self._backing_off(frag, server)
            else:
                conn.enqueue(frag)

    def _backing_off(self, msg: Msg, server: Server) -> None:
        self._forward_failed(msg, server.connect_reason)
        # Each request refused this way is a failure too, so auto_eject_hosts
        # takes the server out instead of failing requests until the back-off ends.
        self.server_failed(server, server.connect_error)

    def _plugin_failed(self, msg: Msg, exc: Exception) -> None:
        logger.error("pool %s: routing a request failed in a plugin: %r", self.name, exc)
        self._forward_failed(msg, "routing failed in a plugin")

    def _unroutable(self, msg: Msg) -> None:
        self._forward_failed(msg, os.strerror(errno.ECONNREFUSED))

    def _forward_failed(self, msg: Msg, reason: str) -> None:
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

    def listen(self, *, sock: socket.socket | None = None, reuseport: bool = False) -> Listener:
        """Start accepting clients on this pool's ``listen`` address (or the
        bound, listening ``sock``, whose socket file stays its owner's).

        Raises:
            OSError: the address cannot be bound; the message names pool and address.
        """
        address = self.config.listen
        identity = None
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
        listener.on_shed = self._shed
        listener.register(EV_READ)
        return listener

    def _shed(self, count: int) -> None:
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
        self.clients.discard(conn)
        self.stats.client_connections = len(self.clients)

    def preconnect(self) -> None:
        for server in self.servers:
            for slot in range(self.config.server_connections):
                server.conn_for(slot)

    def close(self) -> None:
        for client in list(self.clients):
            client.close()
        for server in self.servers:
            server.close()
        if self._retry_timer is not None:
            self._retry_timer.cancel()
