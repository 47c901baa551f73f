"""Hypothesis strategies for Redis requests and replies (RESP2 and RESP3)."""

from __future__ import annotations

from hypothesis import strategies as st

from corenet.protocols.redis._commands import COMMANDS, Route
from corenet.protocols.redis._resp import encode_command

__all__ = [
    "encoded_commands",
    "redis_args",
    "redis_key_commands",
    "resp2_replies",
    "resp3_replies",
]

_KEY_COMMANDS = sorted(
    name
    for name, cmd in COMMANDS.items()
    if cmd.route is Route.KEY and cmd.arity in (2, -2, 3, -3) and cmd.first_key == 1
)


def redis_args(max_args: int = 8, max_size: int = 64) -> st.SearchStrategy[list[bytes]]:
    """Any argument list, as a client could send it (not necessarily a known command)."""
    return st.lists(st.binary(max_size=max_size), min_size=1, max_size=max_args)


@st.composite
def redis_key_commands(draw: st.DrawFn, max_size: int = 64) -> list[bytes]:
    """A known single-key command with a valid argument count."""
    name = draw(st.sampled_from(_KEY_COMMANDS))
    arity = COMMANDS[name].arity
    extra = abs(arity) - 2 if arity > 0 else draw(st.integers(abs(arity) - 2, abs(arity)))
    key = draw(st.binary(max_size=max_size))
    rest = draw(st.lists(st.binary(max_size=max_size), min_size=extra, max_size=extra))
    return [draw(st.sampled_from([name, name.upper()])), key, *rest]


def _line(max_size: int = 32) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def _bulk(blob: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(blob), blob)


_RESP2_LEAVES = st.one_of(
    _line().map(lambda s: b"+" + s + b"\r\n"),
    _line().map(lambda s: b"-ERR " + s + b"\r\n"),
    st.integers(-(2**63), 2**63 - 1).map(lambda i: b":%d\r\n" % i),
    st.binary(max_size=64).map(_bulk),
    st.just(b"$-1\r\n"),
    st.just(b"*-1\r\n"),
)


def _array(
    prefix: bytes, children: st.SearchStrategy[bytes], pairs: bool = False
) -> st.SearchStrategy[bytes]:
    def build(items: list[bytes]) -> bytes:
        count = len(items) // 2 if pairs else len(items)
        return prefix + b"%d\r\n" % count + b"".join(items[: count * 2 if pairs else count])

    return st.lists(children, max_size=6).map(build)


def resp2_replies() -> st.SearchStrategy[bytes]:
    """One RESP2 reply, nested arrays included, as a Redis server sends it."""
    return st.recursive(_RESP2_LEAVES, lambda children: _array(b"*", children), max_leaves=20)


_RESP3_LEAVES = st.one_of(
    _RESP2_LEAVES,
    st.just(b"_\r\n"),
    st.sampled_from([b"#t\r\n", b"#f\r\n"]),
    st.floats(allow_nan=False).map(lambda f: b",%r\r\n" % f),
    st.sampled_from([b",inf\r\n", b",-inf\r\n", b",nan\r\n"]),
    st.integers(-(10**40), 10**40).map(lambda i: b"(%d\r\n" % i),
    st.binary(max_size=32).map(lambda b: b"=%d\r\ntxt:%s\r\n" % (len(b) + 4, b)),
    st.binary(max_size=32).map(lambda b: b"!%d\r\n%s\r\n" % (len(b), b)),
)


def resp3_replies() -> st.SearchStrategy[bytes]:
    """One RESP3 reply: every type, maps, sets, pushes and attributes included."""

    def extend(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        attribute = st.tuples(_array(b"|", children, pairs=True), children).map(
            lambda t: t[0] + t[1]
        )
        return st.one_of(
            _array(b"*", children),
            _array(b"~", children),
            _array(b">", children),
            _array(b"%", children, pairs=True),
            attribute,
        )

    return st.recursive(_RESP3_LEAVES, extend, max_leaves=20)


def encoded_commands(max_args: int = 8) -> st.SearchStrategy[bytes]:
    """Wire bytes of one multibulk request with arbitrary arguments."""
    return redis_args(max_args).map(encode_command)
