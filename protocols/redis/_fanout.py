"""Splitting multi-key Redis requests across servers and merging the replies.

Commands whose keys must share a server (``RENAME``, ``SINTERSTORE``,
``EVAL`` with several keys...) are never cut: forwarded whole when their keys
all route to one server, else answered ``-CROSSSLOT``.

``MGET``, ``DEL``/``UNLINK``/``TOUCH``/``EXISTS`` and ``MSET`` are cut into
one request per server holding some of their keys.  When every key lands on
the same server the original request is forwarded untouched (the reply is
then the server's own).  Otherwise the replies are merged:

* ``MGET``: one array in request order;
* ``DEL`` and friends: the sum of the integer replies;
* ``MSET``: ``+OK`` when every fragment said so.

When a fragment failed (its server refused the connection, timed out, or
answered an error), the whole request is answered with that error (as
nutcracker answers when a server is down), the first one in request order
when several failed (fragments are kept in the order of their first key, so
the first failed fragment holds the earliest failed key).  An ``MGET`` array with error
elements standing in for the missing values would be valid RESP, but
clients take it for a success (redis-py returns the exception objects as
list items), and a count or ``+OK`` without the failed servers' part would
be wrong.  A fragment reply that is neither an error nor what the command
answers (only a broken backend sends one) gets ``-ERR Protocol error``, the
error the proxy gives for a backend that breaks the protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.errors import ProtocolError
from corenet.msg import Msg
from corenet.protocols.redis import _accel
from corenet.protocols.redis._commands import Command, Route
from corenet.protocols.redis._parser import ReplyParser
from corenet.protocols.redis._resp import encode_command
from corenet.routing import group_by_server

if TYPE_CHECKING:
    from array import array
    from collections.abc import Callable, Sequence

__all__ = ["fragment"]


def fragment(msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
    """Split ``msg`` by server; see the module docstring."""
    cmd: Command = msg.info
    keys = msg.keys
    assert keys is not None
    if cmd.route not in _FANOUT:
        return _colocated(msg, keys, server_of)
    step, merge = _FANOUT[cmd.route]
    groups = group_by_server(keys, server_of, step)
    if len(groups) == 1:
        (index,) = groups
        return [(index, msg)]
    frags: list[tuple[int, Msg]] = []
    for index, positions in groups.items():
        args = [cmd.name]
        if step == 1:
            args += map(keys.__getitem__, positions)
        else:
            for i in positions:
                args += keys[i : i + step]
        frag = Msg(encode_command(args), 0, keys[positions[0]])
        frag.info = positions
        frags.append((index, frag))
    # The fragments carry their own bytes and keys: the request's are no
    # longer needed (a 400 000-key MGET holds 30 MB there until answered).
    msg.data = b""
    msg.keys = None
    return msg.split_into(frags, merge)


CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
"""Redis Cluster's answer to a request whose keys live on different nodes."""


def _colocated(
    msg: Msg, keys: list[bytes], server_of: Callable[[bytes], int]
) -> Sequence[tuple[int, Msg]]:
    """A command that cannot be split (``RENAME``, ``SINTERSTORE``, ``EVAL``
    ...): forwarded whole to the server of all its keys, or answered
    :data:`CROSSSLOT` without a server (no fragment: the reply is set)."""
    index = server_of(keys[0])
    for key in keys[1:]:
        if server_of(key) != index:
            msg.reply = CROSSSLOT
            return ()
    return [(index, msg)]


def _split_array_pure(reply: bytes) -> list[bytes] | None:
    """The elements of ``reply`` when it is exactly one complete array reply
    (``*`` and a count, not the null array), else None.  The reference for
    ``_speedups.split_array``."""
    nl = reply.find(b"\r\n")
    count = reply[1:nl]
    if reply[:1] != b"*" or nl < 0 or not count.isdigit():
        return None
    parser = ReplyParser()
    elements = []
    p = nl + 2
    for _ in range(int(count)):
        try:
            end = parser.parse(reply, p)
        except ProtocolError:
            return None
        if end < 0:
            return None
        elements.append(reply[p:end])
        p = end
    return elements if p == len(reply) else None


_split_array: Callable[[bytes], list[bytes] | None] = _accel.split_array or _split_array_pure


# What a fragment reply that cannot be merged and is no error becomes:
# os.strerror(EPROTO), as the core words a backend that broke the protocol.
_BAD_FRAGMENT = b"-ERR Protocol error\r\n"


def _failed(reply: bytes) -> bytes:
    """The whole request's reply when a fragment's ``reply`` cannot be merged:
    the error itself (``-`` or RESP3's blob error ``!``), else
    :data:`_BAD_FRAGMENT`."""
    return reply if reply[:1] in (b"-", b"!") else _BAD_FRAGMENT


def _merge_arrays_pure(
    count: int, replies: list[bytes], positions: list[array[int]]
) -> bytes | int:
    """One array reply of ``count`` elements, the ``j``-th element of
    ``replies[i]`` at ``positions[i][j]``; or the index of the first reply
    that is not an array of ``len(positions[i])`` elements.  The reference
    for ``_speedups.merge_arrays``, which copies each element once instead
    of making an object of it."""
    slots: list[bytes] = [b""] * (count + 1)
    slots[0] = b"*%d\r\n" % count
    for i, (reply, where) in enumerate(zip(replies, positions, strict=True)):
        elements = _split_array(reply)
        if elements is None or len(elements) != len(where):
            return i
        for p, element in zip(where, elements, strict=True):
            slots[p + 1] = element
    return b"".join(slots)


_merge_arrays: Callable[[int, list[bytes], list[array[int]]], bytes | int] = (
    _accel.merge_arrays or _merge_arrays_pure
)


def _merge_mget(msg: Msg) -> bytes:
    frags = msg.frags
    assert frags is not None
    replies = [frag.reply or b"" for frag in frags]
    positions: list[array[int]] = [frag.info for frag in frags]
    merged = _merge_arrays(sum(map(len, positions)), replies, positions)
    if isinstance(merged, int):
        return _failed(replies[merged])  # the first failed fragment, in request order
    return merged


def _merge_sum(msg: Msg) -> bytes:
    assert msg.frags is not None
    total = 0
    for frag in msg.frags:
        reply = frag.reply or b""
        number = reply[1:-2]
        # ASCII digits only (these counts are never negative): int() would
        # also take "+1", " 1" or "1_0", and raise, inside the event loop,
        # on anything else.
        if reply[:1] != b":" or not number.isdigit():
            return _failed(reply)
        total += int(number)
    return b":%d\r\n" % total


def _merge_ok(msg: Msg) -> bytes:
    assert msg.frags is not None
    for frag in msg.frags:
        reply = frag.reply or b""
        if reply != b"+OK\r\n":
            return _failed(reply)
    return b"+OK\r\n"


# Per fan-out route: how many arguments go with each key, and the merger.
_FANOUT: dict[Route, tuple[int, Callable[[Msg], bytes]]] = {
    Route.MGET: (1, _merge_mget),
    Route.SUM: (1, _merge_sum),
    Route.MSET: (2, _merge_ok),  # key value
}
