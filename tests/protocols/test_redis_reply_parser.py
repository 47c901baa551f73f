"""Properties of the Redis reply parser (RESP2 and RESP3 boundaries)."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.protocols.redis import ReplyParser
from corenet.testing import drive_replies, split_at
from corenet.testing.strategies import resp2_replies
from tests.protocols._helpers import (
    assert_any_split_finds_every_reply,
    assert_partial_tail_is_kept_whole,
    assert_reply_found_whole_bytewise_and_before_more,
)

NOT_ENOUGH = object()


def hiredis_decodes_exactly(reply: bytes) -> None:
    """hiredis reads ``reply`` as exactly one complete reply."""
    reader = hiredis.Reader(notEnoughData=NOT_ENOUGH)
    reader.feed(reply)
    assert reader.gets() is not NOT_ENOUGH
    assert reader.gets() is NOT_ENOUGH
    assert not reader.has_data()


@pytest.mark.parametrize(
    "reply",
    [
        b"+OK\r\n",
        b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b"-FOO custom\r\n",
        b":-42\r\n",
        b"$-1\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"$0\r\n\r\n",
        b"$5\r\nhe\r\no\r\n",
        b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n*0\r\n",
        b"%2\r\n+a\r\n:1\r\n+b\r\n_\r\n",
        b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n",
        b"=8\r\ntxt:abcd\r\n",
        b">2\r\n+message\r\n#t\r\n",
        b"~2\r\n,1.5\r\n(12345678901234567890\r\n",
        b"!9\r\nERR nope!\r\n",
    ],
)
def test_fixture_whole_bytewise_and_with_trailing_bytes(reply):
    assert_reply_found_whole_bytewise_and_before_more(ReplyParser, reply, b"*2\r\n:1")


@given(st.lists(resp2_replies(), min_size=1, max_size=8), st.data())
def test_resp2_any_split_finds_every_reply(replies, data):
    assert_any_split_finds_every_reply(ReplyParser, replies, data)
    for reply in replies:
        hiredis_decodes_exactly(reply)


@given(st.lists(resp2_replies(), min_size=1, max_size=8), resp2_replies(), st.data())
def test_partial_tail_is_kept_whole(replies, tail, data):
    assert_partial_tail_is_kept_whole(ReplyParser, replies, tail, data)


@given(st.binary(max_size=200))
@example(b"$3\r\nabcXY")
@example(b"*1\r\n?\r\n")
def test_garbage_gives_replies_need_more_data_or_protocol_error(garbage):
    found, err, left = drive_replies(ReplyParser(), [garbage])
    assert err is None or isinstance(err, ProtocolError)
    assert sum(map(len, found)) + left <= len(garbage)


@pytest.mark.parametrize(
    "garbage", [b"?\r\n", b"$abc\r\n", b"*x\r\n", b"$3\r\nabcXY", b"HTTP/1.1 200 OK\r\n"]
)
def test_bytes_that_are_not_replies_are_refused(garbage):
    _, err, _ = drive_replies(ReplyParser(), [garbage])
    assert isinstance(err, ProtocolError)


def test_large_nested_reply_in_many_reads():
    reply = b"*20000\r\n" + b"".join(b"$5\r\nv%04d\r\n" % (i % 10000) for i in range(20000))
    found, err, left = drive_replies(ReplyParser(), split_at(reply, range(0, len(reply), 4096)))
    assert err is None and left == 0
    assert found == [reply]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "pure"])
def test_a_large_array_arriving_in_pieces_is_parsed_a_few_times(compiled):
    # A 200 000-element MGET reply read 16 KiB at a time: the parser asks
    # the framer to wait for a lower bound of the rest (3 bytes an element,
    # at most 512 KiB ahead), instead of being called, and the tail joined
    # again, on every read (175 times here, copying 250 MB in all).
    from corenet import accel
    from corenet.framing import Framer

    if compiled:
        from tests._speedups import require_built

        name = "corenet.protocols.redis._speedups"
        require_built(accel.built(name), name)
    reply = b"*200000\r\n" + b"$8\r\nvvvvvvvv\r\n" * 200_000
    with accel.using(compiled):
        parser = ReplyParser()
    calls = 0
    parse = parser.parse

    def counting(buf: bytes, pos: int) -> int:
        nonlocal calls
        calls += 1
        return parse(buf, pos)

    parser.parse = counting  # type: ignore[method-assign]
    framer = Framer(parser, replies=True)
    found = []
    for i in range(0, len(reply), 16384):
        found += framer.feed(reply[i : i + 16384])
    assert found == [reply]
    assert calls <= 24, calls  # 19 today; one per read was 171
