"""A proxy server connection: one backend socket, requests out, replies in.

``in_q`` holds requests not yet written, ``out_q`` requests written and
awaiting a reply; replies are framed by the protocol's reply parser and
matched to ``out_q`` in order, since Redis and memcached answer in order.
Requests are written once per loop turn, all of them in one ``send``.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from corenet.framing import Framer
from corenet.msg import Msg
from corenet.net import Connection, make_socket
from corenet.proxy.client import complete
from corenet.tls import TLSStream

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop
    from corenet.protocol import PoolOptions, ReplyParser
    from corenet.protocol import Protocol as WireProtocol
    from corenet.proxy.config import PoolConfig, ServerConfig
    from corenet.proxy.counters import PoolStats, ServerStats
    from corenet.proxy.tls import PoolTLS
    from corenet.timers import TimerHandle

__all__ = ["Backend", "BackendOwner", "ServerConn", "TLSServerConn"]

logger = logging.getLogger("corenet.conn")


class Backend(Protocol):
    """What a server connection needs of its server (:class:`corenet.proxy.pool.Server`)."""

    name: str
    config: ServerConfig
    stats: ServerStats
    failures: int
    setup: tuple[bytes, ...]
    """Requests sent on each new connection after the protocol's handshake."""

    def connect_succeeded(self) -> None: ...

    def connect_failed(self, err: int, reason: str | None = None) -> None: ...

    def conn_closed(self, conn: ServerConn) -> None: ...


class BackendOwner(Protocol):
    """What a server connection needs of its pool (:class:`corenet.proxy.pool.Pool`)."""

    name: str
    config: PoolConfig
    options: PoolOptions
    protocol: WireProtocol
    timeout: float | None
    stats: PoolStats
    tls: PoolTLS

    # Any: the pool's own Server, which the pool gave this connection.
    def server_failed(self, server: Any, err: int) -> None: ...


