"""The compiled Redis scans against the pure-Python reference.

``corenet.protocols.redis._speedups`` has C versions of the request fast
paths (``scan_multibulk`` and ``scan_keyed``, references
``_parser._scan_multibulk_pure`` and ``_parser._scan_keyed_pure``) and of
the reply boundary scan (``reply_end``, reference ``ReplyParser.parse`` on a
fresh parser, an error meaning -2).  Differential hypothesis tests check
they agree on arbitrary bytes, on valid requests and replies, and on those
truncated, extended with garbage and corrupted; then the ``_accel``
selection.  Without a built extension the C tests skip, or fail with
``CORENET_REQUIRE_SPEEDUPS=1``.  The parsers' own suites run against
whichever path is selected (run them again with ``CORENET_NO_SPEEDUPS=1``).
"""

from __future__ import annotations

import sys
from array import array
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from corenet import accel
from corenet.errors import ProtocolError
from corenet.protocols.redis import _accel, _fanout, _resp, encode_command
from corenet.protocols.redis._commands import COMMANDS
from corenet.protocols.redis._parser import (
    PROTO_MAX_BULK_LEN,
    ReplyParser,
    RequestParser,
    _keyed_table,
    _scan_keyed_pure,
    _scan_multibulk_pure,
)
from corenet.testing import split_at
from corenet.testing.strategies import redis_args, redis_key_commands, resp2_replies, resp3_replies
from tests._speedups import (
    REQUIRE_SPEEDUPS_ENV,
    framed,
    needs_c,
    require_built,
    selection_in_subprocess,
    split_points,
)

if TYPE_CHECKING:
    from types import ModuleType

EXTENSION = "corenet.protocols.redis._speedups"

try:
    from corenet.protocols.redis import _speedups as _built
except ImportError:
    _built = None  # type: ignore[assignment]


NEEDS_C = needs_c(_built, EXTENSION)


def speedups() -> ModuleType:
    """The extension module; skip the test, or fail it under
    ``CORENET_REQUIRE_SPEEDUPS``, when it is not built."""
    return require_built(_built, EXTENSION)


# ---- references -------------------------------------------------------------

MAX_BULKS = [PROTO_MAX_BULK_LEN, 0, 1, 3, 64, 2**70, -1, -(2**70)]


def multibulk_pure(buf: bytes, start: int, max_bulk: int) -> tuple[int, tuple[int, ...]] | None:
    found = _scan_multibulk_pure(buf, start, max_bulk)
    return None if found is None else (found[0], tuple(found[1]))


def reply_end_pure(buf: bytes, pos: int) -> int:
    """What a fresh ReplyParser makes of ``buf[pos:]``: end, -1 or -2."""
    with accel.using(False):
        parser = ReplyParser()
    try:
        return parser.parse(buf, pos)
    except ProtocolError:
        return -2


def check_multibulk(buf: bytes, start: int, max_bulk: int = PROTO_MAX_BULK_LEN) -> None:
    expected = multibulk_pure(buf, start, max_bulk)
    assert speedups().scan_multibulk(buf, start, max_bulk) == expected


def check_reply(buf: bytes, pos: int) -> None:
    assert speedups().reply_end(buf, pos) == reply_end_pure(buf, pos)


# ---- strategies --------------------------------------------------------------

# Bytes the scans care about, so that random soup often looks almost right.
_TOKENS = [
    b"*", b"$", b"\r\n", b"\r", b"\n", b"0", b"1", b"2", b"3", b"9", b"00", b"-1", b"-",
    b"10", b"2147483647", b"2147483648", b"99999999999999999999", b"+", b":", b"%", b"|",
    b"~", b">", b"=", b"!", b"_", b",", b"#", b"(", b"x", b" ", b"\x00", b"\xff", b"OK",
]  # fmt: skip
token_soup = st.lists(st.sampled_from(_TOKENS), max_size=40).map(b"".join)
any_bytes = st.one_of(st.binary(max_size=200), token_soup)


