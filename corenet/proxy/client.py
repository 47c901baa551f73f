"""A proxy client connection: requests in, replies back in request order.

A :class:`ClientConn` frames what its client sends with its pool's request
parser, keeps every request in ``out_q`` in arrival order, hands each to the
pool for routing, and writes replies back strictly in that order as they
complete (``complete`` wakes it).  Its life is the state machine of
:mod:`corenet.proxy._client_state`.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from corenet.framing import Framer
from corenet.msg import (
    ACTION_CLOSE,
    ACTION_FANOUT,
    ACTION_FORWARD,
    ACTION_LOCAL,
    ACTION_PIN,
    Msg,
)
from corenet.proxy._client_state import ClientEvent, ClientState, next_state
from corenet.proxy.facts import pool_facts
from corenet.stream import Stream
from corenet.tls import TLSStream

if TYPE_CHECKING:
    import socket
    from collections.abc import Mapping

    from corenet.errors import ProtocolError
    from corenet.loop import Loop
    from corenet.protocol import RequestParser
    from corenet.proxy.config import PoolConfig
    from corenet.proxy.counters import PoolStats
    from corenet.proxy.latency import LatencyHistogram
    from corenet.timers import TimerHandle

__all__ = ["ClientConn", "ClientOwner", "ClientPin", "TLSClientConn", "complete"]

logger = logging.getLogger("corenet.conn")

_READING = ClientState.READING
_PAUSED = ClientState.PAUSED
_CLOSING = ClientState.CLOSING


class ClientOwner(Protocol):
    """What a client connection needs of its pool (:class:`corenet.proxy.pool.Pool`)."""

    name: str
    config: PoolConfig
    stats: PoolStats
    latency: LatencyHistogram | None
    client_check_interval: float | None
    total_clients: int

    def forward(self, msg: Msg, key: bytes, client: ClientConn) -> None: ...

    def fanout(self, msg: Msg, client: ClientConn) -> None: ...

    def forward_pinned(self, msg: Msg, client: ClientConn) -> bool: ...

    def forward_beside_pin(self, msg: Msg, client: ClientConn) -> None: ...

    def client_closed(self, conn: ClientConn) -> None: ...


class ClientPin:
    """One client's pin (corenet.proxy.pinning): its dedicated server
    connection, or what waits for one."""

    __slots__ = ("blocked", "conn", "failed", "hold", "parked", "server")

    def __init__(self) -> None:
        # A ServerConn and its Server: typed loosely, as those modules import this one.
        self.conn: Any = None
        self.server: Any = None
        self.hold = False
        """The protocol's last word: the state goes on after the current request."""
        self.failed = False
        """A request of this pin was refused by the proxy (``PinStep.abort`` applies)."""
        self.parked: list[bytes] = []
        """Keyless requests answered early, to send first once a server is chosen."""
        self.blocked = False
        """A blocking request is on the connection: a client that leaves won't see it end."""


