"""Properties of the memcache reply parser and of merging fanned-out get replies."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.protocols.memcache import MemcacheProtocol, ReplyParser, RequestParser, fragment
from corenet.testing import drive_replies, drive_requests, split_at
from corenet.testing.memcache_strategies import (
    memcache_get_replies,
    memcache_keys,
    memcache_replies,
    memcache_value_block,
)
from tests.protocols._helpers import (
    assert_partial_tail_is_kept_whole,
    assert_reply_found_whole_bytewise_and_before_more,
    record_parse_calls,
)

if TYPE_CHECKING:
    from corenet.msg import Msg

REPLIES = [
    b"STORED\r\n",
    b"NOT_STORED\r\n",
    b"EXISTS\r\n",
    b"NOT_FOUND\r\n",
    b"DELETED\r\n",
    b"TOUCHED\r\n",
    b"ERROR\r\n",
    b"END\r\n",
    b"0\r\n",
    b"18446744073709551615\r\n",
    b"VERSION 1.6.18\r\n",
    b"CLIENT_ERROR bad command line format\r\n",
    b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    b"SERVER_ERROR object too large for cache\r\n",
    b"SERVER_ERROR out of memory storing object\r\n",
    b"VALUE k 0 3\r\nabc\r\nEND\r\n",
    b"VALUE k 4294967295 0\r\n\r\nEND\r\n",
    b"VALUE k 1 5 18446744073709551615\r\nEND\r\n\r\nEND\r\n",  # data that looks like END
    b"VALUE a 0 4\r\n\r\n\r\n\r\nVALUE \x10b 7 1 2\r\nx\r\nEND\r\n",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_fixture_whole_bytewise_and_with_trailing_bytes(reply):
    assert_reply_found_whole_bytewise_and_before_more(ReplyParser, reply, b"VALUE k 0 9\r\nab")


@given(st.lists(memcache_replies(), min_size=1, max_size=8), memcache_replies(), st.data())
def test_partial_tail_is_kept_whole(replies, tail, data):
    assert_partial_tail_is_kept_whole(ReplyParser, replies, tail, data)


@given(st.binary(max_size=200), st.data())
@example(b"VALUE k 0 3\r\nabcXY", None)
@example(b"VALUE k 0 3\r\nabc\r\nSTORED\r\n", None)
def test_garbage_gives_replies_need_more_data_or_protocol_error(garbage, data):
    found, err, left = drive_replies(ReplyParser(), [garbage])
    assert err is None or isinstance(err, ProtocolError)
    assert sum(map(len, found)) + left <= len(garbage)
    if data is not None:
        cuts = data.draw(st.lists(st.integers(0, len(garbage)), max_size=6))
        split, split_err, split_left = drive_replies(ReplyParser(), split_at(garbage, cuts))
        assert split == found
        assert (split_err is None) == (err is None)


@pytest.mark.parametrize(
    "garbage",
    [
        b"HTTP/1.1 200 OK\r\n",
        b"+OK\r\n",
        b"STORED\n",  # memcached always ends lines with CRLF
        b"\r\n",
        b"stored\r\n",
        b"-1\r\n",
        b"VALUE k 0 3\r\nabcXY",
        b"VALUE k 0 -3\r\n",
        b"VALUE k 0\r\n",
        b"VALUE k x 3\r\nabc\r\nEND\r\n",
        b"VALUE k 0 3 x\r\nabc\r\nEND\r\n",
        b"VALUE k 0 99999999999\r\n",
        b"VALUE k 0 1\r\nx\r\nSTORED\r\n",  # only VALUE or END after a VALUE
        b"VALUE k 0 1\r\nx\r\nSERVER_ERROR oops\r\n",
        b"X" * 10000,
        b"SERVER_ERROR " + b"x" * 9000 + b"\r\n",
    ],
)
def test_bytes_that_are_not_replies_are_refused(garbage):
    for chunks in ([garbage], split_at(garbage, range(0, len(garbage), 1000))):
        _, err, _ = drive_replies(ReplyParser(), chunks)
        assert isinstance(err, ProtocolError)


def test_large_value_in_many_reads_is_parsed_a_few_times():
    reply = memcache_value_block(b"big", bytes(range(256)) * 4096) + b"END\r\n"
    parser = ReplyParser()
    calls = record_parse_calls(parser)
    found, err, left = drive_replies(parser, split_at(reply, range(0, len(reply), 16384)))
    assert err is None
    assert left == 0
    assert found == [reply]
    assert len(calls) <= 4


def test_value_size_sets_need():
    parser = ReplyParser()
    found, err, _ = drive_replies(parser, [b"VALUE k 0 1000000\r\nab"])
    assert (found, err) == ([], None)
    assert parser.need == len(b"VALUE k 0 1000000\r\n") + 1000000 + 2


def test_error_reply_wording():
    protocol = MemcacheProtocol()
    assert protocol.error_reply("Connection refused") == b"SERVER_ERROR Connection refused\r\n"
    assert protocol.error_reply("a\r\nb") == b"SERVER_ERROR a  b\r\n"
    assert protocol.server_handshake(None, 0) == ()  # type: ignore[arg-type]


# -- merging fragments ------------------------------------------------------------


def fan_out(
    keys: list[bytes], nservers: int, command: bytes = b"get"
) -> tuple[Msg, list[tuple[int, Msg]]]:
    msgs, err, _ = drive_requests(RequestParser(), [command + b" " + b" ".join(keys) + b"\r\n"])
    assert err is None
    (msg,) = msgs
    frags = list(fragment(msg, lambda key: key[0] % nservers))
    return msg, frags


def answer(frag: Msg, store: dict[bytes, bytes], parent: Msg) -> None:
    keys = parent.keys
    assert keys is not None
    body = b"".join(
        memcache_value_block(keys[i], store[keys[i]]) for i in frag.info if keys[i] in store
    )
    frag.reply = body + b"END\r\n"


def merged(msg: Msg) -> bytes:
    """The reply the get's merger makes of its fragments' replies."""
    assert msg.merge is not None
    return msg.merge(msg)


def assert_one_whole_reply(reply: bytes) -> None:
    found, err, left = drive_replies(ReplyParser(), [reply])
    assert err is None
    assert left == 0
    assert found == [reply]


@given(
    st.lists(memcache_keys(max_size=12), min_size=2, max_size=20),
    st.dictionaries(memcache_keys(max_size=12), st.binary(max_size=30), max_size=10),
    st.integers(2, 4),
)
def test_merged_reply_equals_one_servers_reply_in_request_order(keys, store, nservers):
    store.update({k: b"v-" + k for k in keys[::3]})
    msg, frags = fan_out(keys, nservers)
    expected = b"".join(memcache_value_block(k, store[k]) for k in keys if k in store) + b"END\r\n"
    if len(frags) == 1:
        return  # forwarded whole: the server's own reply
    for _, frag in frags:
        answer(frag, store, msg)
    reply = merged(msg)
    assert reply == expected
    assert_one_whole_reply(reply)


def test_a_failed_fragment_fails_the_whole_get():
    keys = [b"a", b"b", b"c", b"d"]
    msg, frags = fan_out(keys, 2)
    assert len(frags) == 2
    frags[0][1].reply = memcache_value_block(keys[frags[0][1].info[0]], b"x") + b"END\r\n"
    frags[1][1].reply = b"SERVER_ERROR Connection refused\r\n"
    assert merged(msg) == b"SERVER_ERROR Connection refused\r\n"


def test_gets_fragments_keep_cas_and_duplicates():
    msg, frags = fan_out([b"a", b"b", b"a", b"c"], 2, b"gets")
    by_key = {b"a": b"1", b"b": b"22", b"c": b"333"}
    for _, frag in frags:
        assert frag.data.startswith(b"gets ")
        keys = [msg.keys[i] for i in frag.info]  # type: ignore[index]
        frag.reply = b"".join(memcache_value_block(k, by_key[k], 7, 42) for k in keys) + b"END\r\n"
    assert merged(msg) == (
        memcache_value_block(b"a", b"1", 7, 42)
        + memcache_value_block(b"b", b"22", 7, 42)
        + memcache_value_block(b"a", b"1", 7, 42)
        + memcache_value_block(b"c", b"333", 7, 42)
        + b"END\r\n"
    )


@given(memcache_get_replies())
def test_get_replies_pass_whole(reply):
    assert_one_whole_reply(reply)


def test_a_failed_get_answers_the_error_of_its_first_failed_key():
    # Fragments go in the order of their first key: with keys c a b a on
    # servers c=0 a=1 b=2 (key[0] % 3), the a-fragment holds key 1, the
    # b-fragment key 2, so a's error comes first whatever the server order.
    keys = [b"c", b"a", b"b", b"a"]
    msg, frags = fan_out(keys, 3)
    assert [list(frag.info) for _, frag in frags] == [[0], [1, 3], [2]]
    frags[0][1].reply = b"END\r\n"
    frags[1][1].reply = b"SERVER_ERROR Connection refused\r\n"
    frags[2][1].reply = b"SERVER_ERROR Connection timed out\r\n"
    assert merged(msg) == b"SERVER_ERROR Connection refused\r\n"