@st.composite
def mangled(draw: st.DrawFn, messages: st.SearchStrategy[bytes]) -> tuple[bytes, int]:
    """Some messages behind a prefix, then truncated, extended with garbage,
    with one byte changed or one CR or LF broken; returns (buffer, offset of
    the first)."""
    prefix = draw(st.binary(max_size=8))
    body = b"".join(draw(st.lists(messages, min_size=1, max_size=3)))
    how = draw(st.sampled_from(["whole", "truncate", "append", "corrupt", "crlf"]))
    if how == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif how == "append":
        body += draw(any_bytes)
    elif how == "corrupt" and body:
        i = draw(st.integers(0, len(body) - 1))
        byte = draw(st.sampled_from([*b"*$\r\n0129-+:%|x\x00", draw(st.integers(0, 255))]))
        body = body[:i] + bytes([byte]) + body[i + 1 :]
    elif how == "crlf":  # break one line or bulk terminator
        ends = [i for i, c in enumerate(body) if c in b"\r\n"]
        if ends:
            i = draw(st.sampled_from(ends))
            body = body[:i] + b"x" + body[i + 1 :]
    return prefix + body, len(prefix)


@st.composite
def near_commands(draw: st.DrawFn) -> bytes:
    """A multibulk request with at most one part bent: the count or a length
    (leading zero, off by one, signed, empty, spaced), a ``$``, a CRLF or
    the two bytes after a bulk."""
    args = draw(redis_args(max_args=4, max_size=12))
    bend = draw(st.sampled_from(range(-1, 4 * len(args) + 2)))
    slot = iter(range(4 * len(args) + 2))

    def part(exact: bytes, bent: list[bytes]) -> bytes:
        return draw(st.sampled_from(bent)) if next(slot) == bend else exact

    def number(n: int) -> bytes:
        bent = [b"0%d" % n, b"%d" % (n + 1), b"%d" % max(n - 1, 0), b"-1", b"", b"+%d" % n]
        return part(b"%d" % n, [*bent, b"%d " % n, b"00", b"0"])

    crlf = [b"\n", b"\r", b"", b"\r\r\n", b"\n\r"]
    out = b"*" + number(len(args)) + part(b"\r\n", crlf)
    for arg in args:
        out += part(b"$", [b":", b"*", b"+"]) + number(len(arg)) + part(b"\r\n", crlf)
        out += arg + part(b"\r\n", [b"xy", b"\r", b"", b"\r\n\r\n"])
    return out


commands = st.one_of(redis_args().map(encode_command), near_commands())
replies = st.one_of(resp2_replies(), resp3_replies())


# ---- scan_multibulk ------------------------------------------------------------


@NEEDS_C
@given(buf=any_bytes, data=st.data())
@example(buf=b"*1\r\n$0\r\n\r\n", data=None)
def test_scan_multibulk_arbitrary_bytes(buf: bytes, data: Any) -> None:
    starts = [0] if data is None else [data.draw(st.integers(0, len(buf) + 1))]
    for start in starts:
        for max_bulk in MAX_BULKS:
            check_multibulk(buf, start, max_bulk)
            check_multibulk(b"*" + buf, start, max_bulk)


@NEEDS_C
@given(case=mangled(commands), max_bulk=st.sampled_from(MAX_BULKS))
def test_scan_multibulk_commands(case: tuple[bytes, int], max_bulk: int) -> None:
    buf, start = case
    check_multibulk(buf, start, max_bulk)


@NEEDS_C
@settings(max_examples=500)  # cheap, and each example bends one part at most
@given(buf=near_commands())
def test_scan_multibulk_near_commands(buf: bytes) -> None:
    for max_bulk in MAX_BULKS:
        check_multibulk(buf, 0, max_bulk)
        check_multibulk(buf + buf, 0, max_bulk)


