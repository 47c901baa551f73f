"""Splitting multi-key ``get``/``gets`` across servers and merging the replies.

A ``get`` whose keys all route to one server is forwarded whole (the reply
is then the server's own).  Otherwise each server gets ``get <its keys>``
(or ``gets``), keys in request order, and the replies are merged into one
``VALUE ... END`` reply with the values in request order, as nutcracker
does.  Duplicate keys are asked for, and answered, as often as the client
asked.

memcache's reply has no slot for a per-key error, so when a fragment fails
(``SERVER_ERROR Connection refused`` and the like, or any other non-VALUE
reply) the whole request gets that fragment's reply, as nutcracker answers a
failed fragment with one error: returning the other values alone would make
the failed keys look like misses, which clients take as "not cached".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.msg import Msg
from corenet.protocols.memcache._parser import value_blocks
from corenet.routing import group_by_server

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["fragment", "merge_get"]

_END = b"END\r\n"


def fragment(msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
    """Split ``msg`` (``ACTION_FANOUT``, ``keys`` set, ``info`` the command) by server."""
    keys = msg.keys
    assert keys is not None
    groups = group_by_server(keys, server_of)
    if len(groups) == 1:
        (index,) = groups
        return [(index, msg)]
    name: bytes = msg.info
    frags: list[tuple[int, Msg]] = []
    for index, positions in groups.items():
        wire = b" ".join([name, *[keys[i] for i in positions]]) + b"\r\n"
        frag = Msg(wire, 0, keys[positions[0]])
        frag.info = positions
        frags.append((index, frag))
    return msg.split_into(frags, merge_get)


def merge_get(msg: Msg) -> bytes:
    """Build the client's reply from the fragments' replies (see the module docstring)."""
    keys = msg.keys
    assert msg.frags is not None
    assert keys is not None
    slots: list[bytes] = [b""] * len(keys)
    for frag in msg.frags:
        reply = frag.reply or b""
        if reply == _END:
            continue
        if not reply.startswith(b"VALUE "):
            return reply
        positions: Sequence[int] = frag.info
        j = 0
        # The server answers in the order asked, skipping misses.
        for key, block in value_blocks(reply):
            while j < len(positions) and keys[positions[j]] != key:
                j += 1
            if j == len(positions):
                break
            slots[positions[j]] = block
            j += 1
    slots.append(_END)
    return b"".join(slots)
