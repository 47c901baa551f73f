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

from corenet.msg import Msg
from corenet.protocols.redis._commands import Command, Route
from corenet.protocols.redis._parser import ReplyParser
from corenet.protocols.redis._resp import encode_command

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["fragment"]


def fragment(msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
    """Split ``msg`` by server; see the module docstring."""
    cmd: Command = msg.info
    keys = msg.keys
    assert keys is not None
    step = 2 if cmd.route is Route.MSET else 1
    groups: dict[int, list[int]] = {}
    for i in range(0, len(keys), step):
        groups.setdefault(server_of(keys[i]), []).append(i)
    if len(groups) == 1:
        (index,) = groups
        return [(index, msg)]
    frags: list[tuple[int, Msg]] = []
    for index, positions in groups.items():
        args = [cmd.name]
        for i in positions:
            args.extend(keys[i : i + step])
        frag = Msg(encode_command(args), 0, keys[positions[0]])
        frag.parent = msg
        frag.info = positions
        frags.append((index, frag))
    msg.frags = [frag for _, frag in frags]
    msg.pending = len(frags)
    msg.merge = _MERGERS[cmd.route]
    return frags


def _merge_mget(msg: Msg) -> bytes:
    assert msg.frags is not None and msg.keys is not None
    slots: list[bytes] = [b""] * len(msg.keys)
    for frag in msg.frags:
        reply = frag.reply or b""
        positions: list[int] = frag.info
        if reply[:1] != b"*":
            for i in positions:
                slots[i] = reply
            continue
        parser = ReplyParser()
        p = reply.index(b"\r\n") + 2
        for i in positions:
            end = parser.parse(reply, p)
            slots[i] = reply[p:end]
            p = end
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


_MERGERS: dict[Route, Callable[[Msg], bytes]] = {
    Route.MGET: _merge_mget,
    Route.SUM: _merge_sum,
    Route.MSET: _merge_ok,
}
