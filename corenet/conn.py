"""Connections: the listener, clients and servers, as in twemproxy.

* :class:`ProxyConn` accepts clients for one pool.
* :class:`ClientConn` reads requests with its pool's request parser, keeps
  them in ``out_q`` in arrival order, hands each to the pool for routing,
  and writes replies back strictly in that order as they complete.
* :class:`ServerConn` owns one backend socket: ``in_q`` holds requests not
  yet written, ``out_q`` requests written and awaiting a reply; replies are
  matched to ``out_q`` in order, since Redis and memcached answer in order.

Bytes are forwarded as received: a request's ``data`` is a slice of what the
client sent, a reply is a slice of what the server sent.  Reads stop at a
short read (a ``recv`` that would block costs as much as one that returns
data), and writes happen once per connection per loop turn.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import deque
from typing import TYPE_CHECKING

from corenet.buffer import StreamBuffer
from corenet.errors import ProtocolError
from corenet.event import EV_READ, EV_WRITE
from corenet.msg import ACTION_CLOSE, ACTION_FANOUT, ACTION_FORWARD, Msg

if TYPE_CHECKING:
    from corenet.config import ListenAddress
    from corenet.core import Loop
    from corenet.pool import Pool, Server
    from corenet.protocol import ReplyParser, RequestParser
    from corenet.timers import TimerHandle

__all__ = [
    "ClientConn",
    "Conn",
    "ProxyConn",
    "ServerConn",
    "bind_listener",
    "file_identity",
    "make_socket",
    "unlink_if_ours",
]

logger = logging.getLogger("corenet.conn")

READ_SIZE = 16384  # nutcracker's default mbuf size; -m changes it
_MAX_READS_PER_TURN = 8  # bound the work one busy peer gets per turn
_ACCEPTS_PER_TURN = 64
_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def make_socket(address: ListenAddress) -> socket.socket:
    """Return a non-blocking stream socket of the right family for ``address``."""
    if address.is_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def bind_listener(
    address: ListenAddress, backlog: int, *, reuseport: bool = False
) -> socket.socket:
    """Return a non-blocking socket bound and listening on ``address``.

    A unix socket path left by an earlier process is replaced and given the
    configured permissions; a TCP socket gets ``SO_REUSEADDR`` (and
    ``SO_REUSEPORT`` when asked, for workers sharing a port).

    Raises:
        OSError: the address cannot be bound; the socket is closed.
    """
    sock = make_socket(address)
    try:
        if address.path is not None:
            try:
                if os.path.exists(address.path):
                    os.unlink(address.path)
            except OSError:
                pass
            sock.bind(address.path)
            if address.perm is not None:
                os.chmod(address.path, address.perm)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def file_identity(path: str) -> tuple[int, int]:
    """``(device, inode)`` of ``path``: which socket file a listener bound."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def unlink_if_ours(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at ``path`` only if it is still the one we
    bound: in a rolling restart the new process may have bound it already."""
    try:
        if file_identity(path) == identity:
            os.unlink(path)
    except OSError:
        pass


def _sockaddr(address: ListenAddress) -> str | tuple[str, int]:
    return address.path if address.path is not None else (address.host, address.port)


class Conn:
    """What every connection shares: a socket, its loop, and buffered output.

    Output not taken by the kernel is kept as one memoryview (``_unsent``)
    plus a list of later chunks (``_backlog``); write interest is on only
    while they are non-empty.
    """

    kind = "conn"

    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self.flush_scheduled = False
        self._unsent: memoryview | None = None
        self._backlog: list[bytes] = []
        self._mask = 0
        self.pending = StreamBuffer()
        self.read_size = READ_SIZE
        self.reading = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd}{' closed' if self.closed else ''}>"

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued for this socket that the kernel has not taken yet."""
        pending = len(self._unsent) if self._unsent is not None else 0
        return pending + sum(map(len, self._backlog))

    def register(self, mask: int) -> None:
        """Hand this connection to its loop, watching ``mask``."""
        self.loop.add(self.fd, self, mask)
        self._mask = mask

    def _set_mask(self, mask: int) -> None:
        # A connection interested in nothing (a client we stopped reading
        # while it has no output) is taken out of the backend altogether.
        if mask == self._mask or self.closed:
            return
        backend = self.loop.backend
        if self._mask == 0:
            backend.register(self.fd, mask)
        elif mask == 0:
            backend.unregister(self.fd)
        else:
            backend.modify(self.fd, mask)
        self._mask = mask

    def send_bytes(self, data: bytes) -> None:
        """Write ``data`` now if the kernel takes it, else keep it for later."""
        if self._unsent is not None:
            self._backlog.append(data)
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.abort(exc)
            return
        if sent < len(data):
            self._unsent = memoryview(data)[sent:]
            self._set_mask(self._mask | EV_WRITE)

    def handle_write(self) -> None:
        while self._unsent is not None:
            try:
                sent = self.sock.send(self._unsent)
            except BlockingIOError:
                return
            except OSError as exc:
                self.abort(exc)
                return
            if sent < len(self._unsent):
                self._unsent = self._unsent[sent:]
                return
            if self._backlog:
                self._unsent = memoryview(b"".join(self._backlog))
                self._backlog = []
            else:
                self._unsent = None
        self._set_mask(self._mask & ~EV_WRITE)
        self.output_drained()

    def output_drained(self) -> None:
        """Called when everything queued has been written."""

    def handle_read(self) -> None:
        """Read until a short read (or a bound), parsing what is complete."""
        recv = self.sock.recv
        size = self.read_size
        for _ in range(_MAX_READS_PER_TURN):
            if not self.reading:
                return
            try:
                data = recv(size)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                self.read_error(exc)
                return
            if not data:
                self.read_eof()
                return
            if self.pending.chunks:  # the rest of an incomplete message
                buf = self.pending.push(data)
                if buf is not None:
                    self._process(buf)
            else:
                self._process(data)
            if len(data) < size or self.closed:
                return

    def _process(self, data: bytes) -> None:
        """Parse and dispatch the messages in ``data``."""
        raise NotImplementedError

    def read_error(self, exc: OSError) -> None:
        self.abort(exc)

    def read_eof(self) -> None:
        self.close()

    def flush(self) -> None:
        """Write what became ready during this loop turn."""

    def abort(self, exc: BaseException) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove(self.fd, registered=self._mask != 0)
        self._unsent = None
        self._backlog = []
        try:
            self.sock.close()
        except OSError:
            pass


