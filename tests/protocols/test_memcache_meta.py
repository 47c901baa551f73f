"""The memcache request parser on meta commands (``mg ms md ma mn me``), sans-IO.

The expected answers to bad input are memcached 1.6.18's, measured on a
real server; ``tests/integration/test_proxy_memcache_meta.py`` sends every
row of :data:`META_ERRORS` to a live memcached and through the proxy and
compares the replies byte for byte.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.msg import ACTION_FORWARD, ACTION_LOCAL, Msg
from corenet.protocols.memcache import RequestParser
from corenet.protocols.memcache._meta import decode_key
from corenet.testing import drive_requests
from corenet.testing.memcache_strategies import (
    MemcacheRequest,
    memcache_meta_requests,
    memcache_requests,
)

ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
MN = b"MN\r\n"
K251 = b"k" * 251


def parse_all(wire: bytes) -> list[Msg]:
    msgs, err, left = drive_requests(RequestParser(), [wire])
    assert err is None
    assert left == 0
    return msgs


def seen(msgs: list[Msg]) -> list[bytes | None]:
    """Per message: the bytes forwarded, or the local reply."""
    return [m.data if m.action == ACTION_FORWARD else m.reply for m in msgs]


def without_q(wire: bytes) -> bytes:
    """``wire`` with its meta ``q`` flag removed, as the proxy forwards it."""
    line, sep, rest = wire.partition(b"\r\n")
    tokens = [t for t in line.split(b" ") if t != b"q"]
    return b" ".join(tokens) + sep + rest


# -- valid requests -------------------------------------------------------------------


@given(request=memcache_meta_requests())
@example(MemcacheRequest(b"mg Zm9v b k q\r\n", b"mg", (b"foo",), quiet=True))
@example(MemcacheRequest(b"ms k 2 q T0\r\nhi\r\n", b"ms", (b"k",), value=b"hi", quiet=True))
def test_a_meta_request_is_forwarded_by_its_key_without_q(request: MemcacheRequest) -> None:
    (msg,) = parse_all(request.wire)
    if request.command == b"mn":
        assert (msg.action, msg.reply) == (ACTION_LOCAL, MN)
        return
    assert msg.action == ACTION_FORWARD
    assert msg.key == request.keys[0]
    assert msg.data == without_q(request.wire)
    assert msg.expect_reply
    assert (msg.reply_filter is not None) == request.quiet


@given(requests=st.lists(st.one_of(memcache_meta_requests(), memcache_requests()), max_size=12))
def test_meta_and_classic_requests_mix_on_one_connection(requests: list[MemcacheRequest]) -> None:
    msgs = parse_all(b"".join(r.wire for r in requests))
    assert len(msgs) == len(requests)
    for msg, request in zip(msgs, requests, strict=True):
        assert (msg.key or (msg.keys and msg.keys[0])) in (None, b"placeholder", *request.keys)


# Replies memcached suppresses for a quiet command, and replies it sends.
QUIET = [
    (b"mg k q v\r\n", b"EN\r\n", b""),
    (b"mg k q k Oxy\r\n", b"EN kk Oxy\r\n", b""),
    (b"mg k q\r\n", b"HD\r\n", b"HD\r\n"),  # a hit without v is not suppressed
    (b"mg k q v\r\n", b"VA 1\r\nx\r\n", b"VA 1\r\nx\r\n"),
    (b"ms k 1 q\r\nx\r\n", b"HD\r\n", b""),
    (b"ms k 1 q Oa\r\nx\r\n", b"HD Oa\r\n", b""),
    (b"ms k 1 q ME\r\nx\r\n", b"NS\r\n", b"NS\r\n"),
    (b"ms k 1 q C5\r\nx\r\n", b"EX\r\n", b"EX\r\n"),
    (b"md k q\r\n", b"HD\r\n", b""),
    (b"md k q\r\n", b"NF\r\n", b"NF\r\n"),  # protocol.txt says otherwise; memcached sends it
    (b"ma k q\r\n", b"HD\r\n", b""),
    (b"ma k q v\r\n", b"VA 1\r\n7\r\n", b""),
    (b"ma k q\r\n", b"NF\r\n", b"NF\r\n"),
    (b"mg k q\r\n", b"SERVER_ERROR Connection refused\r\n", b"SERVER_ERROR Connection refused\r\n"),
    (b"ms k 1 q\r\nx\r\n", b"CLIENT_ERROR x\r\n", b"CLIENT_ERROR x\r\n"),
]


@pytest.mark.parametrize(("wire", "reply", "client_sees"), QUIET)
def test_a_quiet_reply_is_dropped_as_memcached_drops_it(
    wire: bytes, reply: bytes, client_sees: bytes
) -> None:
    (msg,) = parse_all(wire)
    assert msg.reply_filter is not None
    assert msg.reply_filter(reply) == client_sees
    assert b" q" not in msg.data.split(b"\r\n")[0]


def test_a_request_without_q_has_no_filter() -> None:
    for msg in parse_all(b"mg k v\r\nms k 1\r\nx\r\nmd k\r\nma k\r\nme k\r\n"):
        assert msg.reply_filter is None


# -- memcached's answers to bad input (measured on memcached 1.6.18) --------------------

OPAQUE33 = b"O" + b"x" * 33
META_ERRORS = [
    (b"mg\r\n", [ERROR]),
    (b"me\r\n", [BAD_FORMAT]),
    (b"mz foo\r\n", [ERROR]),
    (b"mn x y\r\n", [MN]),
    (b"mg " + K251 + b"\r\n", [BAD_FORMAT]),
    (b"me " + K251 + b"\r\n", [BAD_FORMAT]),
    (b"mg foo q q\r\n", [b"CLIENT_ERROR duplicate flag\r\n"]),
    (b"mg foo \x80\r\n", [b"CLIENT_ERROR duplicate flag\r\n"]),
    (b"mg foo x\r\n", [b"CLIENT_ERROR invalid flag\r\n"]),
    (b"mg foo T\r\n", [b"CLIENT_ERROR bad token in command line format\r\n"]),
    (b"mg foo F-1\r\n", [BAD_FORMAT]),  # F's own failure keeps the default message
    (b"mg foo Tx M\r\n", [b"CLIENT_ERROR incorrect length for M token\r\n"]),  # the last wins
    (b"ma foo Jx\r\n", [b"CLIENT_ERROR invalid or duplicate flag\r\n"]),
    (b"md foo Q\r\n", [b"CLIENT_ERROR invalid or duplicate flag\r\n"]),
    (b"mg foo " + b" ".join([b"%c" % c for c in b"abcdefghijklmnopqr"]) + b"\r\n", [
        b"CLIENT_ERROR options flags are too long\r\n"
    ]),
    (b"md foo " + b" ".join([b"%c" % c for c in b"abcdefghijklmnopqr"]) + b"\r\n", [
        b"CLIENT_ERROR options flags too long\r\n"
    ]),
    (b"mg foo " + OPAQUE33 + b"\r\n", [b"CLIENT_ERROR opaque token too long\r\n"]),
    (b"mg !!!! b\r\n", [b"CLIENT_ERROR error decoding key\r\n"]),
    (b"mg A=== b\r\n", [b"CLIENT_ERROR error decoding key\r\n"]),
    (b"md Zm9 b\r\n", [b"CLIENT_ERROR invalid or duplicate flag\r\n"]),
    (b"me !!!! b\r\n", [BAD_FORMAT]),
    # ms: refused before the length is read, the data block is a command ...
    (b"ms foo\r\nhi\r\n", [BAD_FORMAT, ERROR]),
    (b"ms foo x\r\nhi\r\n", [BAD_FORMAT, ERROR]),
    (b"ms foo -1\r\nhi\r\n", [BAD_FORMAT, ERROR]),
    (b"ms " + K251 + b" 2\r\nhi\r\n", [BAD_FORMAT, ERROR]),
    # ... refused after it, the data block is swallowed.
    (b"ms foo 2 M\r\nhi\r\n", [b"CLIENT_ERROR incorrect length for M token\r\n"]),
    (b"ms foo 2 MX\r\nhi\r\n", [b"CLIENT_ERROR invalid mode for ms M token\r\n"]),
    (b"ms foo 2 " + OPAQUE33 + b" MX\r\nhi\r\n", [b"CLIENT_ERROR invalid mode for ms M token\r\n"]),
    (b"ms foo 2 " + OPAQUE33 + b"\r\nhi\r\n", [b"CLIENT_ERROR opaque token too long\r\n"]),
    (b"ms foo 3\r\nabcdmn\r\n", [b"CLIENT_ERROR bad data chunk\r\n", ERROR]),  # "n" is next
    (b"ms foo 3 q\r\nabc\r\r\nmn\r\n", [b"CLIENT_ERROR bad data chunk\r\n", ERROR, MN]),
    (b"ma foo MX\r\n", [b"CLIENT_ERROR invalid mode for ma M token\r\n"]),
    (b"ms foo 1048577 T0\r\n" + b"v" * 1048577 + b"\r\nmn\r\n", [
        b"SERVER_ERROR object too large for cache\r\n", MN
    ]),
]  # fmt: skip


@pytest.mark.parametrize(("wire", "expected"), META_ERRORS, ids=lambda v: repr(v)[:40])
def test_bad_meta_input_gets_memcacheds_answers(wire: bytes, expected: list[bytes]) -> None:
    msgs = parse_all(wire)
    assert seen(msgs) == expected
    assert all(m.action == ACTION_LOCAL for m in msgs)


# Lines memcached accepts that the proxy refuses (docs/memcache.md): a length
# memcached reads leniently, a CR or NUL inside the line.
LENIENT = [
    (b"ms foo +2\r\nhi\r\nmn\r\n", [BAD_FORMAT, MN]),
    (b"ms foo 2\rx\r\nhi\r\nmn\r\n", [BAD_FORMAT, MN]),
    (b"mg foo v\rx\r\n", [BAD_FORMAT]),
]


@pytest.mark.parametrize(("wire", "expected"), LENIENT)
def test_lenient_meta_lines_are_refused_and_their_data_swallowed(
    wire: bytes, expected: list[bytes]
) -> None:
    assert seen(parse_all(wire)) == expected


def test_odd_spacing_is_forwarded_rebuilt() -> None:
    (msg,) = parse_all(b" mg  foo   v\n")
    assert msg.data == b"mg foo v\r\n"


# -- base64 keys ------------------------------------------------------------------------


@given(key=st.binary(min_size=1, max_size=187), junk=st.sampled_from([b"", b"-", b"_.!"]))
def test_base64_keys_decode_as_memcached_decodes_them(key: bytes, junk: bytes) -> None:
    encoded = base64.b64encode(key)
    assert decode_key(encoded) == key
    # memcached skips bytes outside the alphabet wherever they are.
    assert decode_key(junk + encoded[:1] + junk + encoded[1:] + junk) == key


@pytest.mark.parametrize(
    ("token", "decoded"),
    [
        (b"A=AA", b"\x00\x00"),  # "=" is a zero digit; one of them drops one byte
        (b"AA==", b"\x00"),
        (b"Zm9vYmFy", b"foobar"),
        (b"Zg==Zm9v", b"f"),  # decoding stops after the block with padding
        (b"A===", None),
        (b"====", None),
        (b"Zm9", None),
        (b"!!!!", None),
    ],
)
def test_base64_quirks(token: bytes, decoded: bytes | None) -> None:
    assert decode_key(token) == decoded


def test_a_base64_key_routes_by_its_decoded_bytes() -> None:
    wire = b"mg Zm9v b v\r\nms Zm9v 2 b\r\nhi\r\nmd Zm9v b\r\nma Zm9v b\r\nme Zm9v b\r\nme Zm9v\r\n"
    assert [m.key for m in parse_all(wire)] == [b"foo"] * 5 + [b"Zm9v"]
