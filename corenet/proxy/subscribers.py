"""Subscriber connections: server connections of a client's own whose
pushed messages go straight to it (Pub/Sub).

An ``ACTION_PIN`` request whose :class:`corenet.msg.PinStep` carries
``streams`` (the protocol's (un)subscriptions) is sent on the client's
subscriber connections, one per server it needs, made on demand and counted
against ``max_pinned_connections`` like every dedicated connection.  Each
stream request has one reply (its confirmation); once all have one, the
client gets the protocol's own ``reply``, or the first error.  Frames the
protocol's ``is_push`` recognises (a published message) are not replies:
the server connection hands them to :meth:`ClientConn.push` as they come,
so they reach the client in the order each server sent them, after the
replies already due.

A subscriber connection that fails takes the client's subscriptions with it:
the client gets what it is owed and is then closed, as a direct client's
connection would close, so that its library reconnects and subscribes again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.msg import Msg
from corenet.proxy.client import complete
from corenet.proxy.pinning import no_connection_reason

if TYPE_CHECKING:
    from corenet.msg import PinStep
    from corenet.proxy.client import ClientConn
    from corenet.proxy.pinning import PinPool, PinServer
    from corenet.proxy.server import ServerConn

__all__ = ["close_streams", "forward_streams", "stream_lost"]


def forward_streams(pool: PinPool, msg: Msg, client: ClientConn) -> None:
    """Send ``msg``'s stream requests (module docstring)."""
    step: PinStep = msg.info
    live = pool.live
    if not live:
        pool.unroutable(msg)
        return
    targets: list[tuple[PinServer, Msg]] = []
    # A Redis Cluster sends every published message to every node: one
    # node's subscriptions hear them all (two nodes' would hear each twice),
    # so a client keeps to the node it subscribed on first.
    one_node = [next(iter(client.streams), live[0])] if pool.config.redis_cluster else None
    try:
        for key, request in step.streams:
            if one_node is not None:
                servers = one_node
            elif key is None:
                servers = live
            else:
                servers = [pool.owners[pool.index_of(key)]]
            targets.extend((server, Msg(request, len(request))) for server in servers)
    except Exception as exc:  # a hash or distribution plugin's bug
        pool.plugin_failed(msg, exc)
        return
    client.stream_epoch += 1
    if not targets:
        complete(msg, step.reply)
        if step.stream_end:
            close_streams(client)
        return
    msg.split_into([(0, frag) for _, frag in targets], _merge)
    for server, frag in targets:
        conn = _stream_for(pool, server, client)
        if conn is None:
            complete(frag, pool.protocol.error_reply(no_connection_reason(pool, server)))
        else:
            conn.enqueue(frag)


def _merge(msg: Msg) -> bytes:
    assert msg.frags is not None
    for frag in msg.frags:
        if frag.reply is not None and frag.reply[:1] == b"-":
            return frag.reply
    step: PinStep = msg.info
    client: ClientConn | None = msg.client
    if step.stream_end and client is not None:
        # Not now: this runs inside a subscriber connection's read.
        epoch = client.stream_epoch
        client.loop.timers.call_later(0, lambda: _end_if_idle(client, epoch))
    return step.reply


def _end_if_idle(client: ClientConn, epoch: int) -> None:
    # A newer (un)subscription since: the connections are in use again.
    if client.stream_epoch == epoch:
        close_streams(client)


def _stream_for(pool: PinPool, server: PinServer, client: ClientConn) -> ServerConn | None:
    streams = client.streams
    conn: ServerConn | None = streams.get(server)
    if conn is not None and not conn.closed:
        return conn
    if pool.pinned >= pool.config.max_pinned_connections:
        return None
    conn = server.connect_dedicated(client.parser.variant)
    if conn is None:
        return None
    conn.push_to = client
    conn.timeout = None  # a subscriber waits for messages as long as it likes
    streams[server] = conn
    return conn


def close_streams(client: ClientConn) -> None:
    """Close ``client``'s subscriber connections (it needs them no more)."""
    streams = client.streams
    client.streams = {}
    for conn in streams.values():
        conn.push_to = None
        conn.close()


def stream_lost(conn: ServerConn) -> None:
    """Subscriber connection ``conn`` closed under its client (module docstring)."""
    client: ClientConn | None = conn.push_to
    conn.push_to = None
    if client is None:
        return
    for server, held in list(client.streams.items()):
        if held is conn:
            del client.streams[server]
    if not client.closed:
        client.close_when_done()
