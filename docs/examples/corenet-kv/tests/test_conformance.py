"""The kv parsers pass corenet's protocol conformance suite, plus kv specifics."""

from __future__ import annotations

from corenet.msg import ACTION_FORWARD
from corenet.testing import ReplyParserConformance, RequestParserConformance, drive_requests
from hypothesis import given
from hypothesis import strategies as st

from corenet_kv import KEY_MAX, KvReplyParser, KvRequestParser
from corenet_kv._protocol import djb2

KEY_BYTES = bytes(range(0x21, 0x7F))
keys = st.text(alphabet=KEY_BYTES.decode(), min_size=1, max_size=KEY_MAX).map(str.encode)
values = st.binary(max_size=64).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))

requests = st.one_of(
    st.just(b"PING\r\n"),
    keys.map(lambda k: b"GET " + k + b"\r\n"),
    keys.map(lambda k: b"DEL " + k + b"\r\n"),
    st.tuples(keys, values).map(lambda kv: b"SET " + kv[0] + b" " + kv[1] + b"\r\n"),
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"),
)
replies = st.one_of(
    st.sampled_from([b"+OK\r\n", b"+PONG\r\n", b"_\r\n", b":0\r\n", b":1\r\n"]),
    values.map(lambda v: b"$" + v + b"\r\n"),
    values.map(lambda v: b"-ERR " + v + b"\r\n"),
)


class TestKvRequests(RequestParserConformance):
    make_parser = KvRequestParser
    messages = requests
    test_need = None  # a line protocol: no message length is known early


class TestKvReplies(ReplyParserConformance):
    make_parser = KvReplyParser
    replies = replies
    test_need = None


@given(key=keys, value=values)
def test_set_routes_by_its_key(key: bytes, value: bytes) -> None:
    (msg,), err, _ = drive_requests(KvRequestParser(), [b"SET " + key + b" " + value + b"\r\n"])
    assert err is None
    assert (msg.key, msg.action) == (key, ACTION_FORWARD)


def test_ping_is_answered_by_the_proxy() -> None:
    (msg,), _, _ = drive_requests(KvRequestParser(), [b"ping\r\n"])
    assert msg.reply == b"+PONG\r\n"


def test_djb2_golden_values() -> None:
    assert djb2(b"") == 5381
    assert djb2(b"a") == 177670