class ServerConn(Connection):
    """One connection to a backend server."""

    kind = "server"
    retiring = False
    """No new requests come; closes once those sent are answered (see :meth:`retire`)."""
    when_idle: Callable[[ServerConn], None] | None = None
    """Called when every request sent has its reply (retiring: close; pinned: give back)."""
    pinned_by: Any = None
    """The client a dedicated connection serves (corenet.proxy.pinning), if any."""
    push_to: Any = None
    """The client a subscriber connection's pushed messages go to (corenet.proxy.subscribers)."""
    on_unsent: Callable[[Msg], bool] | None = None
    """Given each request never written when the connection fails: True if
    it took the request (to send it elsewhere later; a Redis Cluster node)."""
    on_reply: Callable[[Msg, bytes], None] = staticmethod(complete)
    """What a request's reply goes to: :func:`complete`, unless the server
    may answer "ask elsewhere" (a Redis Cluster node, corenet.proxy.cluster)."""

    def __init__(
        self,
        loop: Loop,
        pool: BackendOwner,
        server: Backend,
        sock: socket.socket,
        parser: ReplyParser,
    ) -> None:
        super().__init__(loop, sock)
        self.pool = pool
        self.server = server
        self.parser = parser
        self.framer: Framer[bytes] = Framer(parser, replies=True)
        self.in_q: deque[Msg] = deque()
        self.out_q: deque[Msg] = deque()
        self.ready = False
        """Requests can go out (plain: once connected; TLS: after the handshake)."""
        self._timer: TimerHandle | None = None
        self.read_size = 65536
        self.connect_error = 0
        self.variant = 0
        self.stats = server.stats
        self.timeout = pool.timeout

    @classmethod
    def connect(
        cls, loop: Loop, pool: BackendOwner, server: Backend, parser: ReplyParser, variant: int = 0
    ) -> ServerConn:
        """Start a non-blocking connect to ``server``; requests queue until it completes.

        ``variant`` picks the protocol's connection flavour (Redis: 0 RESP2,
        1 RESP3), which decides the set-up requests sent first.
        """
        address = server.config.address
        sock = make_socket(address)
        if pool.config.tcpkeepalive and not address.is_unix:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        conn = cls(loop, pool, server, sock, parser)
        conn.variant = variant
        for request in (*pool.protocol.server_handshake(pool.options, variant), *server.setup):
            # Set-up requests (AUTH, SELECT) go out before anything a client
            # queued; their replies are matched and dropped like any other.
            conn.out_q.append(Msg(request, len(request)))
            conn.queue_bytes(request)
        err = conn.connect_to(address)
        if err not in (0, errno.EINPROGRESS, errno.EAGAIN):
            # Fail in this turn's flush, after the caller queued its request,
            # so that request gets the error like any other.
            conn.connect_error = err
            loop.schedule_flush(conn)
        return conn

    def connection_ready(self) -> None:
        self.ready = True
        self.server.connect_succeeded()
        self.server.stats.server_connections += 1
        self.loop.schedule_flush(self)

    def enqueue(self, msg: Msg) -> None:
        """Queue ``msg`` to be written in this loop turn's flush."""
        in_q = self.in_q
        if not in_q and not self.flush_scheduled:  # loop.schedule_flush(self), inlined
            self.flush_scheduled = True
            self.loop.dirty.append(self)
        in_q.append(msg)
        # Counted when forwarded, as nutcracker does (even if never written).
        stats = self.stats
        stats.requests += 1
        stats.request_bytes += len(msg.data)
        timeout = self.timeout
        if timeout is not None:
            msg.deadline = self.loop.now + timeout
            if self._timer is None:
                self._timer = self.loop.timers.call_at(msg.deadline, self._check_timeout)

    def flush(self) -> None:
        if not self.ready:
            if self.connect_error:
                self.server.stats.server_err += 1
                self.fail(self.connect_error)
            return
        in_q = self.in_q
        chunks = self._backlog
        self._backlog = []
        if in_q:
            out_q = self.out_q
            for msg in in_q:
                chunks.append(msg.data)
                if msg.expect_reply:
                    out_q.append(msg)
            in_q.clear()
        if self._unsent is not None:
            self._backlog = chunks
        elif chunks:
            self.send_bytes(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def connect_failed(self, err: int) -> None:
        self.server.stats.server_err += 1
        self.fail(err)

    def read_error(self, exc: OSError) -> None:
        self.server.stats.server_err += 1
        self.fail(exc.errno or errno.ECONNRESET)

    def read_eof(self) -> None:
        self.server.stats.server_eof += 1
        self.fail(errno.ECONNRESET)

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        replies = framer.feed(data)
        out_q = self.out_q
        stats = self.stats
        if self.push_to is not None:
            if not self._replies_and_pushes(replies):
                return
        elif replies:
            answered = replies if len(replies) <= len(out_q) else replies[: len(out_q)]
            # Counted once per read; each reply answers the oldest request.
            stats.responses += len(answered)
            stats.response_bytes += sum(map(len, answered))
            finish = self.on_reply
            popleft = out_q.popleft
            for reply in answered:
                if not out_q:  # a reply hook failed this connection
                    return
                finish(popleft(), reply)
            if len(answered) < len(replies):
                self._unasked()
                return
        when_idle = self.when_idle
        if when_idle is not None and not out_q and not self.in_q:
            when_idle(self)
            if self.closed:
                return
        if framer.error is not None:
            logger.warning(
                "pool %s: server %s sent a malformed reply: %s",
                self.pool.name,
                self.server.name,
                framer.error,
            )
            stats.server_err += 1
            self.fail(errno.EPROTO)
            return
        self.server.failures = 0

    def _replies_and_pushes(self, replies: list[bytes]) -> bool:
        """``data_received`` on a connection that also carries pushes (RESP3
        Pub/Sub): each in stream order; False once the connection failed."""
        out_q = self.out_q
        stats = self.stats
        push_to = self.push_to
        for reply in replies:
            stats.response_bytes += len(reply)
            if self.pool.protocol.is_push(reply):  # type: ignore[attr-defined]
                push_to.push(reply)
                continue
            if not out_q:
                self._unasked()
                return False
            stats.responses += 1
            self.on_reply(out_q.popleft(), reply)
        return True

    def _unasked(self) -> None:
        logger.warning(
            "pool %s: server %s sent a reply nobody asked for", self.pool.name, self.server.name
        )
        self.stats.server_err += 1
        self.fail(errno.EPROTO)

    def retire(self) -> None:
        """Take no new requests (the caller no longer routes here); close once
        every request already queued or sent has its reply (or times out)."""
        self.retiring = True
        self.when_idle = ServerConn.close
        if not self.in_q and not self.out_q:
            self.close()

    def _check_timeout(self) -> None:
        self._timer = None
        if self.closed:
            return
        head = self.out_q[0] if self.out_q else (self.in_q[0] if self.in_q else None)
        if head is None:
            return
        if head.deadline <= self.loop.now:
            self.server.stats.server_timedout += 1
            self.fail(errno.ETIMEDOUT)
        else:
            self._timer = self.loop.timers.call_at(head.deadline, self._check_timeout)

    def fail(self, err: int, reason: str | None = None) -> None:
        """Close this connection and give every request on it an error, in order.

        The error reply says ``reason``, else the strerror of ``err``.
        """
        if self.closed:
            return
        if not self.ready:  # never established: count it against the server
            self.server.connect_failed(err, reason)
        self.close()
        reply = self.pool.protocol.error_reply(reason or os.strerror(err))
        pending = list(self.out_q)
        pending.extend(self.in_q)
        self.out_q.clear()
        unsent = self.on_unsent if self.pinned_by is None and self.push_to is None else None
        written = len(pending) - len(self.in_q)
        self.in_q.clear()
        errors = 0
        for i, msg in enumerate(pending):
            if unsent is not None and i >= written and unsent(msg):
                continue
            # Set-up requests have no client, and a request sent with
            # ``noreply`` was answered (with nothing) when it was parsed.
            if (msg.client is not None or msg.parent is not None) and msg.expect_reply:
                complete(msg, reply)
                errors += 1
        self.pool.stats.forward_error += errors
        self.pool.server_failed(self.server, err)

    def close(self) -> None:
        if self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.connected = False
        if self.ready:
            self.ready = False
            self.server.stats.server_connections -= 1
        super().close()
        self.server.conn_closed(self)

    def abort(self, exc: BaseException) -> None:
        err = exc.errno if isinstance(exc, OSError) and exc.errno else errno.ECONNRESET
        self.fail(err)


class TLSServerConn(ServerConn, TLSStream):
    """A server connection over TLS (``server_tls``): the stream layer does the TLS.

    The handshake starts once the TCP connect completes (its timeout runs
    from then on; the connect itself is bounded by ``timeout`` as for a
    plain server).  The connection is ``ready`` (requests go out,
    ``server_connections`` counts it, the reconnect back-off resets) only
    when the handshake is done.  A failed handshake is a failed connect:
    requests queued on it get ``-ERR TLS handshake failed: <reason>``, and
    reconnects back off as for a refused connect.
    """

    kind = "server-tls"

    def connection_made(self) -> None:
        # TCP is up: set the engine on and send the ClientHello.
        tls = self.pool.tls
        assert tls.connect is not None  # the pool picks this class only then
        self.start_tls(
            tls.connect,
            server_side=False,
            server_hostname=tls.hostname(self.server.config),
            timeout=tls.handshake_timeout,
        )
        super().connection_made()

    def connection_ready(self) -> None:
        self.stats.tls_connections += 1
        super().connection_ready()

    def handshake_failed(self, reason: str) -> None:
        stats = self.stats
        stats.tls_handshake_failures += 1
        stats.server_err += 1
        # An operator's problem (wrong CA, expired certificate, a plain-text
        # server): worth a warning; the back-off bounds how often it repeats.
        logger.warning(
            "pool %s: server %s: TLS handshake failed: %s",
            self.pool.name,
            self.server.name,
            reason,
        )
        self.fail(errno.EPROTO, f"TLS handshake failed: {reason}")

    def close(self) -> None:
        if not self.closed and self.tls_established and self.ready:
            self.stats.tls_connections -= 1
        super().close()