@NEEDS_C
@given(args=redis_args())
def test_scan_multibulk_finds_valid_commands(args: list[bytes]) -> None:
    wire = encode_command(args)
    found = speedups().scan_multibulk(b"xy" + wire + b"*1", 2, PROTO_MAX_BULK_LEN)
    assert found is not None
    end, spans = found
    assert end == 2 + len(wire)
    assert [wire[spans[i] : spans[i + 1]] for i in range(0, len(spans), 2)] == args


@NEEDS_C
@pytest.mark.parametrize(
    "buf",
    [
        b"*0\r\n",
        b"*01\r\n$1\r\na\r\n",
        b"*1\r\n$0\r\n\r\n",
        b"*1\r\n$0\r\nXY",  # the two bytes after a bulk are not checked
        b"*1\r\n$00\r\n\r\n",
        b"*1\r\n$01\r\na\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$+1\r\na\r\n",
        b"*1\r\n$1\r\na\r",
        b"*1\r\n$1 \r\na\r\n",
        b"*1\r\n$1\ra\r\n",
        b"*1\n$1\r\na\r\n",
        b"*-1\r\n",
        b"*\r\n",
        b"*2147483647\r\n$1\r\na\r\n",
        b"*2147483648\r\n$1\r\na\r\n",
        b"*99999999999999999999999\r\n",
        b"*1\r\n$99999999999999999999999\r\na\r\n",
        b"*1\r\n$3\r\nabc\r\n",
        b"*1\r\n$4\r\nabc\r\n",
        b"*2\r\n$1\r\na\r\n:1\r\n",
        b"*1\r\n$\xd9\xa1\r\na\r\n",  # a non-ASCII digit is not a digit
    ],
)
def test_scan_multibulk_edges(buf: bytes) -> None:
    for max_bulk in MAX_BULKS:
        for start in range(len(buf) + 1):
            check_multibulk(buf, start, max_bulk)


@NEEDS_C
def test_scan_multibulk_argument_handling() -> None:
    scan = speedups().scan_multibulk
    wire = encode_command([b"GET", b"k"])
    assert scan(wire, 0, PROTO_MAX_BULK_LEN) == (len(wire), (8, 11, 17, 18))
    assert scan(bytearray(wire), 0, PROTO_MAX_BULK_LEN) == (len(wire), (8, 11, 17, 18))
    assert scan("*1\r\n$1\r\na\r\n", 0, 10) is None  # not bytes-like
    assert scan(wire, -1, 10) is None
    with pytest.raises(OverflowError):
        scan(wire, 10**30, 10)
    with pytest.raises(TypeError):
        scan(wire, 0)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        scan(wire, "0", 10)  # type: ignore[arg-type]


# ---- scan_keyed ------------------------------------------------------------------

TABLES = [
    _keyed_table(frozenset()),
    _keyed_table(frozenset([b"get", b"set"])),
    {
        b"x": (2, 1, None),
        b"y": (-2, 1, "fan"),
        b"z": (-1, 0, None),
        b"w": (3, 2, "fan"),
        b"far": (-1, 9, None),
        b"neg": (2, -1, None),
    },
]
KEYED_NAMES = [b"GET", b"get", b"GeT", b"set", b"SETEX", b"x", b"Y", b"z", b"w", b"far", b"neg"]
KEYED_NAMES += [b"a" * 32, b"a" * 33, b"", b"\xc7et", b"mget"]


def check_keyed(buf: bytes, pos: int, max_bulk: int = PROTO_MAX_BULK_LEN) -> None:
    for table in TABLES:
        expected = _scan_keyed_pure(buf, pos, max_bulk, table)
        assert speedups().scan_keyed(buf, pos, max_bulk, table) == expected


keyed_commands = st.builds(
    lambda name, rest: encode_command([name, *rest]),
    st.sampled_from(KEYED_NAMES),
    st.lists(st.binary(max_size=6), max_size=4),
)