class ClientConn(Stream):
    """A client of one pool: parses requests, returns replies in order."""

    kind = "client"

    def __init__(
        self, loop: Loop, pool: ClientOwner, sock: socket.socket, parser: RequestParser, index: int
    ) -> None:
        super().__init__(loop, sock)
        self.pool = pool
        self.parser = parser
        self.framer: Framer[Msg] = Framer(parser)
        self.index = index
        self.out_q: deque[Msg] = deque()
        self.state = _READING
        self.latency = pool.latency
        self.max_pending = pool.config.client_max_pending
        self.last_active = loop.now
        self.partial_since = 0.0
        self.pin: ClientPin | None = None
        """This client's dedicated server connection, while it has one (pinning)."""
        self.streams: dict[Any, Any] = {}
        """Subscriber connections by server (corenet.proxy.subscribers)."""
        self.stream_epoch = 0
        self.held: deque[tuple[Msg, int]] | None = None
        """Requests parsed but not yet routed, waiting behind a new pin (pinning),
        each with the variant it was parsed in."""
        self.switches: list[tuple[Msg, int, int]] = getattr(parser, "switches", [])
        """(request, variant before, after) for requests that switched the
        parser's variant since the last dispatch (see _dispatch_switching)."""
        self._timer: TimerHandle | None = None
        if pool.client_check_interval is not None:
            self._timer = loop.timers.call_later(pool.client_check_interval, self._check_timeouts)

    def reconfigure(self) -> None:
        """Follow the pool's new configuration (a reload) from the next request on."""
        pool = self.pool
        self.max_pending = pool.config.client_max_pending
        if self._timer is None and pool.client_check_interval is not None and not self.closed:
            self._timer = self.loop.timers.call_later(
                pool.client_check_interval, self._check_timeouts
            )
        self._maybe_resume()

    def facts(self) -> Mapping[str, object]:
        """The proxy's facts about this client's pool, now (``corenet.protocol.POOL_FACTS``)."""
        pool = self.pool
        uptime = self.loop.now - self.loop.started
        return pool_facts(pool.name, pool.config.listen, pool.stats, pool.total_clients, uptime)

    def _move(self, event: ClientEvent) -> None:
        self.state = next_state(self.state, event)

    # -- reading -----------------------------------------------------------

    def read_error(self, exc: OSError) -> None:
        self.pool.stats.client_err += 1
        self.abort(exc)

    def read_eof(self) -> None:
        # No more requests, but every reply still owed is written first, as
        # nutcracker, redis-server and memcached do for a half-closed client.
        self.pool.stats.client_eof += 1
        self.framer.clear()
        if self.pin is not None and self.pin.blocked:
            # Gone while blocked: nobody will read what the block returns, and
            # the connection must not take it from the next client (pinning).
            self.close()
            return
        self._finish(ClientEvent.EOF)

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        was_waiting = framer.waiting
        frames = framer.feed(data, self.max_pending - len(self.out_q))
        # _dispatch, inlined: this runs once per read.
        if self.switches:
            self._dispatch_switching(frames)
        else:
            self._route_frames(frames)
        if framer.error is not None or framer.backlog:
            self._stopped(framer)
        if self.state is not _READING:
            return
        now = self.loop.now
        if framer.waiting:
            # A new incomplete request starts its clock; a continued one keeps it.
            if frames or not was_waiting:
                self.partial_since = now
        else:
            self.partial_since = 0.0
        self.last_active = now

    def _dispatch(self, frames: list[Msg]) -> None:
        if self.switches:
            self._dispatch_switching(frames)
        else:
            self._route_frames(frames)
        framer = self.framer
        if framer.error is not None or framer.backlog:
            self._stopped(framer)

    def _stopped(self, framer: Framer[Msg]) -> None:
        """The last feed stopped short: at a bad request, or at the limit."""
        if framer.error is not None:
            self._protocol_error(framer.error)
        else:
            self._pause()

    def _route_frames(self, frames: list[Msg]) -> bool:
        """Route each request of ``frames``; False once one closes the client."""
        pool = self.pool
        out_q = self.out_q
        now = self.loop.now
        for msg in frames:
            msg.client = self
            msg.start_time = now
            out_q.append(msg)
            if self.held is not None:
                self.held.append((msg, self.parser.variant))
                continue
            action = msg.action
            if action == ACTION_FORWARD and self.pin is None:
                # The common request, inlined: one call from bytes to a server.
                pool.forward(msg, msg.key or b"", self)
                if msg.done:  # noreply: nothing to wait for
                    self.loop.schedule_flush(self)
            elif not self._route(msg):
                # Routed once the requests before it are answered (pinning).
                self.held = deque([(msg, self.parser.variant)])
            elif action == ACTION_CLOSE:
                return False
        return True

    def _route(self, msg: Msg) -> bool:
        """Route one request; False: it must wait for the earlier ones (pinning)."""
        action = msg.action
        pool = self.pool
        if action == ACTION_FORWARD:
            if self.pin is None:
                pool.forward(msg, msg.key or b"", self)
            else:
                pool.forward_beside_pin(msg, self)
            if msg.done:
                self.loop.schedule_flush(self)
        elif action == ACTION_PIN:
            return pool.forward_pinned(msg, self)
        elif action >= ACTION_FANOUT:  # ACTION_FANOUT or ACTION_EVERY
            pool.fanout(msg, self)
        else:
            self.loop.schedule_flush(self)
            if action == ACTION_CLOSE:
                self._stop_reading()
        return True

    def _dispatch_switching(self, frames: list[Msg]) -> None:
        # A request in this batch switched the connections the client's
        # requests use (Redis SELECT, HELLO 3): the parser is already past
        # them all, so each request is routed with the variant of its turn.
        parser = self.parser
        log = self.switches
        final = parser.variant
        parser.variant = log[0][1]
        after = {id(msg): variant for msg, _, variant in log}
        log.clear()
        for msg in frames:
            if not self._route_frames([msg]):
                break
            parser.variant = after.get(id(msg), parser.variant)
        parser.variant = final

    def push(self, frame: bytes) -> None:
        """Send ``frame``, pushed by a server (a published message), after the
        replies already due."""
        if self.closed:
            return
        self.out_q.append(Msg(b"", 0, None, ACTION_LOCAL, frame))
        if not self.flush_scheduled:
            self.loop.schedule_flush(self)

    def waits_before(self, msg: Msg) -> bool:
        """Whether a request before ``msg`` is still unanswered."""
        for earlier in self.out_q:
            if earlier is msg:
                return False
            if not earlier.done:
                return True
        return False

    def _route_held(self) -> None:
        # The requests before the first held one are answered: route the held
        # ones in order, each in the variant it was parsed in, up to the next
        # that waits.
        held = self.held
        assert held is not None
        self.held = None
        parser = self.parser
        final = parser.variant
        while held:
            msg, parser.variant = held[0]
            if not self._route(msg):
                self.held = held
                break
            held.popleft()
        parser.variant = final
        self.loop.schedule_flush(self)

    def _pause(self) -> None:
        if self.state is _READING:
            self._move(ClientEvent.BACKPRESSURE)
            self.pause_reading()

    def _maybe_resume(self) -> None:
        if (
            self.state is not _PAUSED
            or len(self.out_q) > self.max_pending >> 1
            or self.unsent_bytes > self.pool.config.client_output_buffer
        ):
            return
        self._move(ClientEvent.RELIEVED)
        self.resume_reading()
        if self.framer.backlog:
            # Whole requests read before the pause: parse them now, since no
            # new data may ever come to trigger a read.
            self._dispatch(self.framer.resume(self.max_pending - len(self.out_q)))

    def _check_timeouts(self) -> None:
        self._timer = None
        if self.closed:
            return
        config = self.pool.config
        now = self.loop.now
        idle = config.client_idle_timeout
        partial = config.client_request_timeout
        if partial and self.framer.waiting and now - self.partial_since >= partial / 1000:
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
            and not self.framer.buffered
            and now - self.last_active >= idle / 1000
        ):
            logger.info(
                "pool %s: closing client fd %d: idle for %d ms", self.pool.name, self.fd, idle
            )
            self.close()
            return
        interval = self.pool.client_check_interval
        if interval is not None:  # None: a reload turned both timeouts off
            self._timer = self.loop.timers.call_later(interval, self._check_timeouts)

    def _protocol_error(self, exc: ProtocolError) -> None:
        self.pool.stats.client_err += 1
        if logger.isEnabledFor(logging.INFO):
            logger.info("pool %s: client fd %d: %s", self.pool.name, self.fd, exc)
        self.loop.schedule_flush(self)
        if exc.close:
            self.out_q.append(Msg(b"", 0, None, ACTION_CLOSE, exc.reply))
            self._stop_reading()
            return
        # The parser skipped the bad request: answer it in its place and go on.
        self.out_q.append(Msg(b"", 0, None, ACTION_LOCAL, exc.reply))
        self.framer.error = None
        self._dispatch(self.framer.resume(self.max_pending - len(self.out_q)))

    def close_when_done(self) -> None:
        """Read no more requests; close once every pending reply is written.

        Used to drain on shutdown: the same mechanism as ``QUIT``, a closing
        marker queued after the requests in flight.
        """
        self._finish(ClientEvent.STOP)

    def _finish(self, event: ClientEvent) -> None:
        if self.closed:
            return
        self._move(event)
        self._stop_reading()
        self.out_q.append(Msg(b"", 0, None, ACTION_CLOSE, b""))
        self.loop.schedule_flush(self)

    def _stop_reading(self) -> None:
        if self.state is _READING or self.state is _PAUSED:
            self._move(ClientEvent.STOP)
        self.framer.clear()
        self.pause_reading()

    # -- writing -----------------------------------------------------------

    def flush(self) -> None:
        out_q = self.out_q
        if not out_q or not out_q[0].done:
            if self.held is not None and out_q and out_q[0] is self.held[0][0]:
                self._route_held()
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
            self._move(ClientEvent.FINAL)
            out_q.clear()
        self.send_bytes(data)  # type: ignore[arg-type]
        if self.held is not None and out_q and out_q[0] is self.held[0][0]:
            self._route_held()
        if self._unsent is None:
            if self.state is _CLOSING and not self.closed:
                self.close()
            elif self.state is _PAUSED:
                self._maybe_resume()
            return
        # Only what waits behind the reply being written counts against the
        # limit: one large reply to a client that reads is no reason to drop it.
        waiting = sum(map(len, self._backlog))
        config = self.pool.config
        if waiting > config.client_output_limit:
            # A client that asks for more than it reads: drop it rather than
            # buffer without bound.
            logger.warning(
                "pool %s: closing client fd %d: %d reply bytes unread (client_output_limit)",
                self.pool.name,
                self.fd,
                self.unsent_bytes,
            )
            self.pool.stats.client_err += 1
            self.close()
        elif self.unsent_bytes > config.client_output_buffer:
            self._pause()
        elif self.state is _PAUSED:
            self._maybe_resume()

    def output_drained(self) -> None:
        if self.state is _CLOSING:
            self.close()
        elif self.state is _PAUSED:
            self._maybe_resume()

    def close(self) -> None:
        if self.closed:
            return
        self._move(ClientEvent.CLOSE)
        super().close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Requests still at servers keep a reference to us; their replies are
        # dropped when they arrive (``closed``), and the rest is freed here.
        self.out_q.clear()
        self.framer.clear()
        self.pool.client_closed(self)


