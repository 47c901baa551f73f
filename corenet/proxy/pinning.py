"""Server connections of a client's own, for ``ACTION_PIN`` requests.

A request that leaves state on its server connection (a transaction, a
watch, a blocked read: the protocol marks it ``ACTION_PIN`` with a
:class:`corenet.msg.PinStep`) travels on a *dedicated* connection instead of
the shared, multiplexed ones.  The client is pinned to that connection, on
the server its first key routes to, until the protocol says the state is
over (``hold`` false) and the connection has answered everything; then the
connection goes back to its server's few idle dedicated connections for the
next client's pin.  A client that closes while pinned closes its connection
too (whatever it held, a transaction or a blocked read, dies with it, as it
would with a direct client).

Dedicated connections count against the pool's ``max_pinned_connections``
(a pin beyond it gets an error, nothing waits); they are made, timed out and
failed like the shared ones.  The client's replies stay in request order
whichever connection answers, since the client connection writes them in
order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from corenet.msg import Msg
from corenet.proxy.client import ClientPin, complete

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.msg import PinStep
    from corenet.proxy.client import ClientConn
    from corenet.proxy.config import PoolConfig
    from corenet.proxy.server import ServerConn

__all__ = [
    "IDLE_DEDICATED",
    "PinPool",
    "PinServer",
    "forward_beside_pin",
    "forward_pinned",
    "no_connection_reason",
    "pin_lost",
    "release_pin",
]

IDLE_DEDICATED = 4
"""Idle dedicated connections kept per server for later pins."""


class PinServer(Protocol):
    """What pinning needs of a server (:class:`corenet.proxy.backends.Server`)."""

    idle_dedicated: list[ServerConn]
    connect_reason: str

    def connect_dedicated(self, variant: int) -> ServerConn | None: ...


class PinPool(Protocol):
    """What pinning needs of a pool (:class:`corenet.proxy.pool.Pool`)."""

    live: list[Any]  # its servers, each a PinServer
    owners: list[Any]  # what index_of's values index, each a PinServer
    index_of: Callable[[bytes], int]
    config: PoolConfig
    protocol: Any
    pinned: int
    timeout: float | None

    def forward(self, msg: Msg, key: bytes, client: ClientConn) -> None: ...

    def forward_failed(self, msg: Msg, reason: str) -> None: ...

    def plugin_failed(self, msg: Msg, exc: Exception) -> None: ...

    def unroutable(self, msg: Msg) -> None: ...


def forward_pinned(pool: PinPool, msg: Msg, client: ClientConn) -> bool:
    """Send ``client``'s ``ACTION_PIN`` request ``msg`` (module docstring).

    Returns False, having done nothing, when ``msg`` must wait until the
    client's earlier requests are answered: a new pin starts on its own
    connection, which must not overtake what went before on others (Redis
    runs one client's commands in order).
    """
    step: PinStep = msg.info
    pin = client.pin
    if pin is None:
        pin = client.pin = ClientPin()
    conn = pin.conn
    if conn is not None and not pin.hold:
        # The pinned state is over but its connection still answers: a new
        # one may go on it only to the same server and database; any other
        # waits for it to end and starts afresh.
        same = (
            msg.key is not None
            and conn.variant == client.parser.variant
            and _server_of(pool, msg.key) is pin.server
        )
        if not same:
            return False
    if conn is None:
        if msg.key is None and step.parked_reply is not None:
            # No server yet (MULTI, or keyless commands right after it).
            pin.parked.append(msg.data)
            pin.hold = step.hold
            complete(msg, step.parked_reply)
            return True
        if client.waits_before(msg):
            return False
        live = pool.live
        if not live:
            pool.unroutable(msg)
            return True
        try:
            server = pool.owners[pool.index_of(msg.key)] if msg.key is not None else live[0]
        except Exception as exc:  # a hash or distribution plugin's bug
            pool.plugin_failed(msg, exc)
            return True
        if not _co_located(pool, server, step):
            _refuse(pool, msg, pin, step)
            return True
        conn = _take(pool, server, client)
        if conn is None:
            pool.forward_failed(msg, no_connection_reason(pool, server))
            pin.parked.clear()
            pin.hold = False
            return True
        pin.conn = conn
        pin.server = server
        for data in pin.parked:
            conn.enqueue(Msg(data, len(data)))  # no client: the reply was given
        pin.parked.clear()
    elif not _co_located(pool, pin.server, step):
        _refuse(pool, msg, pin, step)
        return True
    pin.hold = step.hold
    if step.abort is not None and pin.failed:
        data, reply = step.abort
        conn.enqueue(Msg(data, len(data)))
        complete(msg, reply)
    else:
        if step.blocking:
            # Blocking by design: the proxy's timeout runs after the command's own.
            wait = step.wait
            conn.timeout = None if wait == 0 or pool.timeout is None else wait + pool.timeout
            pin.blocked = True
        else:
            conn.timeout = pool.timeout
        conn.enqueue(msg)
    if not step.hold:
        pin.failed = False
    return True


def forward_beside_pin(pool: PinPool, msg: Msg, client: ClientConn) -> None:
    """A plain request from a pinned client: on the pinned connection when it
    goes to the pinned server and database (it must not overtake the pinned
    requests, nor they it), else as usual."""
    pin = client.pin
    key = msg.key or b""
    conn = pin.conn if pin is not None else None
    if (
        conn is not None
        and conn.variant == client.parser.variant
        and _server_of(pool, key) is pin.server  # type: ignore[union-attr]
    ):
        conn.timeout = pool.timeout
        conn.enqueue(msg)
        return
    pool.forward(msg, key, client)


def _server_of(pool: PinPool, key: bytes) -> Any:
    """The live server ``key`` routes to, or None (no live server, or a
    routing plugin failed: the usual path then answers the request)."""
    try:
        return pool.owners[pool.index_of(key)] if pool.owners else None
    except Exception:
        return None


def no_connection_reason(pool: PinPool, server: PinServer) -> str:
    """Why no dedicated connection to ``server`` could be had just now."""
    if pool.pinned >= pool.config.max_pinned_connections:
        return "max number of pinned connections reached"
    return server.connect_reason


def _co_located(pool: PinPool, server: PinServer, step: PinStep) -> bool:
    # A key whose routing fails counts as elsewhere: refused, not misrouted.
    return all(_server_of(pool, key) is server for key in step.keys)


def _refuse(pool: PinPool, msg: Msg, pin: ClientPin, step: PinStep) -> None:
    pin.failed = True
    complete(msg, pool.protocol.cross_server_error)
    if not step.hold and pin.conn is None:
        pin.parked.clear()
        pin.hold = False


def _take(pool: PinPool, server: PinServer, client: ClientConn) -> ServerConn | None:
    """A dedicated connection to ``server`` for ``client``, or None (over
    ``max_pinned_connections``, or the server is backing off)."""
    variant = client.parser.variant
    idle = server.idle_dedicated
    # Closed ones leave the list as they close (Server.conn_closed).
    conn = next((c for c in reversed(idle) if c.variant == variant), None)
    if conn is not None:
        idle.remove(conn)
    else:
        if pool.pinned >= pool.config.max_pinned_connections and idle:
            idle[0].close()  # an idle one of another database or protocol makes room
        if pool.pinned >= pool.config.max_pinned_connections:
            return None
        conn = server.connect_dedicated(variant)
        if conn is None:
            return None
    conn.when_idle = _conn_idle
    conn.pinned_by = client
    return conn


def _conn_idle(conn: ServerConn) -> None:
    """``conn`` answered all it was sent: give it back unless its client holds it."""
    client: ClientConn | None = conn.pinned_by
    pin = client.pin if client is not None else None
    if client is None or pin is None or pin.conn is not conn:
        conn.close()
        return
    pin.blocked = False
    if pin.hold and not client.closed:
        return
    release_pin(client)


def pin_lost(conn: ServerConn) -> None:
    """Dedicated ``conn`` closed.  A client whose state it held (a transaction,
    a watch) cannot go on as if it still existed: it gets the replies it is
    owed (the failed requests' errors), then its connection closes, as a
    direct client's would."""
    client: ClientConn | None = conn.pinned_by
    conn.pinned_by = None
    if client is None or client.pin is None or client.pin.conn is not conn:
        return
    held = client.pin.hold
    client.pin = None
    if held and not client.closed:
        client.close_when_done()


def release_pin(client: ClientConn) -> None:
    """End ``client``'s pin: an idle connection that holds no state is kept for
    the next pin; one that is busy or holds state closes."""
    pin = client.pin
    if pin is None:
        return
    conn = pin.conn
    client.pin = None
    if conn is None or conn.closed:
        return
    conn.when_idle = None
    conn.pinned_by = None
    server = pin.server
    assert server is not None
    reusable = (
        not pin.hold
        and not conn.in_q
        and not conn.out_q
        and not conn.retiring
        and len(server.idle_dedicated) < IDLE_DEDICATED
    )
    if reusable:
        server.idle_dedicated.append(conn)
    else:
        conn.close()
