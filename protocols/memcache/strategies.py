"""Hypothesis strategies for memcache ASCII requests and replies.

Requests come as :class:`MemcacheRequest` records: the wire bytes a client
such as pymemcache would send, plus what a parser must find in them (the
keys, whether the server will answer).  Replies are the bytes a memcached
1.6 server sends for one request.

The meta commands (``mg ms md ma mn me``) have their own strategies,
:func:`memcache_meta_requests` and :func:`memcache_meta_replies`: requests
with every flag memcached 1.6.18 accepts for the command, in any order, keys
plain or base64 (``b``), ``q`` (quiet) or not.
"""

from __future__ import annotations

import base64

import attrs
from hypothesis import strategies as st

__all__ = [
    "META_COMMANDS",
    "STORAGE_COMMANDS",
    "MemcacheRequest",
    "memcache_get_replies",
    "memcache_keys",
    "memcache_line_replies",
    "memcache_meta_replies",
    "memcache_meta_requests",
    "memcache_replies",
    "memcache_requests",
    "memcache_value_block",
]

STORAGE_COMMANDS = (b"set", b"add", b"replace", b"append", b"prepend", b"cas")
META_COMMANDS = (b"mg", b"ms", b"md", b"ma", b"mn", b"me")

# Key bytes a well-behaved client sends: printable, no space, no control bytes.
_KEY_BYTES = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))
_TO_KEY_BYTE = bytes(_KEY_BYTES[i % len(_KEY_BYTES)] for i in range(256))


@attrs.frozen
class MemcacheRequest:
    """One request as sent on the wire, and what parsing it must yield.

    ``keys`` are the routing keys (a meta key sent in base64 appears
    decoded); ``quiet`` is a meta command's ``q`` flag, which unlike
    ``noreply`` still gets a reply from the server the proxy asks.
    """

    wire: bytes
    command: bytes
    keys: tuple[bytes, ...]
    noreply: bool = False
    value: bytes | None = None
    quiet: bool = False


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


# -- meta commands -------------------------------------------------------------------


def _token(max_size: int) -> st.SearchStrategy[bytes]:
    """A flag argument: printable, no space (as an opaque or a key is)."""
    return memcache_keys(max_size=max_size)


def _ttl(clock_free: bool) -> st.SearchStrategy[bytes]:
    if clock_free:
        # Never, already expired, or far enough ahead that no second ticking
        # between two runs of the same commands changes an answer.
        ttl = st.one_of(st.sampled_from([0, -1]), st.integers(1000, 2_000_000))
    else:
        ttl = st.integers(-(2**31), 2**31 - 1)
    return ttl.map(lambda i: b"%d" % i)


def _meta_flags(command: bytes, clock_free: bool, cas: bool) -> st.SearchStrategy[list[bytes]]:
    """The flags memcached 1.6.18 documents for ``command``, each at most once.

    ``clock_free`` leaves out what reads the clock (``t`` ``l``, ``R``, short
    TTLs); ``cas=False`` leaves out cas values (``c``, ``C``), which differ
    between servers.
    """
    number64 = _numbers(2**64 - 1)
    ttl = _ttl(clock_free)
    common: dict[bytes, st.SearchStrategy[bytes]] = {
        b"k": st.just(b""),
        b"O": _token(31),  # memcached: the O token, flag included, is at most 32 bytes
        b"q": st.just(b""),
    }
    if cas:
        common[b"c"] = st.just(b"")
        common[b"C"] = number64
    per_command: dict[bytes, dict[bytes, st.SearchStrategy[bytes]]] = {
        b"mg": {
            b"f": st.just(b""),
            b"h": st.just(b""),
            b"s": st.just(b""),
            b"u": st.just(b""),
            b"v": st.just(b""),
            b"N": ttl,
            b"T": ttl,
        },
        b"ms": {
            b"F": _FLAGS,
            b"I": st.just(b""),
            b"T": ttl,
            b"M": st.sampled_from([b"E", b"A", b"P", b"R", b"S"]),
        },
        b"md": {b"I": st.just(b""), b"T": ttl},
        b"ma": {
            b"N": ttl,
            b"J": number64,
            b"D": number64,
            b"T": ttl,
            b"M": st.sampled_from([b"I", b"+", b"D", b"-"]),
            b"v": st.just(b""),
        },
    }
    allowed = {**common, **per_command[command]}
    if command == b"mg":
        allowed.pop(b"C", None)  # mg accepts C but ignores it; keep the corpus meaningful
    if not clock_free:
        allowed[b"t"] = st.just(b"")
        if command == b"mg":
            allowed[b"l"] = st.just(b"")
            allowed[b"R"] = ttl

    @st.composite
    def flags(draw: st.DrawFn) -> list[bytes]:
        names = draw(st.lists(st.sampled_from(sorted(allowed)), unique=True, max_size=8))
        return [name + draw(allowed[name]) for name in names]

    return flags()