class TLSClientConn(ClientConn, TLSStream):
    """A client of a pool with ``tls_cert``: the stream layer does the TLS.

    Until the handshake is done nothing is parsed (there is no plaintext);
    a client that fails it, or takes longer than the handshake timeout, is
    closed, counted in ``tls_handshake_failures`` and logged at INFO (a
    scanner or a plain-text client is the client's problem, not the
    operator's).
    """

    kind = "client-tls"

    def connection_ready(self) -> None:
        self.pool.stats.tls_connections += 1

    def handshake_failed(self, reason: str) -> None:
        self.pool.stats.tls_handshake_failures += 1
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "pool %s: client fd %d: TLS handshake failed: %s", self.pool.name, self.fd, reason
            )
        self.close()

    def close(self) -> None:
        if not self.closed and self.tls_established:
            self.pool.stats.tls_connections -= 1
        super().close()


def complete(msg: Msg, reply: bytes) -> None:
    """Record ``reply`` for ``msg`` and wake its client if it can now write."""
    reply_filter = msg.reply_filter
    if reply_filter is not None:
        reply = reply_filter(reply)
    msg.reply = reply
    msg.done = True
    parent = msg.parent
    if parent is not None:
        msg.parent = None  # no cycle: a finished fragment needs no parent
        parent.pending -= 1
        if parent.pending:
            return
        merge = parent.merge
        assert merge is not None
        parent.reply = merge(parent)
        parent.done = True
        # The fragments' keys, bytes and replies are merged: free them now,
        # not when the cycle collector finds the request.
        parent.frags = None
        parent.merge = None
        parent.keys = None
        msg = parent
    client = msg.client
    if client is not None and not client.closed:
        latency = client.latency
        if latency is not None:
            latency.observe(client.loop.now - msg.start_time)
        if not client.flush_scheduled:  # loop.schedule_flush(client), inlined: once per reply
            client.flush_scheduled = True
            client.loop.dirty.append(client)
