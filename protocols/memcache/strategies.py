"""Hypothesis strategies for memcache ASCII requests and replies.

Requests come as :class:`MemcacheRequest` records: the wire bytes a client
such as pymemcache would send, plus what a parser must find in them (the
keys, whether the server will answer).  Replies are the bytes a memcached
1.6 server sends for one request.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

__all__ = [
    "STORAGE_COMMANDS",
    "MemcacheRequest",
    "memcache_get_replies",
    "memcache_keys",
    "memcache_line_replies",
    "memcache_replies",
    "memcache_requests",
    "memcache_value_block",
]

STORAGE_COMMANDS = (b"set", b"add", b"replace", b"append", b"prepend", b"cas")

# Key bytes a well-behaved client sends: printable, no space, no control bytes.
_KEY_BYTES = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
_TO_KEY_BYTE = bytes(_KEY_BYTES[i % len(_KEY_BYTES)] for i in range(256))


@attrs.frozen
class MemcacheRequest:
    """One request as sent on the wire, and what parsing it must yield."""

    wire: bytes
    command: bytes
    keys: tuple[bytes, ...]
    noreply: bool = False
    value: bytes | None = None


def memcache_keys(min_size: int = 1, max_size: int = 250) -> st.SearchStrategy[bytes]:
    """A valid memcache key: 1-250 bytes, no whitespace nor control characters."""
    return st.binary(min_size=min_size, max_size=max_size).map(lambda b: b.translate(_TO_KEY_BYTE))


def _numbers(limit: int) -> st.SearchStrategy[bytes]:
    return st.integers(0, limit).map(lambda i: b"%d" % i)


_FLAGS = _numbers(2**32 - 1)
_EXPTIME = st.integers(-(2**31), 2**31 - 1).map(lambda i: b"%d" % i)
_CAS = _numbers(2**64 - 1)


@st.composite
def _storage(draw: st.DrawFn, max_value: int) -> MemcacheRequest:
    command = draw(st.sampled_from(STORAGE_COMMANDS))
    key = draw(memcache_keys(max_size=draw(st.sampled_from([8, 250]))))
    value = draw(st.binary(max_size=max_value))
    noreply = draw(st.booleans())
    parts = [command, key, draw(_FLAGS), draw(_EXPTIME), b"%d" % len(value)]
    if command == b"cas":
        parts.append(draw(_CAS))
    if noreply:
        parts.append(b"noreply")
    wire = b" ".join(parts) + b"\r\n" + value + b"\r\n"
    return MemcacheRequest(wire, command, (key,), noreply, value)


@st.composite
def _retrieval(draw: st.DrawFn) -> MemcacheRequest:
    command = draw(st.sampled_from([b"get", b"gets"]))
    keys = tuple(draw(st.lists(memcache_keys(max_size=40), min_size=1, max_size=8)))
    return MemcacheRequest(b" ".join([command, *keys]) + b"\r\n", command, keys)


@st.composite
def _keyed(draw: st.DrawFn) -> MemcacheRequest:
    command = draw(st.sampled_from([b"incr", b"decr", b"touch", b"delete"]))
    key = draw(memcache_keys(max_size=60))
    noreply = draw(st.booleans())
    parts = [command, key]
    if command in (b"incr", b"decr"):
        parts.append(draw(_CAS))
    elif command == b"touch":
        parts.append(draw(_EXPTIME))
    if noreply:
        parts.append(b"noreply")
    return MemcacheRequest(b" ".join(parts) + b"\r\n", command, (key,), noreply)


def memcache_requests(max_value: int = 64) -> st.SearchStrategy[MemcacheRequest]:
    """One well-formed request of any supported command (``quit`` excepted)."""
    return st.one_of(
        _storage(max_value),
        _retrieval(),
        _keyed(),
        st.just(MemcacheRequest(b"version\r\n", b"version", ())),
    )


def memcache_value_block(key: bytes, value: bytes, flags: int = 0, cas: int | None = None) -> bytes:
    """The ``VALUE`` line and data memcached sends for one hit."""
    head = b"VALUE %s %d %d" % (key, flags, len(value))
    if cas is not None:
        head += b" %d" % cas
    return head + b"\r\n" + value + b"\r\n"


@st.composite
def memcache_get_replies(draw: st.DrawFn, max_values: int = 6) -> bytes:
    """A reply to ``get``/``gets``: zero or more ``VALUE`` blocks, then ``END``."""
    with_cas = draw(st.booleans())
    blocks = draw(
        st.lists(
            st.tuples(
                memcache_keys(max_size=40), st.binary(max_size=64), st.integers(0, 2**32 - 1)
            ),
            max_size=max_values,
        )
    )
    body = b"".join(
        memcache_value_block(k, v, f, draw(st.integers(0, 2**64 - 1)) if with_cas else None)
        for k, v, f in blocks
    )
    return body + b"END\r\n"


def _text(max_size: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def memcache_line_replies() -> st.SearchStrategy[bytes]:
    """A one-line reply: a status word, a number, VERSION or an error."""
    return st.one_of(
        st.sampled_from(
            [b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED", b"TOUCHED", b"ERROR"]
        ),
        st.integers(0, 2**64 - 1).map(lambda i: b"%d" % i),
        _text().map(lambda t: b"VERSION " + t),
        _text().map(lambda t: b"CLIENT_ERROR " + t),
        _text().map(lambda t: b"SERVER_ERROR " + t),
    ).map(lambda line: line + b"\r\n")


def memcache_replies() -> st.SearchStrategy[bytes]:
    """Any one reply a memcached server sends."""
    return st.one_of(memcache_line_replies(), memcache_get_replies())
