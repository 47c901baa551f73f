"""Properties and fixtures of the Redis request parser (sans-IO)."""

from __future__ import annotations

import tracemalloc
from typing import TYPE_CHECKING

import hiredis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet import accel
from corenet.framing import Framer
from corenet.msg import ACTION_CLOSE, ACTION_FANOUT, ACTION_FORWARD, ACTION_LOCAL
from corenet.protocols.redis import (
    COMMANDS,
    RequestParser,
    Route,
    encode_command,
    split_inline,
)
from corenet.protocols.redis._local import Session
from corenet.protocols.redis._parser import _HEAD_MIN, INLINE_MAX, MAX_ARGS
from corenet.testing import drive_requests, split_at
from corenet.testing.strategies import redis_args, redis_key_commands
from tests._speedups import require_built
from tests.protocols._helpers import NUL_WAITS, assert_redis_refused, record_parse_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

NOT_ENOUGH = object()


def parse_all(wire: bytes) -> list:
    msgs, err, left = drive_requests(RequestParser(), [wire])
    assert err is None and left == 0
    return msgs


def summary(msgs: list) -> list[tuple]:
    return [(bytes(m.data), m.key, m.action, m.reply, m.keys) for m in msgs]


def hiredis_args(data: bytes) -> list[bytes]:
    reader = hiredis.Reader(notEnoughData=NOT_ENOUGH)
    reader.feed(data)
    value = reader.gets()
    assert value is not NOT_ENOUGH
    assert reader.gets() is NOT_ENOUGH and not reader.has_data()
    return value


# -- fixture messages: all at once, byte by byte, with trailing bytes ----------

FIXTURES = [
    (b"*1\r\n$4\r\nPING\r\n", None, ACTION_LOCAL, b"+PONG\r\n"),
    (b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n", b"foo", ACTION_FORWARD, None),
    (b"*3\r\n$3\r\nset\r\n$0\r\n\r\n$1\r\nx\r\n", b"", ACTION_FORWARD, None),
    (b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n", None, ACTION_LOCAL, b"$2\r\nhi\r\n"),
    (b"*1\r\n$4\r\nquit\r\n", None, ACTION_CLOSE, b"+OK\r\n"),
    (b"*3\r\n$4\r\nMGET\r\n$1\r\na\r\n$1\r\nb\r\n", None, ACTION_FANOUT, None),
    (
        b"*1\r\n$3\r\nGET\r\n",
        None,
        ACTION_LOCAL,
        b"-ERR wrong number of arguments for 'get' command\r\n",
    ),
    (
        b"*2\r\n$3\r\nFOO\r\n$3\r\nbar\r\n",
        None,
        ACTION_LOCAL,
        b"-ERR unknown command 'FOO', with args beginning with: 'bar' \r\n",
    ),
]


@pytest.mark.parametrize(("wire", "key", "action", "reply"), FIXTURES)
def test_fixture_whole_bytewise_and_with_trailing_bytes(wire, key, action, reply):
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))], [wire + b"*1\r\n$4\r"]):
        msgs, err, left = drive_requests(RequestParser(), chunks)
        assert err is None
        assert len(msgs) == 1
        msg = msgs[0]
        assert (msg.key, msg.action, msg.reply) == (key, action, reply)
        assert msg.data == wire
        assert left == (len(chunks[0]) - len(wire) if len(chunks) == 1 else 0)


def test_fanout_request_lists_its_keys():
    (msg,) = parse_all(encode_command([b"DEL", b"a", b"b", b"c"]))
    assert msg.action == ACTION_FANOUT
    assert msg.keys == [b"a", b"b", b"c"]
    assert msg.info is COMMANDS[b"del"]


# -- hypothesis properties --------------------------------------------------------


@given(redis_args())
@example([b"GET", b"\x80key"])
def test_round_trip_any_arguments(args):
    wire = encode_command(args)
    (msg,) = parse_all(wire)
    assert msg.end == len(wire)
    cmd = COMMANDS.get(args[0].lower())
    if msg.action == ACTION_FORWARD:
        assert msg.data == wire
        if cmd is not None and cmd.route is Route.KEY:
            assert msg.key == args[cmd.first_key]
    elif cmd is None:
        assert msg.action == ACTION_LOCAL
        assert msg.reply.startswith(b"-ERR unknown command '")


@given(redis_key_commands())
def test_single_key_commands_route_by_their_key(args):
    (msg,) = parse_all(encode_command(args))
    assert msg.action == ACTION_FORWARD
    assert msg.key == args[1]
    assert hiredis_args(msg.data) == args


