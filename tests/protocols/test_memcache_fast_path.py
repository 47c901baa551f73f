"""The memcache parsers' fast paths against their general paths.

``_fast_request`` (canonical get/gets, storage and mg/md/ma requests) and
``_fast_reply_end`` (END, STORED, canonical VALUE blocks, meta replies) only ever answer
when the general path would answer the same, and say "don't know"
otherwise.  Differential hypothesis tests check it on well-formed traffic,
on traffic bent near the fast paths' edges (key and number lengths, spaces,
CR/LF, NUL, data-block terminators, size limits), and on that truncated
or corrupted; plus examples showing the fast paths do take the common case.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from corenet import accel
from corenet.errors import ProtocolError
from corenet.protocols.memcache import _parser
from corenet.protocols.memcache._parser import ReplyParser, RequestParser
from corenet.testing import split_at
from corenet.testing.memcache_strategies import (
    memcache_get_replies,
    memcache_keys,
    memcache_meta_replies,
    memcache_meta_requests,
    memcache_replies,
    memcache_requests,
)
from tests._speedups import framed, needs_c, require_built, split_points

MAX_VALUES = [64, 3, 0, 1 << 20]


def _request_outcome(buf: bytes, pos: int, max_value: int) -> tuple[Any, ...]:
    parser = RequestParser(max_value=max_value)
    out: list[Any] = []
    try:
        while pos < len(buf):
            msg = parser.parse(buf, pos)
            if msg is None:
                out.append(("again", parser.resume_at, parser.need))
                break
            out.append(
                (msg.data, msg.end, msg.key, msg.action, msg.reply, msg.keys, msg.info)
                + (msg.expect_reply, msg.done, msg.reply_filter)
            )
            pos = msg.end
    except ProtocolError as exc:
        out.append(("error", str(exc), exc.reply))
    return tuple(out)


def check_request(buf: bytes, pos: int = 0, max_value: int = 64) -> None:
    # The compiled scan (when built), the pure fast path, and neither.
    fast = _request_outcome(buf, pos, max_value)
    with accel.using(False):
        pure = _request_outcome(buf, pos, max_value)
        with mock.patch.object(_parser, "_fast_request", return_value=None):
            general = _request_outcome(buf, pos, max_value)
    assert fast == pure == general


def _reply_outcome(buf: bytes) -> tuple[Any, ...]:
    parser = ReplyParser()
    out: list[Any] = []
    pos = 0
    try:
        while pos < len(buf):
            end = parser.parse(buf, pos)
            out.append((end, parser.resume_at, parser.need))
            if end < 0:
                break
            pos = end
    except ProtocolError as exc:
        out.append(("error", str(exc)))
    return tuple(out)


def check_reply(buf: bytes) -> None:
    # The compiled fast path (when built), the pure one, and none at all.
    fast = _reply_outcome(buf)
    with accel.using(False):
        pure = _reply_outcome(buf)
        with mock.patch.object(_parser, "_fast_reply_end", return_value=0):
            general = _reply_outcome(buf)
    assert fast == pure == general


# Pieces that sit on the fast paths' edges.
_NUMBERS = [b"0", b"3", b"007", b"-0", b"-1", b"123456789", b"1234567890", b"4294967296", b""]
_SEPARATORS = [b" ", b"  ", b"\t", b" \x00", b"\r", b""]
_ENDS = [b"\r\n", b"\n", b"\r\r\n", b"\x00\r\n", b" \r\n", b" noreply\r\n", b" noreply \r\n"]
_KEYS = st.one_of(
    memcache_keys(max_size=12),
    st.sampled_from([b"k" * 250, b"k" * 251, b"a\x00b", b"a\rb", b"\t", b"key\xff"]),
)
_NAMES = [b"get", b"gets", b"set", b"add", b"replace", b"append", b"prepend", b"cas", b"GET"]


@st.composite
def near_fast(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(_NAMES))
    sep = st.sampled_from(_SEPARATORS) if draw(st.booleans()) else st.just(b" ")
    parts = [name, draw(sep), draw(_KEYS)]
    if name in (b"get", b"gets", b"GET"):
        for key in draw(st.lists(_KEYS, max_size=3)):
            parts += [draw(sep), key]
        return b"".join(parts) + draw(st.sampled_from(_ENDS))
    numbers = draw(st.lists(st.sampled_from(_NUMBERS), min_size=3, max_size=4))
    for number in numbers:
        parts += [draw(sep), number]
    head = b"".join(parts) + draw(st.sampled_from(_ENDS))
    size = numbers[2]
    length = int(size) if size.isdigit() and int(size) < 100 else 3
    data = draw(st.binary(min_size=length, max_size=length))
    return head + data + draw(st.sampled_from([b"\r\n", b"\n", b"xy", b"", b"\r\n\r\n"]))


@st.composite
def mangled(draw: st.DrawFn, pieces: st.SearchStrategy[bytes]) -> bytes:
    body = b"".join(draw(st.lists(pieces, min_size=1, max_size=3)))
    how = draw(st.sampled_from(["whole", "truncate", "corrupt"]))
    if how == "truncate":
        body = body[: draw(st.integers(0, len(body)))]
    elif how == "corrupt" and body:
        i = draw(st.integers(0, len(body) - 1))
        byte = draw(st.sampled_from([*b" \r\n\x000-9Ve", draw(st.integers(0, 255))]))
        body = body[:i] + bytes([byte]) + body[i + 1 :]
    return body


@st.composite
def near_fast_meta(draw: st.DrawFn) -> bytes:
    """mg/md/ma lines near the edges of the meta fast path: flags repeated,
    long arguments, q in odd forms, separators and endings bent."""
    command = draw(st.sampled_from([b"mg", b"md", b"ma", b"ms", b"mgx"]))
    key = draw(_KEYS)
    flags = draw(
        st.lists(
            st.sampled_from(
                [b"v", b"k", b"q", b"qx", b"b", b"O", b"O" + b"x" * 31, b"O" + b"x" * 32]
                + [b"T-1", b"T" + b"9" * 10, b"F-1", b"F7", b"C" + b"9" * 20, b"D1", b"Mx"]
                + [b"P", b"Lpath", b"x", b"\x80", b"N0"]
            ),
            max_size=20,
        )
    )
    sep = draw(st.sampled_from([b" ", b" ", b" ", b"  "]))
    return sep.join([command, key, *flags]) + draw(st.sampled_from(_ENDS))


requests = st.one_of(
    memcache_requests().map(lambda r: r.wire),
    near_fast(),
    memcache_meta_requests().map(lambda r: r.wire),
    near_fast_meta(),
)


@settings(max_examples=400)
@given(buf=mangled(requests), max_value=st.sampled_from(MAX_VALUES))
def test_requests_same_with_and_without_fast_path(buf: bytes, max_value: int) -> None:
    check_request(buf, 0, max_value)


@given(prefix=st.binary(max_size=4), buf=requests)
def test_requests_at_an_offset(prefix: bytes, buf: bytes) -> None:
    check_request(prefix + buf, len(prefix))


near_values = st.builds(
    lambda key, flags, size, data, end: b"VALUE " + key + b" " + flags + b" " + size + b"\r\n"
    + data + end,
    _KEYS,
    st.sampled_from(_NUMBERS),
    st.sampled_from([b"0", b"3", b"03", b"1234567890", b""]),
    st.binary(max_size=4),
    st.sampled_from([b"\r\n", b"\r\nEND\r\n", b"END\r\n", b"\n", b""]),
)  # fmt: skip
near_meta = st.builds(
    lambda code, flags, data, end: code + flags + b"\r\n" + data + end,
    st.sampled_from([b"HD", b"EN", b"MN", b"VA 3", b"VA 03", b"VA ", b"VA x", b"HDX", b"ENDX"]),
    st.sampled_from([b"", b" ", b" k\rx", b" Oab kfoo", b" " + b"f" * 5000]),
    st.binary(max_size=4),
    st.sampled_from([b"\r\n", b"\n", b""]),
)
replies = st.one_of(
    memcache_replies(), memcache_get_replies(), near_values, memcache_meta_replies(), near_meta
)


@settings(max_examples=400)
@given(buf=mangled(replies))
def test_replies_same_with_and_without_fast_path(buf: bytes) -> None:
    check_reply(buf)


_built = accel.built(_parser._EXTENSION)


@needs_c(_built, _parser._EXTENSION)
@settings(max_examples=600)
@given(buf=st.one_of(mangled(replies), st.binary(max_size=80)), pos=st.integers(-2, 6))
def test_compiled_reply_end_is_the_pure_fast_path(buf: bytes, pos: int) -> None:
    reply_end = require_built(_built, _parser._EXTENSION).reply_end
    expected = _parser._fast_reply_end(buf, pos) if pos >= 0 else 0
    assert reply_end(buf, pos) == expected
    assert reply_end(bytearray(buf), pos) == expected


@needs_c(_built, _parser._EXTENSION)
@settings(max_examples=600)
@given(
    buf=st.one_of(mangled(near_fast()), requests, st.binary(max_size=60)),
    prefix=st.binary(max_size=3),
    max_value=st.sampled_from(MAX_VALUES),
)
def test_compiled_request_scan_accepts_only_what_the_fast_path_does(
    buf: bytes, prefix: bytes, max_value: int
) -> None:
    scan = require_built(_built, _parser._EXTENSION).request_fast
    wire = prefix + buf
    found = scan(wire, len(prefix), max_value, _parser.LINE_MAX)
    if found is None:
        return  # _fast_request decides: nothing to match
    kind, end, data, key = found
    msg = _parser._fast_request(wire, len(prefix), max_value)
    assert msg is not None, wire
    assert (data, end) == (msg.data, msg.end)
    if kind == 1:
        assert key == msg.keys
    else:
        assert key == msg.key
        assert (kind == 3) == (not msg.expect_reply)


@needs_c(_built, _parser._EXTENSION)
@settings(max_examples=300)
@given(
    pieces=st.lists(st.one_of(requests, near_fast()), max_size=6),
    tail=st.one_of(st.just(b""), st.binary(max_size=12)),
    max_value=st.sampled_from(MAX_VALUES),
    data=st.data(),
)
def test_request_parse_many_gives_what_parse_gives(
    pieces: list[bytes], tail: bytes, max_value: int, data: Any
) -> None:
    wire = b"".join(pieces) + tail
    cuts = split_points(data, wire)
    with accel.using(True):
        runs = [
            framed(RequestParser(max_value=max_value), split_at(wire, cuts), batch=b, replies=False)
            for b in (True, False)
        ]
    assert runs[0] == runs[1]


@needs_c(_built, _parser._EXTENSION)
@settings(max_examples=300)
@given(buf=mangled(replies), data=st.data())
def test_reply_parse_many_gives_what_parse_gives(buf: bytes, data: Any) -> None:
    cuts = split_points(data, buf)
    with accel.using(True):
        runs = [
            framed(ReplyParser(), split_at(buf, cuts), batch=b, replies=True) for b in (True, False)
        ]
    assert runs[0] == runs[1]


def test_parse_many_takes_a_pipeline_in_one_call() -> None:
    require_built(_built, _parser._EXTENSION)
    wire = b"get a\r\ngets b c\r\nset k 0 0 1 noreply\r\nx\r\nset k 0 0 1\r\ny\r\n"
    with accel.using(True):
        parser = RequestParser()
    parser.parse(b"version\r\n", 0)  # the first request decides the protocol
    msgs, end = parser.parse_many(wire + b"incr a 1\r\n", 0, 100)
    assert end == len(wire)  # incr: the general path's
    assert [(m.key, m.keys, m.info, m.expect_reply, m.done) for m in msgs] == [
        (b"a", None, None, True, False),
        (None, [b"b", b"c"], b"gets", True, False),
        (b"k", None, None, False, True),
        (b"k", None, None, True, False),
    ]
    assert parser.parse_many(wire, 0, 2)[1] == msgs[1].end
    parser.parse(b"set k 0 0 5\r\nab", 0)  # a data block still coming: parse's
    assert parser.parse_many(wire, 0, 100) == ([], 0)
    replies = b"END\r\nSTORED\r\nVALUE k 0 1\r\na\r\nEND\r\nNOT_FOUND\r\n"
    with accel.using(True):
        assert ReplyParser().parse_many(replies, 0, 100) == (
            [b"END\r\n", b"STORED\r\n", b"VALUE k 0 1\r\na\r\nEND\r\n"],
            34,
        )


def test_compiled_request_scan_takes_the_common_requests() -> None:
    scan = require_built(_built, _parser._EXTENSION).request_fast
    get = b"get key:1\r\n"
    assert scan(get, 0, 64, 16384) == (0, len(get), get, b"key:1")
    assert scan(b"xxgets a b\r\n", 2, 64, 16384) == (1, 12, b"gets a b\r\n", [b"a", b"b"])
    stored = b"set k 0 -1 3 noreply\r\nabc\r\n"
    assert scan(stored, 0, 64, 16384) == (3, len(stored), stored, b"k")
    for odd in (b"get  k\r\n", b"get k\n", b"cas k 0 0 1 1\r\na\r\n", b"set k 0 0 9\r\nabc\r\n"):
        assert scan(odd, 0, 64, 16384) is None
    assert scan(b"get " + b"k" * 251 + b"\r\n", 0, 64, 16384) is None


def test_compiled_reply_end_takes_the_common_replies() -> None:
    reply_end = require_built(_built, _parser._EXTENSION).reply_end
    hit = b"VALUE k 0 3\r\nabc\r\nEND\r\n"
    assert reply_end(hit, 0) == len(hit)
    assert reply_end(b"xx" + hit + b"STORED\r\n", 2) == 2 + len(hit)
    assert reply_end(b"VA 2 f1\r\nab\r\n", 0) == 13
    assert reply_end(b"VALUE k 0 3 7\r\nabc\r\nEND\r\n", 0) == 0  # cas: the general path
    assert reply_end("END\r\n", 0) == 0  # not bytes-like


def test_fast_paths_take_the_common_requests() -> None:
    cases = {
        b"get k1\r\n": b"k1",
        b"gets k1\r\n": b"k1",
        b"set k1 0 0 3\r\nabc\r\n": b"k1",
        b"prepend k1 5 -1 0 noreply\r\n\r\n": b"k1",
    }
    for wire, key in cases.items():
        msg = _parser._fast_request(wire, 0, 64)
        assert msg is not None
        assert (msg.data, msg.end, msg.key) == (wire, len(wire), key)
    multi = _parser._fast_request(b"xxget a b a\r\n", 2, 64)
    assert multi is not None
    assert (multi.keys, multi.info) == ([b"a", b"b", b"a"], b"get")
    for wire in (b"get  k\r\n", b"set k 0 0 3\r\nabcd\r\n", b"cas k 0 0 1 1\r\na\r\n", b"get k\n"):
        assert _parser._fast_request(wire, 0, 64) is None
    assert _parser._fast_request(b"set k 0 0 65\r\n" + b"x" * 65 + b"\r\n", 0, 64) is None


def test_the_meta_fast_path_takes_the_common_requests() -> None:
    for wire, data in {
        b"mg k v k O1\r\n": b"mg k v k O1\r\n",
        b"mg k v q k\r\n": b"mg k v k\r\n",
        b"md k q\r\n": b"md k\r\n",
        b"ma k N0 J5 D3 v\r\n": b"ma k N0 J5 D3 v\r\n",
    }.items():
        msg = _parser._fast_request(wire, 0, 64)
        assert msg is not None
        assert (msg.data, msg.end, msg.key) == (data, len(wire), b"k")
    # The second time a flag set is seen it comes from the fast path's memo:
    # the same answer, quiet or not.
    for _ in range(2):
        loud = _parser._fast_request(b"mg k v t\r\n", 0, 64)
        quiet = _parser._fast_request(b"mg k v t q\r\n", 0, 64)
        assert loud is not None and quiet is not None
        assert (loud.data, loud.reply_filter) == (b"mg k v t\r\n", None)
        assert quiet.data == b"mg k v t\r\n" and quiet.reply_filter is not None
    for wire in (b"mg k v v\r\n", b"mg Zm9v b\r\n", b"ma k MD\r\n", b"mg k  v\r\n"):
        assert _parser._fast_request(wire, 0, 64) is None


def test_fast_paths_take_the_common_replies() -> None:
    hit = b"VALUE k 0 3\r\nabc\r\nVALUE k2 1 0\r\n\r\nEND\r\n"
    assert _parser._fast_reply_end(hit + b"STORED\r\n", 0) == len(hit)
    assert _parser._fast_reply_end(b"xEND\r\n", 1) == 6
    assert _parser._fast_reply_end(b"STORED\r\n", 0) == 8
    for reply in (b"VALUE k 0 3 9\r\nabc\r\nEND\r\n", b"VALUE k 0 3\r\nabc\r\n", b"DELETED\r\n"):
        assert _parser._fast_reply_end(reply, 0) == 0
    for meta in (b"HD\r\n", b"EN\r\n", b"MN\r\n", b"HD Oab kfoo\r\n", b"VA 3 f0\r\nabc\r\n"):
        assert _parser._fast_reply_end(meta + b"EN\r\n", 0) == len(meta)
    for meta in (b"VA 3\r\nab", b"VA 3\r\nabcd\r\n", b"HD x\ry\r\n"):
        assert _parser._fast_reply_end(meta, 0) == 0