@NEEDS_C
@given(buf=any_bytes, data=st.data())
def test_scan_keyed_arbitrary_bytes(buf: bytes, data: Any) -> None:
    pos = data.draw(st.integers(0, len(buf) + 1))
    for max_bulk in MAX_BULKS:
        check_keyed(buf, pos, max_bulk)
        check_keyed(b"*" + buf, pos, max_bulk)


@NEEDS_C
@given(case=mangled(st.one_of(keyed_commands, commands)), max_bulk=st.sampled_from(MAX_BULKS))
def test_scan_keyed_commands(case: tuple[bytes, int], max_bulk: int) -> None:
    buf, pos = case
    check_keyed(buf, pos, max_bulk)


@NEEDS_C
@given(wire=keyed_commands)
def test_scan_keyed_finds_keyed_commands(wire: bytes) -> None:
    # Not vacuous: most generated requests are in the table with a count it allows.
    buf = b"xy" + wire + b"*1"
    for table in TABLES:
        expected = _scan_keyed_pure(buf, 2, PROTO_MAX_BULK_LEN, table)
        assert speedups().scan_keyed(buf, 2, PROTO_MAX_BULK_LEN, table) == expected
        if expected is not None:
            assert expected[:2] == (wire, 2 + len(wire))
            args = speedups().scan_multibulk(wire, 0, PROTO_MAX_BULK_LEN)[1]
            args = [wire[args[i] : args[i + 1]] for i in range(0, len(args), 2)]
            arity, first_key, fan = table[args[0].lower()]
            assert expected[2:] == (
                (args[first_key], None) if fan is None else (args[first_key:], fan)
            )


def test_scan_keyed_pure_examples() -> None:
    table = _keyed_table(frozenset())
    wire = encode_command([b"GeT", b"k1"])
    assert _scan_keyed_pure(wire, 0, PROTO_MAX_BULK_LEN, table) == (wire, len(wire), b"k1", None)
    assert _scan_keyed_pure(b"+" + wire, 1, 100, table) == (wire, len(wire) + 1, b"k1", None)
    assert _scan_keyed_pure(encode_command([b"GET"]), 0, 100, table) is None  # arity
    mget = encode_command([b"MGET", b"a", b"b"])
    assert _scan_keyed_pure(mget, 0, 100, table) == (
        mget,
        len(mget),
        [b"a", b"b"],
        COMMANDS[b"mget"],
    )
    assert _scan_keyed_pure(encode_command([b"MGET"]), 0, 100, table) is None  # arity
    assert _scan_keyed_pure(encode_command([b"PING"]), 0, 100, table) is None  # local
    assert _scan_keyed_pure(wire, 0, 100, _keyed_table(frozenset([b"get"]))) is None  # denied
    assert _scan_keyed_pure(wire[:-1], 0, 100, table) is None  # incomplete


@NEEDS_C
def test_scan_keyed_argument_handling() -> None:
    scan = speedups().scan_keyed
    table = _keyed_table(frozenset())
    wire = encode_command([b"GET", b"k"])
    found = scan(wire, 0, PROTO_MAX_BULK_LEN, table)
    assert found == (wire, len(wire), b"k", None)
    assert found[0] is wire  # a read of exactly one request is not copied
    assert scan(bytearray(wire), 0, 10, table) == (wire, len(wire), b"k", None)
    assert scan(wire, -1, 10, table) is None
    assert scan("*2\r\n", 0, 10, table) is None  # not bytes-like
    with pytest.raises(TypeError):
        scan(wire, 0, 10, list(table.items()))
    with pytest.raises(TypeError):
        scan(wire, 0, 10, {b"get": (2, 1)})
    with pytest.raises(TypeError):
        scan(wire, 0, 10)


# ---- reply_end ------------------------------------------------------------------


@NEEDS_C
@given(buf=any_bytes, data=st.data())
def test_reply_end_arbitrary_bytes(buf: bytes, data: Any) -> None:
    check_reply(buf, data.draw(st.integers(0, len(buf) + 1)))


