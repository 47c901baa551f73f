"""Splitting multi-key Redis requests and merging the fragments' replies.

When a fragment failed, the whole request gets that fragment's error (the
first in request order), as nutcracker answers: an MGET array with errors
in some slots is a success to clients (redis-py returns the exceptions as
list items), and a partial count or ``+OK`` would be wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.msg import ACTION_FANOUT
from corenet.protocols.redis import RequestParser, encode_command
from corenet.protocols.redis._fanout import fragment
from corenet.testing import drive_requests

if TYPE_CHECKING:
    from corenet.msg import Msg

REFUSED = b"-ERR Connection refused\r\n"
TIMED_OUT = b"-ERR Connection timed out\r\n"
PROTOCOL_ERROR = b"-ERR Protocol error\r\n"


def server_of(key: bytes) -> int:
    """Keys name their server: ``b"a..."`` is on 0, ``b"b..."`` on 1, ..."""
    return key[0] - ord("a")


def fan_out(*args: bytes) -> tuple[Msg, list[Msg]]:
    msgs, err, left = drive_requests(RequestParser(), [encode_command(args)])
    assert err is None and left == 0
    (msg,) = msgs
    assert msg.action == ACTION_FANOUT
    keys = msg.keys
    frags = [frag for _, frag in fragment(msg, server_of)]
    if len(frags) > 1:
        # A split request lets go of its keys and bytes (the fragments hold
        # them); the references here read them back.
        assert msg.keys is None and msg.data == b""
        msg.keys = keys
    return msg, frags


def values(msg: Msg, frag: Msg) -> bytes:
    """The array a server answers to an MGET fragment: each key's name as its value."""
    keys = msg.keys
    assert keys is not None
    elements = [b"$%d\r\n%s\r\n" % (len(keys[i]), keys[i]) for i in frag.info]
    return b"*%d\r\n" % len(elements) + b"".join(elements)


def merged(msg: Msg) -> bytes:
    assert msg.merge is not None
    return msg.merge(msg)


# Keys in request order c0 a1 b2 a3: fragments in the order of their first
# key, c (0), a (1, 3), b (2), not in server order.
KEYS = (b"c0", b"a1", b"b2", b"a3")


def test_mget_fragments_are_in_the_order_of_their_first_key():
    msg, frags = fan_out(b"MGET", *KEYS)
    assert [list(f.info) for f in frags] == [[0], [1, 3], [2]]
    for frag in frags:
        frag.reply = values(msg, frag)
    assert merged(msg) == b"*4\r\n" + b"".join(b"$2\r\n%s\r\n" % k for k in KEYS)


def test_mget_with_a_failed_fragment_is_that_error():
    msg, frags = fan_out(b"MGET", *KEYS)
    frags[0].reply = values(msg, frags[0])
    frags[1].reply = REFUSED
    frags[2].reply = values(msg, frags[2])
    assert merged(msg) == REFUSED


@pytest.mark.parametrize(
    ("failed", "expected"),
    [((1, 2), REFUSED), ((0, 2), TIMED_OUT), ((2, 1), REFUSED), ((0, 1, 2), TIMED_OUT)],
)
def test_mget_answers_the_first_error_in_request_order(failed, expected):
    msg, frags = fan_out(b"MGET", *KEYS)
    errors = {0: TIMED_OUT, 1: REFUSED, 2: b"-LOADING Redis is loading\r\n"}
    for i, frag in enumerate(frags):
        frag.reply = errors[i] if i in failed else values(msg, frag)
    assert merged(msg) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b"!21\r\nERR a blob error here\r\n", b"!21\r\nERR a blob error here\r\n"),  # RESP3
        (b"-WRONGTYPE Operation against a key\r\n", b"-WRONGTYPE Operation against a key\r\n"),
        (b":1\r\n", PROTOCOL_ERROR),  # not an array: only a broken server sends it
        (b"*-1\r\n", PROTOCOL_ERROR),
        (b"*1\r\n$1\r\nx\r\n", PROTOCOL_ERROR),  # one element for two keys
        (b"*3\r\n$1\r\nx\r\n$1\r\ny\r\n$1\r\nz\r\n", PROTOCOL_ERROR),
        (b"", PROTOCOL_ERROR),
    ],
)
def test_mget_fragment_that_cannot_be_merged(reply, expected):
    msg, frags = fan_out(b"MGET", *KEYS)
    for frag in frags:
        frag.reply = values(msg, frag)
    frags[1].reply = reply  # a1 a3
    assert merged(msg) == expected