@given(st.lists(redis_args(), min_size=1, max_size=10), st.data())
def test_any_split_gives_the_same_requests(commands, data):
    wire = b"".join(encode_command(args) for args in commands)
    whole = summary(parse_all(wire))
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    msgs, err, left = drive_requests(RequestParser(), split_at(wire, cuts))
    assert err is None and left == 0
    assert summary(msgs) == whole
    assert len(msgs) == len(commands)


@given(st.lists(redis_args(), min_size=1, max_size=10), st.data())
def test_pipeline_with_partial_tail_consumes_nothing_of_the_tail(commands, data):
    wire = b"".join(encode_command(args) for args in commands)
    tail_of = encode_command(data.draw(redis_args()))
    cut = data.draw(st.integers(1, len(tail_of) - 1))
    msgs, err, left = drive_requests(RequestParser(), [wire + tail_of[:cut]])
    assert err is None
    assert len(msgs) == len(commands)
    assert left == cut


@given(st.binary(max_size=300), st.data())
@example(b"*-5\r\n*0\r\n\r\n\n", None)
@example(b"*1\r\n$3\r\nabcXY", None)
def test_garbage_gives_requests_need_more_data_or_protocol_error(garbage, data):
    chunks = [garbage]
    if data is not None:
        chunks = split_at(garbage, data.draw(st.lists(st.integers(0, len(garbage)), max_size=5)))
    msgs, err, left = drive_requests(RequestParser(), chunks)
    assert left <= len(garbage)
    if err is not None:
        assert err.reply.startswith(b"-ERR Protocol error: ")
        assert err.close


def test_parsers_agree_with_hiredis_on_valid_requests():
    for args in ([b"SET", b"k", b"v" * 100_000], [b"MSET"] + [b"k%d" % i for i in range(1000)]):
        wire = encode_command(args)
        (msg,) = parse_all(wire)
        assert hiredis_args(msg.data) == args


# -- exact errors, as Redis 7 words them ----------------------------------------

PROTOCOL_ERRORS = [
    (b"*abc\r\n", b"invalid multibulk length"),
    (b"*2147483648\r\n", b"invalid multibulk length"),
    (b"*4294967298\r\n", b"invalid multibulk length"),
    (b"*+1\r\n", b"invalid multibulk length"),
    (b"*01\r\n", b"invalid multibulk length"),
    (b"*1\r\n$-10\r\n", b"invalid bulk length"),
    (b"*1\r\n$blabla\r\n", b"invalid bulk length"),
    (b"*1\r\n$4294967297\r\n", b"invalid bulk length"),
    (b"*1\r\n$536870913\r\n", b"invalid bulk length"),
    (b"*1\r\nx3\r\n", b"expected '$', got 'x'"),
    (b"*" + b"1" * (64 * 1024 + 10), b"too big mbulk count string"),
    (b"*1\r\n$" + b"1" * (64 * 1024 + 10), b"too big bulk count string"),
    (b"x" * (64 * 1024 + 10), b"too big inline request"),
    (b'set "a b\r\n', b"unbalanced quotes in request"),
    (b'set "a"b c\r\n', b"unbalanced quotes in request"),
]


@pytest.mark.parametrize(("wire", "text"), PROTOCOL_ERRORS)
def test_protocol_errors_have_redis_wording_and_close(wire, text):
    for chunks in ([wire], split_at(wire, range(0, len(wire), 7))):
        assert_redis_refused(RequestParser(), chunks, text)


def test_declared_lengths_allocate_nothing():
    # A 512 MiB bulk header is legal; the parser only waits for it.
    parser = RequestParser()
    msgs, err, left = drive_requests(parser, [b"*2\r\n$3\r\nGET\r\n$536870912\r\nab"])
    assert (msgs, err) == ([], None)
    assert parser.need == len(b"*2\r\n$3\r\nGET\r\n$536870912\r\n") + 536870912 + 2
    assert left < 100


def test_large_value_split_into_many_reads_is_parsed_a_few_times():
    value = b"v" * (4 * 1024 * 1024)
    wire = encode_command([b"SET", b"key", value])
    parser = RequestParser()
    calls = record_parse_calls(parser)
    msgs, err, left = drive_requests(parser, split_at(wire, range(0, len(wire), 16384)))
    assert err is None and left == 0 and len(msgs) == 1
    assert msgs[0].key == b"key"
    assert len(calls) <= 3