@NEEDS_C
@given(case=mangled(replies))
def test_reply_end_replies(case: tuple[bytes, int]) -> None:
    buf, pos = case
    check_reply(buf, pos)


@NEEDS_C
@given(reply=replies)
def test_reply_end_finds_valid_replies(reply: bytes) -> None:
    assert speedups().reply_end(b"ab" + reply + b"+OK\r\n", 2) == 2 + len(reply)


@NEEDS_C
@pytest.mark.parametrize(
    "buf",
    [
        b"+OK\r\n",
        b"$3\r\nxxx\r\n",
        b"$3\r\nxxxyy",
        b"$3\r\nxxx\rx",
        b"$3\r\nxxxx\n",
        b"$03\r\nxxx\r\n",
        b"$-1\r\n",
        b"$-2\r\n",
        b"$-01\r\n",
        b"$ 3\r\nxxx\r\n",
        b"$99999999999999999999999999\r\nx",
        b"*99999999999999999999999999\r\n+a\r\n",
        b"*99999999999999999999999999\r\n+a\r\n?\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*2\r\n:1\r\n",
        b"*2\r\n:1\r\n:2\r\n",
        b"%1\r\n+a\r\n+b\r\n",
        b"|1\r\n+a\r\n+b\r\n+c\r\n",
        b"|0\r\n:1\r\n",
        b"|-1\r\n:1\r\n",
        b">1\r\n~1\r\n=3\r\ntxt\r\n",
        b"x\r\n",
        b"x",
        b"\r\n",
        b"*1\r\n*1\r\n*1\r\n",
        b"*1\r\nq\r\n",
        b"$\xd9\xa1\r\nx\r\n",
    ],
)
def test_reply_end_edges(buf: bytes) -> None:
    for pos in range(len(buf) + 2):
        check_reply(buf, pos)
        check_reply(buf + b"garbage", pos)


@NEEDS_C
def test_reply_end_argument_handling() -> None:
    reply_end = speedups().reply_end
    assert reply_end(b"+OK\r\n", 0) == 5
    assert reply_end(bytearray(b"+OK\r\n"), 0) == 5
    assert reply_end("+OK\r\n", 0) == -2  # not bytes-like
    assert reply_end(b"+OK\r\n", -1) == -2
    with pytest.raises(TypeError):
        reply_end(b"+OK\r\n")  # type: ignore[call-arg]


# ---- split_array and encode_command ---------------------------------------------------


@NEEDS_C
@given(case=mangled(replies))
def test_split_array_replies(case: tuple[bytes, int]) -> None:
    buf, pos = case
    for reply in (buf[pos:], b"*2\r\n" + buf[pos:], b"*3\r\n" + buf[pos:]):
        assert speedups().split_array(reply) == _fanout._split_array_pure(reply)


@NEEDS_C
@given(buf=any_bytes)
def test_split_array_arbitrary_bytes(buf: bytes) -> None:
    for reply in (buf, b"*" + buf):
        assert speedups().split_array(reply) == _fanout._split_array_pure(reply)


@NEEDS_C
@given(elements=st.lists(replies, max_size=6))
def test_split_array_finds_the_elements(elements: list[bytes]) -> None:
    reply = b"*%d\r\n" % len(elements) + b"".join(elements)
    assert speedups().split_array(reply) == elements == _fanout._split_array_pure(reply)
    assert speedups().split_array(reply + b"+") is None  # not exactly one reply
    assert _fanout._split_array_pure(reply + b"+") is None


@NEEDS_C
def test_split_array_edges() -> None:
    split = speedups().split_array
    for reply in [b"*0\r\n", b"*-1\r\n", b"$1\r\na\r\n", b"", b"*", b"*1\r\n", b"*1\r\n:1\r\n"]:
        assert split(reply) == _fanout._split_array_pure(reply)
    assert split(bytearray(b"*1\r\n:1\r\n")) == [b":1\r\n"]
    assert split("*0\r\n") is None  # not bytes-like


