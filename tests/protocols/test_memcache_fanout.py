"""Splitting a memcache multi-get by server and merging the fragments' replies.

A model of memcached answers each fragment (a hit is a ``VALUE`` block, a
miss nothing, a key asked twice answered twice); the merged reply must be
what one server holding every key would answer.  The compiled merge
(``_speedups.merge_values``) and the pure one run on the same cases, and
on mangled replies the compiled one either agrees or declines (-1).
"""

from __future__ import annotations

from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corenet import accel
from corenet.msg import ACTION_FANOUT, Msg, fanout_msg
from corenet.protocols.memcache import _fanout
from corenet.protocols.memcache._parser import _EXTENSION
from tests._speedups import needs_c, require_built

_built = accel.built(_EXTENSION)
MERGES = pytest.mark.parametrize(
    "merge",
    [
        pytest.param(_fanout._merge_values_pure, id="pure"),
        pytest.param(
            getattr(_built, "merge_values", None),
            id="compiled",
            marks=needs_c(_built, _EXTENSION),
        ),
    ],
)

keys = st.text(alphabet="abcdk:1", min_size=1, max_size=6).map(str.encode)


def _block(key: bytes, value: bytes, cas: int | None) -> bytes:
    head = b"VALUE %s 7 %d" % (key, len(value))
    if cas is not None:
        head += b" %d" % cas
    return head + b"\r\n" + value + b"\r\n"


def _answer(wire: bytes, cache: dict[bytes, bytes], cas: bool) -> bytes:
    """What memcached answers to ``wire`` (``get``/``gets`` and keys) holding ``cache``."""
    name, *asked = wire[:-2].split(b" ")
    blocks = [
        _block(key, cache[key], 40 + len(key) if cas else None) for key in asked if key in cache
    ]
    return b"".join(blocks) + b"END\r\n"


def _split(request_keys: list[bytes], servers: dict[bytes, int], name: bytes) -> Msg:
    msg = fanout_msg(b"", 0, request_keys, name)
    assert msg.action == ACTION_FANOUT
    _fanout.fragment(msg, lambda key: servers[key])
    return msg


def _merged(msg: Msg, merge: Any) -> bytes:
    assert msg.frags is not None and msg.keys is not None
    replies = [frag.reply or b"" for frag in msg.frags]
    merged = merge(msg.keys, replies, [frag.info for frag in msg.frags])
    assert merged != -1, "the merge declined a reply memcached could send"
    return merged if isinstance(merged, bytes) else replies[merged]


@MERGES
@settings(max_examples=300)
@given(
    request_keys=st.lists(keys, min_size=2, max_size=12),
    data=st.data(),
    cas=st.booleans(),
)
def test_the_merge_is_what_one_server_would_answer(
    merge: Any, request_keys: list[bytes], data: Any, cas: bool
) -> None:
    distinct = sorted(set(request_keys))
    servers = {key: data.draw(st.integers(0, 2)) for key in distinct}
    cache = {key: data.draw(st.binary(max_size=8)) for key in distinct if data.draw(st.booleans())}
    name = b"gets" if cas else b"get"
    msg = _split(request_keys, servers, name)
    if msg.frags is None:  # all keys on one server: forwarded whole, nothing to merge
        assert len(set(servers.values())) == 1
        return
    for frag in msg.frags:
        frag.reply = _answer(frag.data, cache, cas)
    assert _merged(msg, merge) == _answer(b"get " + b" ".join(request_keys) + b"\r\n", cache, cas)


@MERGES
def test_a_failed_fragment_is_the_whole_reply(merge: Any) -> None:
    msg = _split([b"a", b"b", b"c"], {b"a": 0, b"b": 1, b"c": 2}, b"get")
    assert msg.frags is not None
    replies = [b"VALUE a 0 1\r\nx\r\nEND\r\n", b"SERVER_ERROR out of memory\r\n", b"ERROR\r\n"]
    for frag, reply in zip(msg.frags, replies, strict=True):
        frag.reply = reply
    assert _merged(msg, merge) == b"SERVER_ERROR out of memory\r\n"


@MERGES
def test_a_key_nobody_asked_for_ends_the_fragment(merge: Any) -> None:
    msg = _split([b"a", b"b"], {b"a": 0, b"b": 1}, b"get")
    assert msg.frags is not None
    msg.frags[0].reply = b"VALUE zz 0 1\r\nq\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
    msg.frags[1].reply = b"VALUE b 0 2\r\nyy\r\nEND\r\n"
    assert _merged(msg, merge) == b"VALUE b 0 2\r\nyy\r\nEND\r\n"


@needs_c(_built, _EXTENSION)
@settings(max_examples=400)
@given(
    request_keys=st.lists(keys, min_size=2, max_size=6),
    data=st.data(),
    cut=st.integers(0, 60),
    byte=st.integers(0, 255),
)
def test_on_mangled_replies_the_compiled_merge_agrees_or_declines(
    request_keys: list[bytes], data: Any, cut: int, byte: int
) -> None:
    merge_values = require_built(_built, _EXTENSION).merge_values
    distinct = sorted(set(request_keys))
    servers = {key: i % 2 for i, key in enumerate(distinct)}
    msg = _split(request_keys, servers, b"get")
    if msg.frags is None:
        return
    cache = {key: b"v" * len(key) for key in distinct}
    replies = [_answer(frag.data, cache, data.draw(st.booleans())) for frag in msg.frags]
    which = data.draw(st.integers(0, len(replies) - 1))
    bad = bytearray(replies[which])
    if cut < len(bad):
        bad[cut] = byte
    replies[which] = bytes(bad)
    positions = [frag.info for frag in msg.frags]
    compiled = merge_values(msg.keys, replies, positions)
    if compiled == -1:
        return
    assert compiled == _fanout._merge_values_pure(msg.keys or [], replies, positions)


def test_merge_get_is_what_the_pool_calls() -> None:
    msg = _split([b"a", b"b"], {b"a": 0, b"b": 1}, b"get")
    assert msg.frags is not None and msg.merge is _fanout.merge_get
    msg.frags[0].reply = b"END\r\n"
    msg.frags[1].reply = b"VALUE b 3 1\r\nz\r\nEND\r\n"
    assert _fanout.merge_get(msg) == b"VALUE b 3 1\r\nz\r\nEND\r\n"


@needs_c(_built, _EXTENSION)
@given(
    name=st.sampled_from([b"get", b"gets"]),
    request_keys=st.lists(keys, min_size=1, max_size=8),
    data=st.data(),
)
def test_the_compiled_fragment_request_is_the_pure_one(
    name: bytes, request_keys: list[bytes], data: Any
) -> None:
    get_wire = require_built(_built, _EXTENSION).get_wire
    picked = data.draw(st.lists(st.integers(0, len(request_keys) - 1), min_size=1))
    positions = array("I", picked)
    assert get_wire(name, request_keys, positions) == _fanout._get_wire_pure(
        name, request_keys, positions
    )
    with pytest.raises(ValueError, match="position"):
        get_wire(name, request_keys, array("I", [len(request_keys)]))
    with pytest.raises(TypeError, match="array"):
        get_wire(name, request_keys, array("i", [0]))
