"""Splitting multi-key Redis requests across servers and merging the replies.

``MGET``, ``DEL``/``UNLINK``/``TOUCH``/``EXISTS`` and ``MSET`` are cut into
one request per server holding some of their keys.  When every key lands on
the same server the original request is forwarded untouched (the reply is
then the server's own).  Otherwise the replies are merged:

* ``MGET``: one array in request order; keys whose server failed carry that
  fragment's error reply in their slot, so the client still gets the values
  that could be read;
* ``DEL`` and friends: the sum of the integer replies, or the first error;
* ``MSET``: ``+OK`` when every fragment said so, else the first error.
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
    from collections.abc import Callable, Sequence

__all__ = ["fragment"]


def fragment(msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
    """Split ``msg`` by server; see the module docstring."""
    cmd: Command = msg.info
    keys = msg.keys
    assert keys is not None
    step, merge = _FANOUT[cmd.route]
    groups = group_by_server(keys, server_of, step)
    if len(groups) == 1:
        (index,) = groups
        return [(index, msg)]
    frags: list[tuple[int, Msg]] = []
    for index, positions in groups.items():
        args = [cmd.name]
        if step == 1:
            args += [keys[i] for i in positions]
        else:
            for i in positions:
                args += keys[i : i + step]
        frag = Msg(encode_command(args), 0, keys[positions[0]])
        frag.parent = msg
        frag.info = positions
        frags.append((index, frag))
    msg.frags = [frag for _, frag in frags]
    msg.pending = len(frags)
    msg.merge = merge
    return frags


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


def _merge_mget(msg: Msg) -> bytes:
    assert msg.frags is not None and msg.keys is not None
    slots: list[bytes] = [b""] * len(msg.keys)
    for frag in msg.frags:
        reply = frag.reply or b""
        positions: list[int] = frag.info
        elements = _split_array(reply)
        if elements is None or len(elements) != len(positions):
            # An error (the server failed, or refused the fragment) stands
            # in for each of the fragment's values.
            for i in positions:
                slots[i] = reply
            continue
        for i, element in zip(positions, elements, strict=True):
            slots[i] = element
    return b"*%d\r\n" % len(slots) + b"".join(slots)


def _merge_sum(msg: Msg) -> bytes:
    assert msg.frags is not None
    total = 0
    for frag in msg.frags:
        reply = frag.reply or b""
        if reply[:1] != b":":
            return reply
        total += int(reply[1:-2])
    return b":%d\r\n" % total


def _merge_ok(msg: Msg) -> bytes:
    assert msg.frags is not None
    for frag in msg.frags:
        if frag.reply != b"+OK\r\n":
            return frag.reply or b""
    return b"+OK\r\n"


# Per fan-out route: how many arguments go with each key, and the merger.
_FANOUT: dict[Route, tuple[int, Callable[[Msg], bytes]]] = {
    Route.MGET: (1, _merge_mget),
    Route.SUM: (1, _merge_sum),
    Route.MSET: (2, _merge_ok),  # key value
}
