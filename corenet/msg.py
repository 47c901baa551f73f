"""Messages: one request, its reply, and how it travels.

A request ``Msg`` is created by a protocol's request parser, owned by the
client connection that read it (it sits in that client's ``out_q`` until its
reply has been written back, which keeps replies in request order), and
borrowed by at most one server connection (its ``in_q`` until sent, then its
``out_q`` until the reply arrives).  The reply is not a second object: its
wire bytes are stored on the request (``reply``), which is what twemproxy's
``peer`` link amounts to once replies are forwarded as raw bytes.

A request that spans several servers (``MGET`` over keys on different
shards) is split into fragment messages whose ``parent`` is the original;
the parent is done when its last fragment is, and its ``merge`` callable
builds the single reply from the fragments' replies.

A request may carry a ``reply_filter``: the server's reply passes through it
before it is recorded, so a protocol can answer on the client's terms what it
asked the server on its own (memcache's quiet meta commands are forwarded
without ``q`` so that every request has exactly one reply, and the filter
turns the replies memcached would have suppressed into ``b""``).  One reply
per request stays the rule the server connections count on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "ACTION_CLOSE",
    "ACTION_EVERY",
    "ACTION_FANOUT",
    "ACTION_FORWARD",
    "ACTION_LOCAL",
    "ACTION_PIN",
    "Msg",
    "PinStep",
    "fanout_msg",
]

# What the client connection does with a parsed request.
ACTION_FORWARD = 0  # route ``key`` and forward ``data`` to one server
ACTION_LOCAL = 1  # ``reply`` is already set: answer without a server
ACTION_CLOSE = 2  # ``reply`` is already set: answer, then close the client
ACTION_FANOUT = 3  # split across servers by the protocol's ``fragment``
ACTION_EVERY = 4  # keyless, for every live server: the protocol's ``fragment_every``
ACTION_PIN = 5  # on a server connection of this client's own: ``info`` is a PinStep


@attrs.frozen(repr=False)
class PinStep:
    """How an ``ACTION_PIN`` request uses the client's dedicated server connection.

    Some requests leave state on the server connection that carries them (a
    transaction, a watch, a blocked read): they cannot share a multiplexed
    connection, so the application pins the client to a connection of its
    own on one server, routed by ``key`` (the first request with a key
    decides; a keyless one goes to the pinned server).  The protocol, which
    knows what its commands do, says per request:

    ``hold``
        whether the client stays pinned once this request is answered (a
        transaction goes on); otherwise the connection is given back when
        its requests are answered, for another client's next pin.
    ``keys``
        every key of the request: all must live on the pinned server, else
        the request is answered the protocol's ``cross_server_error`` and
        the pin is marked failed.
    ``parked_reply``
        for a keyless request from a client not pinned yet: answer this at
        once and send the request later, ahead of the first one with a key
        (MULTI is answered ``+OK`` before anyone knows where it goes).
    ``abort``
        ``(request, reply)``: if a request of this pin failed, send
        ``request`` instead and answer ``reply`` (EXEC after a refused
        command: DISCARD, and Redis's EXECABORT).
    ``blocking``
        the request waits by design for ``wait`` seconds (0: for ever), so
        the proxy's timeout counts from then, and a client that leaves while
        it waits takes the connection with it.
    ``streams``
        ``(key, request)`` pairs for the client's *subscriber* connections
        instead (one per server it needs, whose pushed messages go to the
        client as they come): each request goes to the server ``key`` routes
        to, or to every server for a None key, and has one reply; once all
        are answered the client gets ``reply`` (or the first error).
        ``stream_end``: the client needs them no more once answered.
    """

    hold: bool
    keys: Sequence[bytes] = ()
    parked_reply: bytes | None = attrs.field(default=None, kw_only=True)
    abort: tuple[bytes, bytes] | None = attrs.field(default=None, kw_only=True)
    blocking: bool = attrs.field(default=False, kw_only=True)
    wait: float = attrs.field(default=0.0, kw_only=True)
    streams: Sequence[tuple[bytes | None, bytes]] = attrs.field(default=(), kw_only=True)
    reply: bytes = attrs.field(default=b"", kw_only=True)
    stream_end: bool = attrs.field(default=False, kw_only=True)

    def __repr__(self) -> str:
        return f"<PinStep hold={self.hold} keys={len(self.keys)} blocking={self.blocking}>"


class Msg:
    """A request in flight, with the bytes of its reply once known.

    A plain ``__slots__`` class rather than an attrs class: one is built per
    request, and a hand-written ``__init__`` with positional defaults is the
    cheapest constructor CPython offers.
    """

    __slots__ = (
        "action",
        "client",
        "data",
        "deadline",
        "done",
        "end",
        "expect_reply",
        "frags",
        "hops",
        "info",
        "key",
        "keys",
        "merge",
        "parent",
        "pending",
        "reply",
        "reply_filter",
        "start_time",
    )

    hops: int
    """Times the request was sent on to another server; unset until then."""

    def __init__(
        self,
        data: bytes,
        end: int,
        key: bytes | None = None,
        action: int = ACTION_FORWARD,
        reply: bytes | None = None,
    ) -> None:
        self.data = data
        self.end = end
        self.key = key
        self.action = action
        self.reply = reply
        self.done = reply is not None
        self.expect_reply = True
        self.client: Any = None
        """The connection the request came from (the application sets it)."""
        self.deadline = 0.0
        self.start_time = 0.0
        self.keys: list[bytes] | None = None
        self.info: Any = None
        self.parent: Msg | None = None
        self.frags: list[Msg] | None = None
        self.pending = 0
        self.merge: Callable[[Msg], bytes] | None = None
        self.reply_filter: Callable[[bytes], bytes] | None = None
        """Rewrites the server's reply before it is recorded (``b""``: send nothing)."""
        # ``hops`` stays unset (no cost per request): what sends a request on
        # (a Redis Cluster redirection) reads ``getattr(msg, "hops", 0)``.

    def split_into(
        self, frags: list[tuple[int, Msg]], merge: Callable[[Msg], bytes]
    ) -> list[tuple[int, Msg]]:
        """Make ``frags`` ((server index, fragment) pairs) this request's
        fragments, whose replies ``merge`` turns into this request's reply."""
        for _, frag in frags:
            frag.parent = self
        self.frags = [frag for _, frag in frags]
        self.pending = len(frags)
        self.merge = merge
        return frags

    def __repr__(self) -> str:
        state = "done" if self.done else "pending"
        return f"<Msg {bytes(self.data[:40])!r} {state}>"


def fanout_msg(data: bytes, end: int, keys: list[bytes], info: Any) -> Msg:
    """An ``ACTION_FANOUT`` request: ``keys`` in request order, ``info``
    whatever the protocol's ``fragment`` needs (the command)."""
    msg = Msg(data, end, None, ACTION_FANOUT)
    msg.keys = keys
    msg.info = info
    return msg