class ProxyConn(Conn):
    """A pool's listening socket."""

    kind = "proxy"

    def __init__(self, loop: Loop, pool: Pool, sock: socket.socket) -> None:
        super().__init__(loop, sock)
        self.pool = pool
        self._bound: tuple[int, int] | None = None  # file_identity of our unix socket

    @classmethod
    def listen(
        cls,
        loop: Loop,
        pool: Pool,
        *,
        sock: socket.socket | None = None,
        reuseport: bool = False,
    ) -> ProxyConn:
        """Bind and listen on ``pool``'s address and register with ``loop``.

        Args:
            sock: an already bound, listening socket to adopt instead (see
                corenet.workers); it is made non-blocking, and a unix socket
                file adopted this way is not removed on close.
            reuseport: set ``SO_REUSEPORT`` before binding a TCP address.
        """
        address = pool.config.listen
        if sock is None:
            sock = bind_listener(address, pool.config.backlog, reuseport=reuseport)
            bound = file_identity(address.path) if address.path is not None else None
        else:
            sock.setblocking(False)
            bound = None  # adopted: the supervisor owns the socket file
        conn = cls(loop, pool, sock)
        conn._bound = bound
        conn.register(EV_READ)
        return conn

    def handle_read(self) -> None:
        pool = self.pool
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, _addr = self.sock.accept()
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _FD_EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            pool.accept(sock)

    def _pause_accepting(self, exc: OSError) -> None:
        # Out of descriptors: the pending connection stays in the backlog and
        # the listener stays readable, so polling it now would spin.  Stop
        # watching it for a moment instead.
        logger.warning(
            "pool %s: accept failed (%s); pausing accepts for 100 ms", self.pool.name, exc.strerror
        )
        self._set_mask(0)
        self.loop.timers.call_later(0.1, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._set_mask(EV_READ)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        path = self.pool.config.listen.path
        if path is not None and self._bound is not None:
            unlink_if_ours(path, self._bound)


class ClientConn(Conn):
    """A client of one pool: parses requests, returns replies in order."""

    kind = "client"

    def __init__(
        self, loop: Loop, pool: Pool, sock: socket.socket, parser: RequestParser, index: int
    ) -> None:
        super().__init__(loop, sock)
        self.pool = pool
        self.parser = parser
        self.index = index
        self.out_q: deque[Msg] = deque()
        self.closing = False
        self.latency = pool.latency
        # Backpressure: reading stops while too many requests are in flight
        # or too many reply bytes wait for the client to read them.
        self.paused = False
        self.max_pending = pool.config.client_max_pending
        self.last_active = loop.now
        self.partial_since = 0.0
        self._timer: TimerHandle | None = None
        if pool.client_check_interval is not None:
            self._timer = loop.timers.call_later(pool.client_check_interval, self._check_timeouts)

    def read_error(self, exc: OSError) -> None:
        self.pool.stats.client_err += 1
        self.abort(exc)

    def read_eof(self) -> None:
        self.pool.stats.client_eof += 1
        self.close()

    def _process(self, data: bytes) -> None:
        parse = self.parser.parse
        pool = self.pool
        out_q = self.out_q
        max_pending = self.max_pending
        now = self.loop.now
        pos = 0
        n = len(data)
        while pos < n:
            if len(out_q) >= max_pending:
                # Keep the rest (whole requests, already read) for later.
                self.pending.keep(data, pos, 0)
                self.partial_since = 0.0
                self._pause()
                return
            try:
                msg = parse(data, pos)
            except ProtocolError as exc:
                self._protocol_error(exc)
                return
            if msg is None:
                # A new incomplete request starts its clock; a continued one keeps it.
                if pos or not self.partial_since:
                    self.partial_since = self.loop.now
                self.pending.keep(data, self.parser.resume_at, self.parser.need)
                return
            pos = msg.end
            msg.client = self
            msg.start_time = now
            out_q.append(msg)
            action = msg.action
            if action == ACTION_FORWARD:
                pool.forward(msg, msg.key or b"", self)
                if msg.done:  # noreply: nothing to wait for
                    self.loop.schedule_flush(self)
            elif action == ACTION_FANOUT:
                pool.fanout(msg, self)
            else:
                self.loop.schedule_flush(self)
                if action == ACTION_CLOSE:
                    self._stop_reading()
                    return
        self.partial_since = 0.0
        self.last_active = self.loop.now

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.reading = False
            self._set_mask(self._mask & ~EV_READ)

    def _maybe_resume(self) -> None:
        if (
            self.closing
            or len(self.out_q) > self.max_pending >> 1
            or self.unsent_bytes > self.pool.config.client_output_buffer
        ):
            return
        self.paused = False
        self.reading = True
        self._set_mask(self._mask | EV_READ)
        if len(self.pending) and not self.parser_waiting():
            # Whole requests read before the pause: parse them now, since no
            # new data may ever come to trigger a read.
            self._process(self.pending.take())

    def parser_waiting(self) -> bool:
        """True when the kept bytes are an incomplete request (not a backlog)."""
        return self.partial_since > 0.0

    def _check_timeouts(self) -> None:
        self._timer = None
        if self.closed:
            return
        config = self.pool.config
        now = self.loop.now
        idle = config.client_idle_timeout
        partial = config.client_request_timeout
        if (
            partial
            and len(self.pending)
            and self.parser_waiting()
            and now - self.partial_since >= partial / 1000
        ):
            logger.info(
                "pool %s: closing client fd %d: request incomplete after %d ms",
                self.pool.name,
                self.fd,
                partial,
            )
            self.pool.stats.client_err += 1
            self.close()
            return
        if (
            idle
            and not self.out_q
            and not len(self.pending)
            and now - self.last_active >= idle / 1000
        ):
            logger.info(
                "pool %s: closing client fd %d: idle for %d ms", self.pool.name, self.fd, idle
            )
            self.close()
            return
        interval = self.pool.client_check_interval
        assert interval is not None  # the timer runs only when a timeout is set
        self._timer = self.loop.timers.call_later(interval, self._check_timeouts)

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.pool.stats.client_err += 1
        if logger.isEnabledFor(logging.INFO):
            logger.info("pool %s: client fd %d: %s", self.pool.name, self.fd, exc)
        if not exc.close:
            raise AssertionError(
                "a parser must resynchronise itself instead of raising close=False"
            )
        self.out_q.append(Msg(b"", 0, None, ACTION_CLOSE, exc.reply))
        self._stop_reading()
        self.loop.schedule_flush(self)

    def close_when_done(self) -> None:
        """Read no more requests; close once every pending reply is written.

        Used to drain on shutdown: the same mechanism as ``QUIT``, a closing
        marker queued after the requests in flight.
        """
        self._stop_reading()
        self.max_pending = 0  # backpressure must not resume reading
        self.out_q.append(Msg(b"", 0, None, ACTION_CLOSE, b""))
        self.loop.schedule_flush(self)

    def _stop_reading(self) -> None:
        self.reading = False
        self.pending.clear()
        self._set_mask(self._mask & ~EV_READ)

    def flush(self) -> None:
        out_q = self.out_q
        if not out_q or not out_q[0].done:
            return
        msg = out_q.popleft()
        data = msg.reply
        if msg.action != ACTION_CLOSE and out_q and out_q[0].done:
            # Several replies ready (a pipeline): one send for all of them.
            chunks = [data]
            while out_q and out_q[0].done:
                msg = out_q.popleft()
                chunks.append(msg.reply)
                if msg.action == ACTION_CLOSE:
                    break
            data = b"".join(chunks)  # type: ignore[arg-type]
        if msg.action == ACTION_CLOSE:
            self.closing = True
            out_q.clear()
        self.send_bytes(data)  # type: ignore[arg-type]
        if self._unsent is None:
            if self.closing and not self.closed:
                self.close()
            elif self.paused:
                self._maybe_resume()
            return
        unsent = self.unsent_bytes
        if unsent > self.pool.config.client_output_limit:
            # A client that asks for more than it reads: drop it rather than
            # buffer without bound.
            logger.warning(
                "pool %s: closing client fd %d: %d reply bytes unread (client_output_limit)",
                self.pool.name,
                self.fd,
                unsent,
            )
            self.pool.stats.client_err += 1
            self.close()
        elif unsent > self.pool.config.client_output_buffer:
            self._pause()
        elif self.paused:
            self._maybe_resume()

    def output_drained(self) -> None:
        if self.closing:
            self.close()
        elif self.paused:
            self._maybe_resume()

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Requests still at servers keep a reference to us; their replies are
        # dropped when they arrive (``closed``), and the rest is freed here.
        self.out_q.clear()
        self.pending.clear()
        self.pool.client_closed(self)


class ServerConn(Conn):
    """One connection to a backend server."""

    kind = "server"

    def __init__(
        self, loop: Loop, pool: Pool, server: Server, sock: socket.socket, parser: ReplyParser
    ) -> None:
        super().__init__(loop, sock)
        self.pool = pool
        self.server = server
        self.parser = parser
        self.in_q: deque[Msg] = deque()
        self.out_q: deque[Msg] = deque()
        self.connected = False
        self._timer: TimerHandle | None = None
        self.read_size = 65536
        self.connect_error = 0
        self.variant = 0
        self.stats = server.stats
        self.timeout = pool.timeout

    @classmethod
    def connect(
        cls, loop: Loop, pool: Pool, server: Server, parser: ReplyParser, variant: int = 0
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
        for request in pool.protocol.server_handshake(pool.config, variant):
            # Set-up requests (AUTH, SELECT) go out before anything a client
            # queued; their replies are matched and dropped like any other.
            conn.out_q.append(Msg(request, len(request)))
            conn._backlog.append(request)
        err = sock.connect_ex(_sockaddr(address))
        conn.register(EV_READ | EV_WRITE)
        if err == 0:
            conn._connected()
        elif err not in (errno.EINPROGRESS, errno.EAGAIN):
            # Fail in this turn's flush, after the caller queued its request,
            # so that request gets the error like any other.
            conn.connect_error = err
            loop.schedule_flush(conn)
        return conn

    def _connected(self) -> None:
        self.connected = True
        self.server.connect_succeeded()
        self.server.stats.server_connections += 1
        self._set_mask(EV_READ)
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
        if not self.connected:
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

    def handle_write(self) -> None:
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.server.stats.server_err += 1
                self.fail(err)
                return
            self._connected()
            return
        super().handle_write()

    def handle_read(self) -> None:
        if not self.connected:
            # Readable before writable means the connect failed (or data
            # raced in); SO_ERROR says which.
            self.handle_write()
            if not self.connected:
                return
        super().handle_read()

    def read_error(self, exc: OSError) -> None:
        self.server.stats.server_err += 1
        self.fail(exc.errno or errno.ECONNRESET)

    def read_eof(self) -> None:
        self.server.stats.server_eof += 1
        self.fail(errno.ECONNRESET)

    def _process(self, data: bytes) -> None:
        parse = self.parser.parse
        out_q = self.out_q
        stats = self.server.stats
        pos = 0
        n = len(data)
        while pos < n:
            try:
                end = parse(data, pos)
            except ProtocolError as exc:
                logger.warning(
                    "pool %s: server %s sent a malformed reply: %s",
                    self.pool.name,
                    self.server.name,
                    exc,
                )
                self.server.stats.server_err += 1
                self.fail(errno.EPROTO)
                return
            if end < 0:
                self.pending.keep(data, self.parser.resume_at, self.parser.need)
                return
            if not out_q:
                logger.warning(
                    "pool %s: server %s sent a reply nobody asked for",
                    self.pool.name,
                    self.server.name,
                )
                self.server.stats.server_err += 1
                self.fail(errno.EPROTO)
                return
            msg = out_q.popleft()
            reply = data if (pos == 0 and end == n) else data[pos:end]
            stats.responses += 1
            stats.response_bytes += end - pos
            pos = end
            complete(msg, reply)
        self.server.failures = 0

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

    def fail(self, err: int) -> None:
        """Close this connection and give every request on it an error, in order."""
        if self.closed:
            return
        if not self.connected:  # never established: count it against the server
            self.server.connect_failed(err)
        self.close()
        reply = self.pool.protocol.error_reply(os.strerror(err))
        pending = list(self.out_q)
        pending.extend(self.in_q)
        self.out_q.clear()
        self.in_q.clear()
        errors = 0
        for msg in pending:
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
        if self.connected:
            self.connected = False
            self.server.stats.server_connections -= 1
        super().close()
        self.server.conn_closed(self)

    def abort(self, exc: BaseException) -> None:
        err = exc.errno if isinstance(exc, OSError) and exc.errno else errno.ECONNRESET
        self.fail(err)


def complete(msg: Msg, reply: bytes) -> None:
    """Record ``reply`` for ``msg`` and wake its client if it can now write."""
    msg.reply = reply
    msg.done = True
    parent = msg.parent
    if parent is not None:
        parent.pending -= 1
        if parent.pending:
            return
        merge = parent.merge
        assert merge is not None
        parent.reply = merge(parent)
        parent.done = True
        msg = parent
    client = msg.client
    if client is not None and not client.closed:
        latency = client.latency
        if latency is not None:
            latency.observe(client.loop.now - msg.start_time)
        if not client.flush_scheduled:  # loop.schedule_flush(client), inlined: once per reply
            client.flush_scheduled = True
            client.loop.dirty.append(client)
