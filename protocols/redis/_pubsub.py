"""Pub/Sub through the proxy: the client's subscriptions, Redis's replies.

A channel lives on the server its name routes to (the pool's hash and
``hash_tag``, as a key), so ``PUBLISH ch`` reaches the server where
``SUBSCRIBE ch`` listens; a pattern is subscribed on every server, since a
channel matching it may live on any.  The proxy keeps the client's
subscriptions here, in the session, and answers each (un)subscription with
the count one redis-server would give (the client's channels and patterns;
shard channels apart, as Redis counts them) once the servers concerned
have confirmed: a message published after the client saw its confirmation
reaches it.  Each request to a server names one channel or pattern, so it
has exactly one confirmation; the servers' own counts are dropped.

Pushed messages come back on the client's subscriber connections, one per
server it needs, and are passed on as they arrive (corenet.proxy.pinning);
each channel's messages keep their order, as they come from one server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.msg import ACTION_PIN, Msg, PinStep
from corenet.protocols.redis._resp import encode_command

if TYPE_CHECKING:
    from corenet.protocols.redis._local import Session

__all__ = ["SUBSCRIBED_ALLOWED", "is_push", "not_allowed", "pubsub_request", "subscribed_ping"]

SUBSCRIBED_ALLOWED = frozenset(
    b"subscribe unsubscribe psubscribe punsubscribe ssubscribe sunsubscribe ping quit reset".split()
)
"""What a RESP2 client may send while subscribed, as in Redis."""

_PUSHES = (b"3\r\n$7\r\nmessage\r\n", b"4\r\n$8\r\npmessage\r\n", b"3\r\n$8\r\nsmessage\r\n")


def is_push(frame: bytes) -> bool:
    """Whether a frame from a subscriber connection is a published message
    (not the confirmation or reply to a request)."""
    return frame[:1] in (b"*", b">") and frame.startswith(_PUSHES, 1)


def subscribed_ping(args: list[bytes]) -> bytes:
    """PING's reply to a subscribed RESP2 client (an array, as Redis sends)."""
    payload = args[1] if len(args) > 1 else b""
    return b"*2\r\n$4\r\npong\r\n$%d\r\n%s\r\n" % (len(payload), payload)


def not_allowed(name: bytes) -> bytes:
    return (
        b"-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        b"RESET are allowed in this context\r\n" % name
    )


def pubsub_request(session: Session, name: bytes, args: list[bytes], data: bytes, end: int) -> Msg:
    """The message for a (P|S)(UN)SUBSCRIBE request (module docstring)."""
    pattern = name.startswith((b"psub", b"punsub"))
    shard = name.startswith((b"ssub", b"sunsub"))
    if pattern:
        held = session.patterns
    elif shard:
        held = session.shard_channels
    else:
        held = session.channels
    adding = b"unsub" not in name
    verb = name.lower()
    names: list[bytes | None] = list(args[1:])
    if not adding and not names:
        names = list(held) or [None]
    reply = []
    streams: list[tuple[bytes | None, bytes]] = []
    for target in names:
        if target is not None:
            if adding and target not in held:
                held[target] = None
                streams.append((None if pattern else target, encode_command([verb, target])))
            elif not adding and target in held:
                del held[target]
                streams.append((None if pattern else target, encode_command([verb, target])))
        count = len(held) if shard else len(session.channels) + len(session.patterns)
        reply.append(_confirmation(session, verb, target, count))
    msg = Msg(data, end, None, ACTION_PIN)
    msg.info = PinStep(
        False,
        streams=streams,
        reply=b"".join(reply),
        stream_end=not session.subscribed,
    )
    return msg


def _confirmation(session: Session, verb: bytes, target: bytes | None, count: int) -> bytes:
    head = b">3\r\n" if session.protocol == 3 else b"*3\r\n"
    return head + session.bulk(verb) + session.bulk(target) + b":%d\r\n" % count
