"""Properties and fixtures of the memcache request parser (sans-IO).

The expected replies to bad input are memcached 1.6.18's own, as measured on
a real server (see docs/memcache.md, "Bad input"); the integration tests
compare them with a live memcached byte for byte.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.msg import ACTION_CLOSE, ACTION_FANOUT, ACTION_FORWARD, ACTION_LOCAL, Msg
from corenet.protocols.memcache import LINE_MAX, RequestParser, fragment
from corenet.testing import drive_requests, split_at
from corenet.testing.memcache_strategies import MemcacheRequest, memcache_keys, memcache_requests
from tests.protocols._helpers import record_parse_calls

ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"
USAGE = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
K251 = b"k" * 251


def parse_all(wire: bytes, **kwargs: int) -> list[Msg]:
    msgs, err, left = drive_requests(RequestParser(**kwargs), [wire])
    assert err is None
    assert left == 0
    return msgs


def assert_canonical_line(line: bytes) -> None:
    """A forwarded request line is canonical: one space between tokens, no
    control bytes a server could read as a line end or a terminator."""
    assert b"\0" not in line
    assert b"\r" not in line
    assert b"\n" not in line
    assert line == b" ".join(line.split(b" "))
    assert b"  " not in line
    assert line[:1] != b" "
    assert line[-1:] != b" "


def summary(msgs: list[Msg]) -> list[tuple[object, ...]]:
    return [
        (bytes(m.data), m.end - 0, m.key, m.action, m.reply, m.keys, m.expect_reply) for m in msgs
    ]


def seen(msgs: list[Msg]) -> list[bytes | None]:
    """Per message: the bytes forwarded, or the local reply."""
    return [m.data if m.action in (ACTION_FORWARD, ACTION_FANOUT) else m.reply for m in msgs]


def outcome(msgs: list[Msg]) -> list[tuple[object, ...]]:
    """What the client sees per message: forwarded bytes, or the local reply."""
    return [
        (m.action, m.reply if m.action != ACTION_FORWARD else m.data, m.key, m.expect_reply, m.keys)
        for m in msgs
    ]


def assert_split_parses_as_whole(
    wire: bytes, cuts: list[int], whole: tuple[list[Msg], ProtocolError | None, int]
) -> None:
    """``wire`` cut at ``cuts`` parses as it did whole (``drive_requests``'s result)."""
    whole_msgs, whole_err, whole_left = whole
    msgs, err, left = drive_requests(RequestParser(), split_at(wire, cuts))
    assert outcome(msgs) == outcome(whole_msgs)
    assert (err is None) == (whole_err is None)
    if err is None:
        assert left == whole_left


# -- fixture messages: all at once, byte by byte, with trailing bytes ----------

# (wire, key, action, reply, expect_reply)
FIXTURES = [
    (b"get foo\r\n", b"foo", ACTION_FORWARD, None, True),
    (b"gets foo\r\n", b"foo", ACTION_FORWARD, None, True),
    (b"get a b\r\n", None, ACTION_FANOUT, None, True),
    (b"set k 0 0 3\r\nabc\r\n", b"k", ACTION_FORWARD, None, True),
    (b"set k 5 -1 0\r\n\r\n", b"k", ACTION_FORWARD, None, True),
    (b"set k 0 0 4\r\n\r\n\r\n\r\n", b"k", ACTION_FORWARD, None, True),
    (b"add k 0 0 1 noreply\r\nx\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"replace k 1 2 1\r\nx\r\n", b"k", ACTION_FORWARD, None, True),
    (b"append k 0 0 1\r\nx\r\n", b"k", ACTION_FORWARD, None, True),
    (b"prepend k 0 0 1 noreply\r\nx\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"cas k 0 0 1 99\r\nx\r\n", b"k", ACTION_FORWARD, None, True),
    (b"cas k 0 0 1 99 noreply\r\nx\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"incr n 18446744073709551615\r\n", b"n", ACTION_FORWARD, None, True),
    (b"decr n 1 noreply\r\n", b"n", ACTION_FORWARD, b"", False),
    (b"delete k\r\n", b"k", ACTION_FORWARD, None, True),
    (b"delete k 0\r\n", b"k", ACTION_FORWARD, None, True),
    (b"delete k noreply\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"delete k 0 noreply\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"touch k -1\r\n", b"k", ACTION_FORWARD, None, True),
    (b"touch k 10 noreply\r\n", b"k", ACTION_FORWARD, b"", False),
    (b"version\r\n", b"placeholder", ACTION_FORWARD, None, True),
    (b"quit\r\n", None, ACTION_CLOSE, b"", True),
    (b"foo\r\n", None, ACTION_LOCAL, ERROR, True),
    (b"\r\n", None, ACTION_LOCAL, ERROR, True),
    (b"stats\r\n", None, ACTION_LOCAL, ERROR, True),
    (b"get " + K251 + b"\r\n", None, ACTION_LOCAL, BAD_FORMAT, True),
]


@pytest.mark.parametrize(("wire", "key", "action", "reply", "expect_reply"), FIXTURES)
def test_fixture_whole_bytewise_and_with_trailing_bytes(wire, key, action, reply, expect_reply):
    for chunks in (
        [wire],
        [wire[i : i + 1] for i in range(len(wire))],
        [wire + b"set k 0 0 9\r\nab"],
    ):
        msgs, err, left = drive_requests(RequestParser(), chunks)
        assert err is None
        assert len(msgs) == 1
        msg = msgs[0]
        assert (msg.key, msg.action, msg.reply, msg.expect_reply) == (
            key,
            action,
            reply,
            expect_reply,
        )
        assert msg.done == (reply is not None)
        if action == ACTION_FORWARD and key != b"placeholder":
            assert msg.data == wire
        assert left == (len(chunks[0]) - len(wire) if len(chunks) == 1 else 0)


def test_multi_key_get_lists_keys_in_order_with_duplicates():
    (msg,) = parse_all(b"gets b a b\r\n")
    assert msg.action == ACTION_FANOUT
    assert msg.keys == [b"b", b"a", b"b"]
    assert msg.info == b"gets"


def test_version_is_routed_like_nutcracker_by_a_placeholder_key():
    (msg,) = parse_all(b"version with junk\n")
    assert (msg.data, msg.key, msg.action) == (b"version\r\n", b"placeholder", ACTION_FORWARD)


def test_quit_closes_after_pending_replies_and_stops_parsing():
    msgs = parse_all(b"get a\r\nquit\r\n")
    assert [m.action for m in msgs] == [ACTION_FORWARD, ACTION_CLOSE]


# -- memcached's answers to bad input (measured on memcached 1.6.18) -----------

# (wire, [(action, reply-or-forwarded-bytes)...]) for a stream of requests.
MEMCACHED_ERRORS = [
    # Unknown and malformed command lines.
    (b"foo\r\n", [ERROR]),
    (b"a\r\n", [ERROR]),  # command names are at least 2 bytes
    (b"\r\n", [ERROR]),  # an empty line is an error, not skipped
    (b"\n", [ERROR]),
    (b"   \r\n", [ERROR]),
    (b"SET k 0 0 1\r\nx\r\n", [ERROR, ERROR]),  # case-sensitive; the data is a command
    (b"get\r\n", [ERROR]),
    (b"get \r\n", [ERROR]),
    (b"getx a\r\n", [ERROR]),
    (b"x HTTP/1.0\r\n", [ERROR]),  # 1-byte command: ERROR before the HTTP check
    (b"gfoo HTTP/1.0\r\n", [ERROR]),  # 'g' commands never reach the HTTP check
    (b"extstore x HTTP/1.0\r\n", [ERROR]),
    (b"mn HTTP/1.0\r\n", [b"MN\r\n"]),  # a meta command: never an HTTP close
    # Storage: the wrong token count is ERROR, then the data block is a command.
    (b"set k 0 0\r\nabc\r\n", [ERROR, ERROR]),
    (b"set k 0 0 3 noreply extra\r\nabc\r\n", [ERROR, ERROR]),
    (b"cas k 0 0 1\r\nx\r\n", [ERROR, ERROR]),
    # A bad key or number: CLIENT_ERROR, and the data block is NOT swallowed.
    (b"set " + K251 + b" 0 0 3\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 -1\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 abc\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k x 0 3\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k -1 0 3\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 x 3\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 3x\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 0x3\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 2147483646\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 2147483648\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 99999999999999999999\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"set k 0 0 " + b"1" * 5000 + b"\r\nabc\r\n", [BAD_FORMAT, ERROR]),
    (b"incr n " + b"9" * 5000 + b"\r\n", [b"CLIENT_ERROR invalid numeric delta argument\r\n"]),
    (b"cas k 0 0 1 x\r\nx\r\n", [BAD_FORMAT, ERROR]),
    (b"cas k 0 0 1 -1\r\nx\r\n", [BAD_FORMAT, ERROR]),
    (b"cas k 0 0 1 -9223372036854775808\r\nx\r\n", [BAD_FORMAT, ERROR]),
    # noreply silences the CLIENT_ERROR, not the ERROR of the data line.
    (b"set k 0 0 abc noreply\r\nabc\r\n", [b"", ERROR]),
    (b"set k 0 0 noreply\r\nabc\r\n", [b"", ERROR]),
    (b"set " + K251 + b" 0 0 3 noreply\r\nabc\r\n", [b"", ERROR]),
    # The data block: exactly length + 2 bytes are read, then checked.
    (b"set k 0 0 3\r\nabcXYget a\r\n", [BAD_CHUNK, b"get a\r\n"]),
    (b"set k 0 0 3\r\nabcX\r\nget a\r\n", [BAD_CHUNK, ERROR, b"get a\r\n"]),
    (b"set k 0 0 3\r\nabc\nget a\r\n", [BAD_CHUNK, ERROR]),
    (b"set k 0 0 3 noreply\r\nabcXYget a\r\n", [b"", b"get a\r\n"]),
    # Too large for the cache: answered, and the block is discarded.
    (b"set k 0 0 1048577\r\n" + b"v" * 1048577 + b"\r\nget a\r\n", [TOO_LARGE, b"get a\r\n"]),
    (b"set k 0 0 1048577 noreply\r\n" + b"v" * 1048577 + b"\r\nget a\r\n", [b"", b"get a\r\n"]),
    (b"set k 0 0 2147483645 noreply\r\n", [b""]),
    # Arithmetic.
    (b"incr n\r\n", [ERROR]),
    (b"incr n x\r\n", [b"CLIENT_ERROR invalid numeric delta argument\r\n"]),
    (b"incr n -1\r\n", [b"CLIENT_ERROR invalid numeric delta argument\r\n"]),
    (b"incr n 18446744073709551616\r\n", [b"CLIENT_ERROR invalid numeric delta argument\r\n"]),
    (b"incr n noreply\r\n", [b""]),
    (b"decr " + K251 + b" 1\r\n", [BAD_FORMAT]),
    (b"incr n 1 2 3\r\n", [ERROR]),
    # delete and its legacy hold time.
    (b"delete\r\n", [ERROR]),
    (b"delete k 1\r\n", [USAGE]),
    (b"delete k 0 x\r\n", [USAGE]),
    (b"delete k x noreply\r\n", [b""]),
    (b"delete k 0 noreply x\r\n", [ERROR]),
    (b"delete / HTTP/1.0\r\n", [USAGE]),
    (b"delete " + K251 + b"\r\n", [BAD_FORMAT]),
    (b"delete " + K251 + b" noreply\r\n", [b""]),
    (b"delete noreply\r\n", [b"delete noreply\r\n"]),  # "noreply" is the key here
    # touch.
    (b"touch k\r\n", [ERROR]),
    (b"touch k x\r\n", [b"CLIENT_ERROR invalid exptime argument\r\n"]),
    (b"touch k noreply\r\n", [b""]),
    (b"touch " + K251 + b" 1\r\n", [BAD_FORMAT]),
    # get with one key too long: only the error, no VALUEs.
    (b"get a " + K251 + b" b\r\n", [BAD_FORMAT]),
    (b"get / HTTP/1.0\r\n", [b"get / HTTP/1.0\r\n"]),
    # Lines memcached accepts as they are (leniently) are forwarded rebuilt.
    (b"set k 0 0 3\nabc\r\n", [b"set k 0 0 3\r\nabc\r\n"]),
    (b" set  k 0 0  3 \r\nabc\r\n", [b"set k 0 0 3\r\nabc\r\n"]),
    (b"get  a\n", [b"get a\r\n"]),
    (b"incr  n 1\r\n", [b"incr n 1\r\n"]),
    (b"set k\x10x 0 0 1\r\nx\r\n", [b"set k\x10x 0 0 1\r\nx\r\n"]),  # memaslap's keys
    (b"set k 0 0 03\r\nabc\r\n", [b"set k 0 0 03\r\nabc\r\n"]),
]


@pytest.mark.parametrize(("wire", "expected"), MEMCACHED_ERRORS)
def test_bad_input_gets_memcacheds_answers_and_keeps_the_connection(wire, expected):
    for chunks in ([wire], split_at(wire, range(0, len(wire), 5)) if len(wire) < 4096 else [wire]):
        msgs, err, left = drive_requests(RequestParser(), chunks)
        assert err is None
        assert seen(msgs) == expected
        # Replies suppressed by noreply and forwarded noreply requests alike
        # are done at once with nothing to send.
        for m in msgs:
            if m.reply == b"":
                assert m.done


# Lines memcached takes but a proxy must not forward as they are: memcached
# ignores a token after the arguments, truncates numbers to 32 bits, reads
# "+3" or "3\t" as 3 and ends a line at NUL.  corenet answers CLIENT_ERROR and
# skips the data block memcached would have read, so it is never executed.
NOT_FORWARDED = [
    (b"set k 0 0 3 foo\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 4294967299\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 4294967296 0 3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k -0 0 3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 99999999999 3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 +3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 \t3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 3\r\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 3 foo noreply\r\nabc\r\nget a\r\n", [ERROR, ERROR, b"get a\r\n"]),
    (b"set k 0 0 3 foo\r\nabc\r\n", [BAD_FORMAT]),
    (b"set k 0 0 00000000000000000000003\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k 0 0 " + b"0" * 5000 + b"3\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"cas k 0 0 3 -9223372036854775809\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k\rx 0 0 1\r\nx\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"set k\x00 0 0 3\r\nabc\r\n", [ERROR, ERROR]),  # memcached sees "set k": ERROR
    (b"set k 0 0 3\x00junk\r\nabc\r\nget a\r\n", [BAD_FORMAT, b"get a\r\n"]),
    (b"incr n 1 2\r\n", [BAD_FORMAT]),
    (b"incr n +1\r\n", [BAD_FORMAT]),
    (b"touch k 1 2\r\n", [BAD_FORMAT]),
    (b"touch k 4294967296\r\n", [BAD_FORMAT]),
    (b"get k\x00junk\r\n", [BAD_FORMAT]),
    (b"get a\rb\r\n", [BAD_FORMAT]),
    # memcached reads "delete k" and would answer: so does corenet.
    (b"delete k\x00 noreply\r\n", [BAD_FORMAT]),
]


@pytest.mark.parametrize(("wire", "expected"), NOT_FORWARDED)
def test_lines_memcached_reads_leniently_are_answered_not_forwarded(wire, expected):
    msgs, err, left = drive_requests(RequestParser(), split_at(wire, range(0, len(wire), 3)))
    assert err is None
    assert left == 0
    assert seen(msgs) == expected


@pytest.mark.parametrize(
    "wire",
    [
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST /x HTTP/1.1\r\n",
        b"HTTP/1.0\r\n",
        b"rfoo HTTP/1.0\r\n",
        b"misbehave HTTP/1.0\r\n",
        b"Zz " + b"b " * 21 + b"HTTP/1.0 x y\r\n",  # memcached looks at the 23rd word
        b"x" * (LINE_MAX - 1) + b"\r\n",  # longer than memcached's read buffer
        b"x" * 100_000,
        b"set " + b"k" * 20000 + b" 0 0 1\r\nx\r\n",
        b" " * 101 + b"get " + b"k " * 10000 + b"\r\n",
        b"get " + b"k " * 600_000 + b"\r\n",  # past GET_LINE_MAX
    ],
)
def test_http_and_overlong_lines_close_silently(wire):
    for chunks in ([wire], split_at(wire, range(0, len(wire), 4000))):
        msgs, err, _ = drive_requests(RequestParser(), [b"get a\r\n", *chunks])
        assert len(msgs) == 1  # earlier requests still count
        assert isinstance(err, ProtocolError)
        assert err.close
        assert err.reply == b""


@pytest.mark.parametrize(
    "wire",
    [
        b"x" * (LINE_MAX - 2) + b"\r\n",  # the longest line memcached reads
        b"Zz " + b"b " * 20 + b"HTTP/1.0 x y\r\n",
        b"Zz " + b"b " * 22 + b"HTTP/1.0 x y\r\n",
        b"Zz\x00 HTTP/1.0\r\n",  # memcached reads "Zz"
    ],
)
def test_lines_memcached_answers_with_error(wire):
    assert [m.reply for m in parse_all(wire)] == [ERROR]


def test_long_get_lines_are_accepted_and_rebuilt_when_odd():
    keys = [b"key%06d" % i for i in range(20000)]
    wire = b"get " + b" ".join(keys) + b"\r\n"
    (msg,) = parse_all(wire)
    assert msg.keys == keys
    assert msg.data == wire
    odd = b" " * 50 + b"get  " + b" ".join(keys) + b"\n"
    (msg,) = parse_all(odd)
    assert msg.keys == keys
    assert msg.data == wire


# -- hypothesis properties --------------------------------------------------------


def check_request(req: MemcacheRequest, msg: Msg) -> None:
    if req.command == b"version":
        assert (msg.action, msg.data, msg.key) == (ACTION_FORWARD, b"version\r\n", b"placeholder")
        return
    assert msg.data == req.wire
    if len(req.keys) > 1:
        assert msg.action == ACTION_FANOUT
        assert msg.keys == list(req.keys)
    else:
        assert msg.action == ACTION_FORWARD
        assert msg.key == req.keys[0]
    assert msg.expect_reply is not req.noreply
    assert msg.done is req.noreply
    if req.noreply:
        assert msg.reply == b""


@given(memcache_requests(max_value=300))
@example(MemcacheRequest(b"set k 0 0 0\r\n\r\n", b"set", (b"k",), False, b""))
@example(MemcacheRequest(b"get \x80\xff\r\n", b"get", (b"\x80\xff",)))
def test_round_trip_any_request(req):
    (msg,) = parse_all(req.wire)
    assert msg.end == len(req.wire)
    check_request(req, msg)


@given(st.lists(memcache_requests(), min_size=1, max_size=10), st.data())
def test_any_split_gives_the_same_requests(requests, data):
    wire = b"".join(r.wire for r in requests)
    whole = parse_all(wire)
    assert len(whole) == len(requests)
    for req, msg in zip(requests, whole, strict=True):
        check_request(req, msg)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    msgs, err, left = drive_requests(RequestParser(), split_at(wire, cuts))
    assert err is None
    assert left == 0
    assert outcome(msgs) == outcome(whole)
    bytewise, err, left = drive_requests(
        RequestParser(), [wire[i : i + 1] for i in range(len(wire))]
    )
    assert err is None
    assert left == 0
    assert outcome(bytewise) == outcome(whole)


@given(st.lists(memcache_requests(), min_size=1, max_size=8), memcache_requests(), st.data())
def test_pipeline_with_partial_tail_consumes_nothing_of_the_tail(requests, tail, data):
    wire = b"".join(r.wire for r in requests)
    cut = data.draw(st.integers(1, len(tail.wire) - 1))
    msgs, err, left = drive_requests(RequestParser(), [wire + tail.wire[:cut]])
    assert err is None
    assert len(msgs) == len(requests)
    assert left == cut


GARBAGE_EXAMPLES = [
    b"set k 0 0 1048577\r\nxx",
    b"set k 0 0 3 foo\r\nab",
    b"set k 0 0 2\r\nabcdget a\r\n\r\n",
    b"GET / HTTP/1.0\r\n",
    b"\x00\r\n\n\r",
]


@given(st.binary(max_size=300), st.data())
@example(GARBAGE_EXAMPLES[0], None)
@example(GARBAGE_EXAMPLES[1], None)
@example(GARBAGE_EXAMPLES[2], None)
@example(GARBAGE_EXAMPLES[3], None)
@example(GARBAGE_EXAMPLES[4], None)
def test_garbage_gives_requests_need_more_data_or_protocol_error(garbage, data):
    whole, whole_err, whole_left = drive_requests(RequestParser(), [garbage])
    assert whole_left <= len(garbage)
    if whole_err is not None:
        assert whole_err.close
        assert whole_err.reply == b""
    for msg in whole:
        # Nothing malformed is forwarded: forwarded lines are canonical.
        if msg.action in (ACTION_FORWARD, ACTION_FANOUT):
            assert_canonical_line(msg.data[: msg.data.index(b"\r\n")])
    if data is not None:
        cuts = data.draw(st.lists(st.integers(0, len(garbage)), max_size=6))
        assert_split_parses_as_whole(garbage, cuts, (whole, whole_err, whole_left))


# -- bounds: nothing allocated by a declared length, O(n) parsing ------------------


def test_declared_length_only_sets_need():
    parser = RequestParser()
    head = b"set k 0 0 1048576\r\n"
    msgs, err, left = drive_requests(parser, [head + b"ab"])
    assert (msgs, err) == ([], None)
    assert parser.need == len(head) + 1048576 + 2
    assert left == len(head) + 2


def test_too_large_block_is_discarded_as_it_arrives():
    parser = RequestParser(max_value=10)
    msgs, err, left = drive_requests(
        parser, [b"set k 0 0 1000\r\n", b"v" * 600, b"v" * 402, b"get a\r\n"]
    )
    assert err is None
    assert left == 0
    assert seen(msgs) == [TOO_LARGE, b"get a\r\n"]


def test_large_value_split_into_many_reads_is_parsed_a_few_times():
    value = b"v" * (1024 * 1024)
    wire = b"set key 0 0 %d\r\n" % len(value) + value + b"\r\n"
    parser = RequestParser()
    calls = record_parse_calls(parser)
    msgs, err, left = drive_requests(parser, split_at(wire, range(0, len(wire), 16384)))
    assert err is None
    assert left == 0
    assert len(msgs) == 1
    assert msgs[0].data == wire
    assert len(calls) <= 3


def test_long_line_arriving_byte_by_byte_is_scanned_once():
    wire = b"get " + b"k" * 9000 + b"\r\n"
    parser = RequestParser()
    record_parse_calls(parser)
    msgs, err, _ = drive_requests(parser, [wire[i : i + 1] for i in range(len(wire))])
    assert err is None
    assert len(msgs) == 1
    assert msgs[0].data == wire
    assert parser._scanned == 0


# -- fan-out ----------------------------------------------------------------------


@given(st.lists(memcache_keys(max_size=20), min_size=2, max_size=30), st.integers(1, 5))
def test_fragments_cover_every_key_once_in_order(keys, nservers):
    wire = b"get " + b" ".join(keys) + b"\r\n"
    (msg,) = parse_all(wire)

    def server_of(key: bytes) -> int:
        return sum(key) % nservers

    frags = fragment(msg, server_of)
    if len({server_of(k) for k in keys}) == 1:
        assert frags == [(server_of(keys[0]), msg)]
        return
    seen: list[int] = []
    for index, frag in frags:
        assert frag.parent is msg
        positions = list(frag.info)
        assert positions == sorted(positions)
        assert all(server_of(keys[i]) == index for i in positions)
        assert frag.data == b"get " + b" ".join(keys[i] for i in positions) + b"\r\n"
        (reparsed,) = parse_all(frag.data)
        assert reparsed.key == keys[positions[0]] or reparsed.keys == [keys[i] for i in positions]
        seen.extend(positions)
    assert sorted(seen) == list(range(len(keys)))
    assert msg.pending == len(frags)


# -- token soup: near-miss requests, the likeliest place for parser bugs ------------

_SOUP = [
    b"get", b"gets", b"set", b"add", b"cas", b"incr", b"delete", b"touch", b"version",
    b"quit", b"GET", b"k", b"key", b"0", b"1", b"3", b"-1", b"+3", b"03", b"4294967296",
    b"2147483648", b"18446744073709551616", b"noreply", b"HTTP/1.0", b"abc", b"x" * 251,
    b" ", b" ", b" ", b"  ", b"\r\n", b"\r\n", b"\n", b"\r", b"\t", b"\0", b"\x10",
]  # fmt: skip


@given(st.lists(st.sampled_from(_SOUP), max_size=40), st.data())
@example([b"set", b" ", b"k", b" ", b"0", b" ", b"0", b" ", b"3", b"\r\n", b"abc", b"\r\n"], None)
def test_token_soup_parses_the_same_however_split(words, data):
    wire = b"".join(words)
    whole, err, left = drive_requests(RequestParser(), [wire])
    assert err is None or (err.close and err.reply == b"")
    for msg in whole:
        if msg.action in (ACTION_FORWARD, ACTION_FANOUT):
            # Forwarded: one canonical line, and for storage the whole block.
            line, _, rest = msg.data.partition(b"\r\n")
            assert_canonical_line(line)
            tokens = line.split(b" ")
            if tokens[0] in (b"set", b"add", b"cas"):
                assert len(rest) == int(tokens[4]) + 2
                assert rest.endswith(b"\r\n")
            else:
                assert rest == b""
    if data is not None:
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8))
        assert_split_parses_as_whole(wire, cuts, (whole, err, left))


# -- the binary protocol --------------------------------------------------------------

# A binary-protocol GET of "foo" and a NOOP: the 24-byte header starts with
# the request magic 0x80 (memcached's protocol_binary.h).  NOOP's opcode is
# 0x0a, a newline to a text parser.
BINARY_GET = bytes([0x80, 0x00, 0x00, 0x03]) + bytes(4) + bytes([0, 0, 0, 3]) + bytes(12) + b"foo"
BINARY_NOOP = bytes([0x80, 0x0A]) + bytes(22)


@pytest.mark.parametrize("wire", [BINARY_GET, BINARY_NOOP, b"\x80", b"\x80get foo\r\n"])
def test_binary_protocol_closes_at_the_first_byte(wire):
    # memcached would switch the connection to the binary protocol; the
    # proxy does not speak it, and parsed as text the request would wait for
    # a newline forever.  Closed with no reply, at once.
    for chunks in ([wire], [wire[:1]], [wire[i : i + 1] for i in range(len(wire))]):
        msgs, err, left = drive_requests(RequestParser(), chunks)
        assert msgs == []
        assert isinstance(err, ProtocolError)
        assert err.close
        assert err.reply == b""
        assert left == 0


@given(st.binary(max_size=100), st.data())
def test_any_stream_starting_with_the_binary_magic_closes_however_split(tail, data):
    wire = b"\x80" + tail
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=5))
    msgs, err, _ = drive_requests(RequestParser(), split_at(wire, cuts))
    assert msgs == []
    assert err is not None and err.close and err.reply == b""


def test_binary_magic_later_in_a_connection_is_a_text_byte_as_in_memcached():
    # memcached picks the protocol from a connection's first byte only.
    msgs, err, left = drive_requests(
        RequestParser(), [b"get a\r\n\x80foo\r\nget \x80\r\n", BINARY_GET]
    )
    assert err is None
    assert [(m.action, m.reply, m.key) for m in msgs] == [
        (ACTION_FORWARD, None, b"a"),
        (ACTION_LOCAL, ERROR, None),
        (ACTION_FORWARD, None, b"\x80"),
    ]
    assert left == len(BINARY_GET)  # a text line still waiting for its newline


def test_first_request_through_the_general_path_is_the_fast_paths_result():
    # The first request skips the fast path (the connection's first byte is
    # looked at there); what it gives must not depend on that.
    for wire in (
        b"get foo\r\n",
        b"get a b\r\n",
        b"set k 0 0 1\r\nx\r\n",
        b"set k 0 0 1 noreply\r\nx\r\n",
    ):
        first = parse_all(wire + wire)
        assert outcome(first[:1]) == outcome(first[1:])
