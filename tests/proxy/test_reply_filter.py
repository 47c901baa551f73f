"""``Msg.reply_filter``: the server's reply is rewritten before it is recorded."""

from __future__ import annotations

from corenet.msg import Msg
from corenet.proxy.client import complete


def drop_hd(reply: bytes) -> bytes:
    return b"" if reply.startswith(b"HD") else reply


def test_a_filtered_reply_is_recorded_rewritten() -> None:
    dropped = Msg(b"ms k 1\r\nx\r\n", 0, b"k")
    dropped.reply_filter = drop_hd
    kept = Msg(b"ms k 1\r\nx\r\n", 0, b"k")
    kept.reply_filter = drop_hd
    complete(dropped, b"HD\r\n")
    complete(kept, b"NS\r\n")
    assert (dropped.done, dropped.reply) == (True, b"")
    assert (kept.done, kept.reply) == (True, b"NS\r\n")


def test_without_a_filter_the_reply_is_recorded_as_it_came() -> None:
    msg = Msg(b"get k\r\n", 0, b"k")
    complete(msg, b"HD\r\n")
    assert msg.reply == b"HD\r\n"


def test_a_fragment_is_filtered_before_the_merge_sees_it() -> None:
    parent = Msg(b"", 0)
    frags = [Msg(b"", 0, b"a"), Msg(b"", 0, b"b")]
    for frag in frags:
        frag.parent = parent
        frag.reply_filter = drop_hd
    parent.frags = frags
    parent.pending = 2
    parent.merge = lambda m: repr([f.reply for f in m.frags or []]).encode()
    complete(frags[0], b"HD\r\n")
    complete(frags[1], b"EX\r\n")
    assert parent.reply == repr([b"", b"EX\r\n"]).encode()