@pytest.mark.parametrize("command", [b"DEL", b"UNLINK", b"EXISTS", b"TOUCH"])
def test_summed_commands_answer_the_sum_or_the_first_error(command):
    msg, frags = fan_out(command, *KEYS)
    for frag, count in zip(frags, (b":1\r\n", b":2\r\n", b":0\r\n"), strict=True):
        frag.reply = count
    assert merged(msg) == b":3\r\n"
    frags[2].reply = TIMED_OUT
    frags[1].reply = REFUSED
    assert merged(msg) == REFUSED


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b":+1\r\n", PROTOCOL_ERROR),  # int() would take these, and raise on the next ones
        (b": 1\r\n", PROTOCOL_ERROR),
        (b":1_0\r\n", PROTOCOL_ERROR),
        (b":abc\r\n", PROTOCOL_ERROR),
        (b":\r\n", PROTOCOL_ERROR),
        (b"+OK\r\n", PROTOCOL_ERROR),
        (b"-ERR x\r\n", b"-ERR x\r\n"),
    ],
)
def test_summed_fragment_that_cannot_be_added(reply, expected):
    msg, frags = fan_out(b"DEL", *KEYS)
    for frag in frags:
        frag.reply = b":1\r\n"
    frags[1].reply = reply
    assert merged(msg) == expected


def test_mset_answers_ok_or_the_first_error():
    msg, frags = fan_out(b"MSET", b"c0", b"x", b"a1", b"y", b"b2", b"z")
    assert len(frags) == 3
    for frag in frags:
        frag.reply = b"+OK\r\n"
    assert merged(msg) == b"+OK\r\n"
    frags[2].reply = b"-OOM command not allowed\r\n"
    frags[1].reply = REFUSED
    assert merged(msg) == REFUSED
    frags[1].reply = b"+QUEUED\r\n"
    assert merged(msg) == PROTOCOL_ERROR


def reference(msg: Msg, frags: list[Msg]) -> bytes:
    """The merged MGET reply, from its definition: the values in request
    order, or else the error of the earliest key whose fragment failed."""
    keys = msg.keys
    assert keys is not None
    owner = {i: frag for frag in frags for i in frag.info}
    for i in range(len(keys)):
        reply = owner[i].reply or b""
        if reply.startswith(b"-"):
            return reply
    return b"*%d\r\n" % len(keys) + b"".join(b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)


@given(
    st.lists(st.sampled_from([b"a", b"b", b"c", b"d"]), min_size=1, max_size=12).map(
        lambda heads: [h + b"%d" % i for i, h in enumerate(heads)]
    ),
    st.data(),
)
@example(keys=[b"b0", b"a1", b"b2"], data=None)
def test_merged_mget_is_the_values_or_the_first_error(keys, data):
    msg, frags = fan_out(b"MGET", *keys)
    if len(frags) == 1 and frags[0] is msg:
        return  # one server: forwarded whole, its reply passed through
    for n, frag in enumerate(frags):
        fails = data is not None and data.draw(st.booleans())
        frag.reply = b"-ERR failed %d\r\n" % n if fails else values(msg, frag)
    if data is None:
        frags[-1].reply = b"-ERR failed\r\n"
    assert merged(msg) == reference(msg, frags)