def _long_mget(keys: int, width: int) -> bytes:
    return encode_command([b"MGET"] + [b"%0*d" % (width, i) for i in range(keys)])


def test_a_long_request_read_in_pieces_is_not_kept_whole_by_the_framer():
    # Issue 15: a 400 000-key MGET was joined again from its first byte on
    # every read, so the proxy held it twice and copied it quadratically.
    wire = _long_mget(20_000, 12)
    framer = Framer(RequestParser())
    kept = []
    msgs = []
    for chunk in split_at(wire, range(0, len(wire), 16384)):
        msgs += framer.feed(chunk)
        kept.append(framer.buffered)
    assert [m.data for m in msgs] == [wire]
    assert msgs[0].keys == [b"%012d" % i for i in range(20_000)]
    assert max(kept) < 2 * 16384 + _HEAD_MIN


@given(
    st.integers(4000, 9000),
    st.integers(1, 30),
    st.lists(redis_args(), max_size=3),
    st.sampled_from([None, b"x", b"\x00", b"-", b"*"]),
    st.data(),
)
def test_a_long_request_in_any_pieces_parses_as_it_does_whole(keys, width, after, corrupt, data):
    wire = _long_mget(keys, width)
    if corrupt is not None:
        # A byte of a later bulk header spoiled: the error (or NUL wait) lands
        # where the parser keeps the request's head itself.
        at = data.draw(st.integers(len(wire) // 2, len(wire) - 1))
        at = wire.index(b"$", at) + 1 if b"$" in wire[at:] else wire.rindex(b"$") + 1
        wire = wire[:at] + corrupt + wire[at + 1 :]
    wire += b"".join(encode_command(args) for args in after)
    whole, whole_err, _ = drive_requests(RequestParser(), [wire])
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=40))
    cuts += range(0, len(wire), data.draw(st.integers(50, 20_000)))
    msgs, err, _ = drive_requests(RequestParser(), split_at(wire, cuts))
    assert summary(msgs) == summary(whole)
    assert [m.data for m in msgs] == [m.data for m in whole]
    assert (err and err.reply) == (whole_err and whole_err.reply)


# -- inline commands ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"PING", [b"PING"]),
        (b"  set a   b ", [b"set", b"a", b"b"]),
        (b'set "a b" c', [b"set", b"a b", b"c"]),
        (b"set \"\\x41\\n\\\"\" 'it\\'s'", [b"set", b'A\n"', b"it's"]),
        (b'"', None),
        (b"'abc", None),
        (b'"a"b', None),
        (b"", []),
    ],
)
def test_split_inline_matches_sdssplitargs(line, args):
    assert split_inline(line) == args


def test_inline_requests_are_reencoded_and_empty_lines_skipped():
    msgs, err, left = drive_requests(RequestParser(), [b"\r\n\nset k v\r\nget k\nPING\r\n"])
    assert err is None and left == 0
    assert [m.data for m in msgs[:2]] == [
        encode_command([b"set", b"k", b"v"]),
        encode_command([b"get", b"k"]),
    ]
    assert [m.key for m in msgs[:2]] == [b"k", b"k"]
    assert msgs[2].reply == b"+PONG\r\n"


# -- AUTH ---------------------------------------------------------------------------


def test_auth_gate_and_replies():
    parser = RequestParser(Session(password=b"s3cret", authenticated=False))
    wire = (
        encode_command([b"GET", b"k"])
        + encode_command([b"AUTH", b"wrong"])
        + encode_command([b"AUTH", b"s3cret"])
        + encode_command([b"GET", b"k"])
    )
    msgs, err, _ = drive_requests(parser, [wire])
    assert err is None
    assert [m.reply for m in msgs] == [
        b"-NOAUTH Authentication required.\r\n",
        b"-ERR invalid password\r\n",
        b"+OK\r\n",
        None,
    ]
    assert msgs[3].key == b"k"


def test_auth_without_password_configured():
    (msg,) = parse_all(encode_command([b"AUTH", b"x"]))
    assert msg.reply == b"-ERR Client sent AUTH, but no password is set\r\n"


# -- hardening: argument count, inline splitting, NUL bytes -------------------------
#
# Measured on redis-server 7.0.15 (tests/integration/test_protocol_hardening.py
# compares these with a live server byte for byte).