@st.composite
def split_replies(draw: st.DrawFn) -> tuple[int, list[bytes], list[array[int]], list[bytes]]:
    """An MGET's elements dealt to fragments as the fanout deals keys: each
    fragment's positions in request order; the replies as servers send them."""
    elements = draw(st.lists(replies, min_size=1, max_size=12))
    owner = draw(st.lists(st.integers(0, 3), min_size=len(elements), max_size=len(elements)))
    groups: dict[int, array[int]] = {}
    for i, index in enumerate(owner):
        groups.setdefault(index, array("I")).append(i)
    positions = list(groups.values())
    frag_replies = [
        b"*%d\r\n" % len(where) + b"".join(elements[i] for i in where) for where in positions
    ]
    return len(elements), frag_replies, positions, elements


@NEEDS_C
@given(case=split_replies())
def test_merge_arrays_puts_every_element_in_request_order(
    case: tuple[int, list[bytes], list[array[int]], list[bytes]],
) -> None:
    count, frag_replies, positions, elements = case
    merged = b"*%d\r\n" % count + b"".join(elements)
    assert speedups().merge_arrays(count, frag_replies, positions) == merged
    assert _fanout._merge_arrays_pure(count, frag_replies, positions) == merged


@NEEDS_C
@given(case=split_replies(), data=st.data())
def test_merge_arrays_names_the_first_reply_it_cannot_merge(
    case: tuple[int, list[bytes], list[array[int]], list[bytes]], data: st.DataObject
) -> None:
    count, frag_replies, positions, _ = case
    broken = data.draw(st.integers(0, len(frag_replies) - 1))
    frag_replies[broken] = data.draw(
        st.one_of(
            st.just(b"-ERR Connection refused\r\n"),
            st.just(b"*%d\r\n" % (len(positions[broken]) + 1)),  # too few elements
            st.just(frag_replies[broken] + b"+OK\r\n"),  # more than one reply
            st.just(frag_replies[broken][:-1]),  # cut short
            any_bytes,
        )
    )
    expected = _fanout._merge_arrays_pure(count, frag_replies, positions)
    assert speedups().merge_arrays(count, frag_replies, positions) == expected
    if frag_replies[broken][:1] == b"-":
        assert expected == broken


@NEEDS_C
def test_merge_arrays_refuses_what_the_fanout_never_passes() -> None:
    merge = speedups().merge_arrays
    assert merge(1, [bytearray(b"*1\r\n:1\r\n")], [array("I", [0])]) == b"*1\r\n:1\r\n"
    with pytest.raises(TypeError):
        merge(1, [b"*1\r\n:1\r\n"], [[0]])  # positions not array('I')
    with pytest.raises(TypeError):
        merge(1, [b"*1\r\n:1\r\n"], [array("I", [0]), array("I", [1])])
    with pytest.raises(ValueError, match="out of range"):
        merge(1, [b"*1\r\n:1\r\n"], [array("I", [5])])


@NEEDS_C
@given(args=st.lists(st.binary(max_size=300), max_size=12))
def test_encode_command_matches_pure(args: list[bytes]) -> None:
    wire = _resp._encode_command_pure(args)
    assert speedups().encode_command(args) == wire
    assert speedups().encode_command(tuple(args)) == wire
    assert speedups().encode_command(iter(args)) == wire
    assert speedups().encode_command([bytearray(a) for a in args]) == wire