@st.composite
def _meta_request(
    draw: st.DrawFn,
    max_value: int,
    commands: tuple[bytes, ...],
    keys: st.SearchStrategy[bytes] | None,
    clock_free: bool,
    cas: bool,
) -> MemcacheRequest:
    command = draw(st.sampled_from(commands))
    if command == b"mn":
        return MemcacheRequest(b"mn\r\n", command, ())
    if keys is not None:
        key = draw(keys)
    elif draw(st.booleans()):
        key = draw(st.binary(min_size=1, max_size=60))
    else:
        key = draw(memcache_keys(max_size=draw(st.sampled_from([12, 250]))))
    # A text key may go either way; a binary one must be sent in base64.
    if draw(st.booleans()) or key.translate(None, _KEY_BYTES):
        token = base64.b64encode(key)
        binary = [b"b"]
    else:
        token = key
        binary = []
    if command == b"me":
        return MemcacheRequest(b" ".join([command, token, *binary]) + b"\r\n", command, (key,))
    flags = draw(_meta_flags(command, clock_free, cas)) + binary
    flags = draw(st.permutations(flags))
    quiet = b"q" in flags
    if command != b"ms":
        wire = b" ".join([command, token, *flags]) + b"\r\n"
        return MemcacheRequest(wire, command, (key,), quiet=quiet)
    value = draw(st.binary(max_size=max_value))
    wire = b" ".join([command, token, b"%d" % len(value), *flags]) + b"\r\n" + value + b"\r\n"
    return MemcacheRequest(wire, command, (key,), value=value, quiet=quiet)


def memcache_meta_requests(
    max_value: int = 64,
    *,
    commands: tuple[bytes, ...] = META_COMMANDS,
    keys: st.SearchStrategy[bytes] | None = None,
    clock_free: bool = False,
    cas: bool = True,
) -> st.SearchStrategy[MemcacheRequest]:
    """One well-formed meta request, as memcached 1.6.18 accepts it.

    Args:
        max_value: the largest ``ms`` data block.
        commands: which meta commands to draw from.
        keys: the (decoded) keys to draw from, a few of them so that
            requests meet the same items; by default any key, text or binary.
        clock_free: leave out what depends on memcached's clock (``t``,
            ``l``, ``R``, TTLs that could expire within seconds, ``me``,
            whose reply holds times), so that the same requests sent to two
            servers a moment apart get the same replies.
        cas: include cas values (``c``, ``C``); leave them out to compare
            servers whose cas counters differ.
    """
    if clock_free:
        commands = tuple(c for c in commands if c != b"me")
    return _meta_request(max_value, commands, keys, clock_free, cas)


def _meta_return_flags() -> st.SearchStrategy[bytes]:
    flag = st.one_of(
        st.sampled_from([b"b", b"W", b"X", b"Z"]),
        _token(31).map(lambda t: b"O" + t),
        memcache_keys(max_size=40).map(lambda k: b"k" + k),
        st.sampled_from(b"cfhlst").flatmap(
            lambda c: st.integers(-1, 2**64 - 1).map(lambda i: b"%c%d" % (c, i))
        ),
    )
    return st.lists(flag, max_size=6).map(lambda flags: b"".join(b" " + f for f in flags))


def memcache_meta_replies() -> st.SearchStrategy[bytes]:
    """Any one reply memcached sends to a meta command."""
    code = st.sampled_from([b"HD", b"EN", b"NF", b"NS", b"EX"])
    value = st.tuples(st.binary(max_size=64), _meta_return_flags()).map(
        lambda vf: b"VA %d%s\r\n%s\r\n" % (len(vf[0]), vf[1], vf[0])
    )
    debug = memcache_keys(max_size=40).map(
        lambda k: b"ME " + k + b" exp=-1 la=0 cas=1 fetch=no cls=1 size=64\r\n"
    )
    return st.one_of(
        st.tuples(code, _meta_return_flags()).map(lambda cf: cf[0] + cf[1] + b"\r\n"),
        st.just(b"MN\r\n"),
        value,
        debug,
        st.tuples(st.sampled_from([b"CLIENT_ERROR ", b"SERVER_ERROR "]), _text()).map(
            lambda pt: pt[0] + pt[1] + b"\r\n"
        ),
    )