@pytest.fixture(params=["compiled", "pure"])
def scan_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the compiled request scans, then with the pure ones
    (parsers built inside the test pick them up)."""
    if request.param == "compiled":
        # The extension itself, so that CORENET_NO_SPEEDUPS=1 runs still test it.
        name = "corenet.protocols.redis._speedups"
        require_built(accel.built(name), name)
    with accel.using(request.param == "compiled"):
        yield request.param


def test_argument_counts_up_to_the_cap_are_waited_for(scan_path):
    # 1 048 576 is Redis 6's limit, which corenet keeps (MAX_ARGS).
    wire = b"*%d\r\n" % MAX_ARGS + encode_command([b"EXISTS", b"k"])[4:]
    for chunks in ([wire], split_at(wire, range(0, len(wire), 3))):
        msgs, err, left = drive_requests(RequestParser(), chunks)
        assert (msgs, err, left) == ([], None, len(wire))


@pytest.mark.parametrize(
    "wire",
    [
        b"*1048577\r\n",
        b"*20000000\r\n$1\r\na\r\n",
        b"*2147483647\r\n",
        b"*2147483648\r\n",
        b"*2147483648\r\n$1\r\na\r\n",
    ],
)
def test_argument_count_over_the_cap_is_refused_and_closes(scan_path, wire):
    # Redis 7 would wait for up to INT_MAX arguments; each costs the proxy
    # memory while the request is split and merged (see MAX_ARGS).
    assert_redis_refused(RequestParser(), [wire], b"invalid multibulk length")


def test_a_complete_request_over_the_cap_is_refused_and_closes(scan_path):
    wire = encode_command([b"EXISTS", *([b"k"] * MAX_ARGS)])
    msgs, err, left = drive_requests(RequestParser(), [wire])
    assert err is None and left == 0
    [msg] = msgs
    assert msg.action == ACTION_CLOSE
    assert msg.reply == b"-ERR Protocol error: invalid multibulk length\r\n"


def test_a_declared_argument_count_allocates_nothing(scan_path):
    wire = b"*%d\r\n" % MAX_ARGS + b"$1\r\na\r\n" * 3
    parser = RequestParser()
    tracemalloc.start()
    try:
        msgs, err, left = drive_requests(parser, [wire])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (msgs, err, left) == ([], None, len(wire))
    assert peak < 64 * 1024


def test_a_request_of_as_many_arguments_as_the_cap_is_served(scan_path):
    keys = [b"k%d" % (i % 10) for i in range(MAX_ARGS - 1)]
    wire = encode_command([b"EXISTS", *keys])
    (msg,) = parse_all(wire)
    assert msg.action == ACTION_FANOUT
    assert msg.keys == keys
    assert msg.end == len(wire)


def sdssplitargs(line: bytes) -> list[bytes] | None:
    """A literal port of Redis 7.0's ``sdssplitargs`` (sds.c), pointer walk
    and all, over ``line`` as the C string it reads: the reference for
    :func:`split_inline`, written independently of it."""
    s = line + b"\0"
    escapes = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}

    def isspace(c: int) -> bool:  # glibc, C locale
        return c in (0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D)

    def is_hex_digit(c: int) -> bool:
        return chr(c) in "0123456789abcdefABCDEF"

    vector: list[bytes] = []
    p = 0
    while True:
        while s[p] and isspace(s[p]):
            p += 1
        if not s[p]:
            return vector
        quote = 0  # the open quote: 0x22 ("), 0x27 (') or none (sds.c's inq/insq)
        done = False
        current = bytearray()
        while not done:
            c = s[p]
            if quote:
                if (
                    quote == 0x22
                    and c == 0x5C
                    and s[p + 1] == 0x78
                    and is_hex_digit(s[p + 2])
                    and is_hex_digit(s[p + 3])
                ):
                    current.append(int(s[p + 2 : p + 4], 16))
                    p += 3
                elif quote == 0x22 and c == 0x5C and s[p + 1]:
                    p += 1
                    current.append(escapes.get(s[p], s[p]))
                elif quote == 0x27 and c == 0x5C and s[p + 1] == 0x27:
                    p += 1
                    current.append(0x27)
                elif c == quote:
                    if s[p + 1] and not isspace(s[p + 1]):
                        return None
                    done = True
                elif not c:
                    return None
                else:
                    current.append(c)
            elif c in (0x20, 0x0A, 0x0D, 0x09, 0x00):
                done = True
            elif c in (0x22, 0x27):
                quote = c
            else:
                current.append(c)
            if s[p]:
                p += 1
        vector.append(bytes(current))


_INLINE_BYTES = [
    *(bytes([c]) for c in range(0x21)),
    *(b'"', b"'", b"\\", b"x", b"4", b"f", b"G", b"n", b"a", b"\x7f", b"\x80", b"\xa0", b"\xff"),
]
inline_soup = st.lists(st.sampled_from(_INLINE_BYTES), max_size=40).map(b"".join)


@given(st.one_of(inline_soup, st.binary(max_size=60)))
@example(b"SET k v\x0c")
@example(b'"a"\x0bb')
@example(b"a\x00 b")
@example(b'"\\x4G"')
def test_split_inline_is_sdssplitargs(line):
    assert split_inline(line) == sdssplitargs(line)


@pytest.mark.parametrize(
    ("line", "args"),
    [
        (b"SET k v\x0c", [b"SET", b"k", b"v\x0c"]),  # \v and \f stay inside a word
        (b"SET k\x0bv", [b"SET", b"k\x0bv"]),
        (b"\x0b\x0cSET\t k \x0bv\x0c", [b"SET", b"k", b"v\x0c"]),  # ... but skipped before one
        (b'SET "k"\x0c v', [b"SET", b"k", b"v"]),  # ... and may follow a closing quote
        (b"SET 'k'\x0b", [b"SET", b"k"]),
        (b"SET k v\x00 w", [b"SET", b"k", b"v"]),  # a C string: ends at a NUL
        (b'SET "k\x00"', None),
        (b"SET k\x1fv \x1c", [b"SET", b"k\x1fv", b"\x1c"]),
        (b'"\\x4g" "\\xZZ" "\\q"', [b"x4g", b"xZZ", b"q"]),
    ],
)
def test_split_inline_blanks_as_redis(line, args):
    assert split_inline(line) == args


def test_inline_form_feed_is_stored_not_dropped():
    (msg,) = parse_all(b"SET k v\x0c\r\n")
    assert msg.data == encode_command([b"SET", b"k", b"v\x0c"])
    assert msg.key == b"k"


@pytest.mark.parametrize(("wire", "text"), NUL_WAITS)
def test_a_nul_before_a_line_end_waits_as_redis_then_is_too_big(scan_path, wire, text):
    # Redis finds line ends with strchr(), which stops at the NUL: it waits
    # (swallowing what follows) until 64 KiB are buffered, then refuses.
    line = wire.index(b"\x00")
    line = max(wire.rfind(b"\n", 0, line) + 1, 0)
    tail = b"*1\r\n$4\r\nPING\r\n"
    whole = b"PING\r\n" + wire + tail
    for chunks in ([whole], split_at(whole, range(0, len(whole), 5))):
        parser = RequestParser()
        msgs, err, left = drive_requests(parser, chunks)
        assert err is None
        assert [m.reply for m in msgs] == [b"+PONG\r\n"]
        assert left == len(wire + tail)
        assert parser.need == line + INLINE_MAX + 1  # called again only then
    # One byte short of Redis's limit still waits; the next one is refused.
    pad = b"x" * (INLINE_MAX - len(wire) + line)
    msgs, err, left = drive_requests(RequestParser(), [wire + pad])
    assert (msgs, err, left) == ([], None, len(wire + pad))
    for chunks in ([wire + pad + b"x"], [wire, pad, b"x"], split_at(wire + pad + b"x", [3, 4000])):
        assert_redis_refused(RequestParser(), chunks, text)


def test_a_nul_line_is_not_rescanned_on_every_read():
    parser = RequestParser()
    calls = record_parse_calls(parser)
    wire = b"PING\x00\r\n" + b"x" * (2 * INLINE_MAX)
    msgs, err, _ = drive_requests(parser, split_at(wire, range(0, len(wire), 100)))
    assert msgs == [] and err is not None
    assert len(calls) <= 3


@pytest.mark.parametrize(
    ("wire", "text"),
    [
        (b"*1x\r\n", b"invalid multibulk length"),  # no NUL: refused at once, as before
        (b"*1\r\n$4x\r\nPING\r\n", b"invalid bulk length"),
        (b"*1\r\nx4\r\n", b"expected '$', got 'x'"),
        (b"*1\r\n$4\r\nPI\x00G\r\n\x00", None),  # NULs inside a bulk are data
    ],
)
def test_nul_rules_touch_only_lines_holding_one(wire, text):
    if text is None:
        msgs, err, _ = drive_requests(RequestParser(), [wire])
        assert err is None
        assert msgs[0].reply.startswith(b"-ERR unknown command 'PI\x00G'")
    else:
        assert_redis_refused(RequestParser(), [wire], text)