@NEEDS_C
def test_encode_command_refuses_what_the_pure_one_refuses() -> None:
    for bad in ([b"a", "b"], [1], 5):
        with pytest.raises(TypeError):
            _resp._encode_command_pure(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            speedups().encode_command(bad)
    assert speedups().encode_command([b"x" * 10**6]).startswith(b"*1\r\n$1000000\r\nxxx")


# ---- the wired parsers -----------------------------------------------------------


def _parse_state(parser: ReplyParser, buf: bytes, pos: int) -> tuple[object, ...]:
    try:
        result: object = parser.parse(buf, pos)
    except ProtocolError as exc:
        result = str(exc)
    return (result, parser.resume_at, parser.need, parser._owed, parser._off)


@NEEDS_C
@given(case=mangled(replies))
def test_reply_parser_same_with_and_without_c(case: tuple[bytes, int]) -> None:
    buf, pos = case
    speedups()
    with accel.using(True):
        fast = _parse_state(ReplyParser(), buf, pos)
    with accel.using(False):
        pure = _parse_state(ReplyParser(), buf, pos)
    assert fast == pure


def _request_state(buf: bytes, pos: int) -> tuple[object, ...]:
    parser = RequestParser()
    try:
        msg = parser.parse(buf, pos)
    except ProtocolError as exc:
        return (str(exc),)
    if msg is None:
        return (None, parser.resume_at, parser.need)
    return (msg.data, msg.end, msg.key, msg.action, msg.reply, msg.keys)


@NEEDS_C
@given(case=mangled(st.one_of(commands, keyed_commands)))
def test_request_parser_same_with_and_without_c(case: tuple[bytes, int]) -> None:
    fast, pure = _both_paths(*case)
    assert fast == pure


def _both_paths(buf: bytes, pos: int) -> tuple[tuple[object, ...], tuple[object, ...]]:
    speedups()
    with accel.using(True):
        fast = _request_state(buf, pos)
    with accel.using(False):
        pure = _request_state(buf, pos)
    return fast, pure


# Around Redis 6's cap (1 048 576) and Redis 7's (INT_MAX), and beyond.
_COUNTS = [0, 1, 2, 1_048_575, 1_048_576, 1_048_577, 2**31 - 1, 2**31, 2**32 + 1, 2**63]


@NEEDS_C
@given(
    count=st.one_of(st.sampled_from(_COUNTS), st.integers(0, 2**64)),
    args=st.lists(st.sampled_from([b"EXISTS", b"GET", b"k", b""]), max_size=4),
    cut=st.integers(0, 200),
    nul=st.one_of(st.none(), st.integers(0, 200)),
)
@example(count=1_048_577, args=[b"EXISTS", b"k"], cut=200, nul=None)
@example(count=2**31, args=[b"EXISTS", b"k"], cut=200, nul=None)
@example(count=2, args=[b"GET", b"k"], cut=200, nul=7)
def test_argument_counts_and_nul_lines_same_with_and_without_c(
    count: int, args: list[bytes], cut: int, nul: int | None
) -> None:
    # A declared count, its arguments (as many as there are), cut anywhere,
    # maybe with a NUL put in: compiled and pure paths agree on the request,
    # the wait (resume_at, need) or the exact error.
    buf = b"*%d\r\n" % count + encode_command(args)[len(b"*%d\r\n" % len(args)) :]
    buf = buf[:cut]
    if nul is not None and nul < len(buf):
        buf = buf[:nul] + b"\0" + buf[nul + 1 :]
    fast, pure = _both_paths(buf, 0)
    assert fast == pure


@NEEDS_C
def test_keyed_fast_path_follows_authentication() -> None:
    # The compiled path must never answer for a client that has not
    # authenticated: AUTH and HELLO switch it on and off.
    from corenet.protocols.redis._local import Session

    get = encode_command([b"GET", b"k"])
    speedups()
    with accel.using(True):
        parser = RequestParser(Session(password=b"pw", authenticated=False))
    assert parser._keyed is None
    assert parser.parse(get, 0).reply == b"-NOAUTH Authentication required.\r\n"  # type: ignore[union-attr]
    assert parser.parse(encode_command([b"AUTH", b"pw"]), 0).reply == b"+OK\r\n"  # type: ignore[union-attr]
    assert parser._keyed is not None
    assert parser.parse(get, 0).key == b"k"  # type: ignore[union-attr]
    assert parser.parse(encode_command([b"AUTH", b"bad"]), 0).reply.startswith(b"-")  # type: ignore[union-attr]
    assert parser._keyed is None


# ---- selection ------------------------------------------------------------------


def test_extension_is_built() -> None:
    # The one test that says plainly whether the C path is exercised at all.
    speedups()
    assert _accel.SPEEDUPS_BUILT


def _selection_in_subprocess(env_value: str | None, block_extension: bool) -> str:
    code = (
        "from corenet.protocols.redis import _accel, _fanout, _parser, _resp\n"
        "request, reply = _parser.RequestParser(), _parser.ReplyParser()\n"
        "print(_accel.scan_multibulk is None, _accel.reply_end is None,"
        " request._scan_multibulk is _parser._scan_multibulk_pure,"
        " reply._reply_end is None, request._scan_keyed is None,"
        " _fanout._split_array is _fanout._split_array_pure,"
        " _fanout._merge_arrays is _fanout._merge_arrays_pure,"
        " _resp.encode_command is _resp._encode_command_pure)\n"
    )
    return selection_in_subprocess(code, env_value, EXTENSION if block_extension else None)


@pytest.mark.parametrize(
    ("env_value", "block", "pure"),
    [("1", False, True), ("on", False, True), (None, True, True), ("0", False, False)],
    ids=["env-off", "env-on-word", "not-built", "default"],
)
def test_import_time_selection(env_value: str | None, block: bool, pure: bool) -> None:
    if not pure:
        speedups()
    assert _selection_in_subprocess(env_value, block) == " ".join([str(pure)] * 8)


def test_require_switch_turns_skip_into_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "_built", None)
    monkeypatch.delenv(REQUIRE_SPEEDUPS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        speedups()
    monkeypatch.setenv(REQUIRE_SPEEDUPS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_SPEEDUPS_ENV):
        speedups()


# ---- the framer's batch: parse_many against parse, one frame at a time -------------


pipelines = st.lists(st.one_of(commands, redis_key_commands().map(encode_command)), max_size=8)


@NEEDS_C
@given(wires=pipelines, tail=st.one_of(st.just(b""), any_bytes), data=st.data())
def test_parse_many_gives_what_parse_gives(wires: list[bytes], tail: bytes, data: Any) -> None:
    wire = b"".join(wires) + tail
    cuts = split_points(data, wire)
    with accel.using(True):
        batched = framed(RequestParser(), split_at(wire, cuts), batch=True, replies=False)
        single = framed(RequestParser(), split_at(wire, cuts), batch=False, replies=False)
    assert batched == single


@NEEDS_C
@given(case=mangled(replies), data=st.data())
def test_reply_parse_many_gives_what_parse_gives(case: tuple[bytes, int], data: Any) -> None:
    wire = case[0][case[1] :]
    cuts = split_points(data, wire)
    with accel.using(True):
        batched = framed(ReplyParser(), split_at(wire, cuts), batch=True, replies=True)
        single = framed(ReplyParser(), split_at(wire, cuts), batch=False, replies=True)
    assert batched == single


@NEEDS_C
def test_parse_many_takes_a_pipeline_in_one_call() -> None:
    wire = b"".join(encode_command([b"GET", b"k%d" % i]) for i in range(16))
    with accel.using(True):
        parser = RequestParser()
    msgs, end = parser.parse_many(wire, 0, 100)
    assert [m.key for m in msgs] == [b"k%d" % i for i in range(16)] and end == len(wire)
    msgs, end = parser.parse_many(wire, 0, 3)
    assert len(msgs) == 3 and end == msgs[-1].end
    mget = encode_command([b"MGET", b"a", b"b"])
    msgs, end = parser.parse_many(mget + b"*1\r\n$4\r\nPING\r\n", 0, 100)
    assert [m.keys for m in msgs] == [[b"a", b"b"]] and end == len(mget)  # PING: parse's
    replies = b"+OK\r\n$1\r\na\r\n*2\r\n:1"
    with accel.using(True):
        assert ReplyParser().parse_many(replies, 0, 100) == ([b"+OK\r\n", b"$1\r\na\r\n"], 12)
