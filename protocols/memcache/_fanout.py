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

from corenet import accel
from corenet.msg import Msg
from corenet.protocols.memcache._parser import _EXTENSION, value_blocks
from corenet.routing import group_by_server

if TYPE_CHECKING:
    from array import array
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
        frag = Msg(_get_wire(name, keys, positions), 0, keys[positions[0]])
        frag.info = positions
        frags.append((index, frag))
    return msg.split_into(frags, merge_get)


def _get_wire_pure(name: bytes, keys: list[bytes], positions: array[int]) -> bytes:
    """The fragment's request: ``name`` and the keys at ``positions``.  The
    reference for ``_speedups.get_wire``."""
    return b" ".join([name, *[keys[i] for i in positions]]) + b"\r\n"


def merge_get(msg: Msg) -> bytes:
    """Build the client's reply from the fragments' replies (see the module docstring)."""
    keys = msg.keys
    frags = msg.frags
    assert frags is not None
    assert keys is not None
    replies = [frag.reply or b"" for frag in frags]
    positions: list[array[int]] = [frag.info for frag in frags]
    merged = _merge_values(keys, replies, positions)
    if merged == -1:  # the compiled merge declined: the reference decides
        merged = _merge_values_pure(keys, replies, positions)
    return merged if isinstance(merged, bytes) else replies[merged]


def _merge_values_pure(
    keys: list[bytes], replies: list[bytes], positions: list[array[int]]
) -> bytes | int:
    """The reply of a multi-get of ``keys`` split into fragments whose
    ``replies`` answer the keys at ``positions``: their ``VALUE`` blocks in
    request order, then ``END``; or the index of the first reply that is
    neither (the whole request's reply).  The reference for
    ``_speedups.merge_values``, which copies each block once instead of
    making an object of it."""
    slots: list[bytes] = [b""] * len(keys)
    for i, reply in enumerate(replies):
        if reply != _END and not reply.startswith(b"VALUE "):
            return i
    for reply, where in zip(replies, positions, strict=True):
        j = 0
        # The server answers in the order asked, skipping misses.
        for key, block in value_blocks(reply):  # none in END alone
            while j < len(where) and keys[where[j]] != key:
                j += 1
            if j == len(where):
                break
            slots[where[j]] = block
            j += 1
    slots.append(_END)
    return b"".join(slots)


_compiled = accel.compiled(_EXTENSION)
_merge_values: Callable[[list[bytes], list[bytes], list[array[int]]], bytes | int] = (
    _compiled.merge_values if _compiled is not None else _merge_values_pure
)
_get_wire: Callable[[bytes, list[bytes], array[int]], bytes] = (
    _compiled.get_wire if _compiled is not None else _get_wire_pure
)
