"""The whole-keyspace commands' sans-IO parts: SCAN cursors and the merges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from corenet.msg import ACTION_EVERY, ACTION_LOCAL, Msg
from corenet.protocols.redis import RequestParser, encode_command
from corenet.protocols.redis._every import fragment_every, next_cursor, split_cursor


@given(
    st.lists(
        st.lists(st.integers(1, 2**40), max_size=5),  # each server's non-zero cursors
        min_size=1,
        max_size=6,
    )
)
def test_a_scan_from_zero_visits_every_server_once_in_order(cursors: list[list[int]]) -> None:
    servers = len(cursors)
    steps = [iter(c + [0]) for c in cursors]  # a server's scan ends with cursor 0
    proxy_cursor, visited = 0, []
    for _ in range(sum(map(len, cursors)) + servers):
        index, server_cursor = split_cursor(proxy_cursor, servers)
        visited.append((index, server_cursor))
        proxy_cursor = next_cursor(index, next(steps[index]), servers)
        if proxy_cursor == 0:
            break
    expected = [(i, c) for i, cs in enumerate(cursors) for c in [0, *cs]]
    assert visited == expected
    assert proxy_cursor == 0


def _every(*args: bytes) -> Msg:
    msg = RequestParser().parse(encode_command(list(args)), 0)
    assert msg is not None and msg.action == ACTION_EVERY, msg
    return msg


def _answer(msg: Msg, servers: int, replies: list[bytes]) -> bytes:
    frags = fragment_every(msg, servers)
    for (_, frag), reply in zip(frags, replies, strict=True):
        frag.reply = reply
    assert msg.merge is not None
    return msg.merge(msg)


@given(st.lists(st.lists(st.binary(max_size=8), max_size=4), min_size=1, max_size=4))
def test_keys_concatenates_every_servers_keys(per_server: list[list[bytes]]) -> None:
    def array(items: list[bytes]) -> bytes:
        return b"*%d\r\n" % len(items) + b"".join(b"$%d\r\n%s\r\n" % (len(i), i) for i in items)

    everything = [k for keys in per_server for k in keys]
    merged = _answer(_every(b"KEYS", b"*"), len(per_server), [array(k) for k in per_server])
    assert merged == array(everything)


def test_dbsize_sums_and_an_error_fails_the_whole_command() -> None:
    assert _answer(_every(b"DBSIZE"), 3, [b":1\r\n", b":2\r\n", b":3\r\n"]) == b":6\r\n"
    failed = _answer(_every(b"DBSIZE"), 3, [b":1\r\n", b"-ERR Connection refused\r\n", b":3\r\n"])
    assert failed == b"-ERR Connection refused\r\n"


def test_scan_rewrites_the_cursor_both_ways() -> None:
    msg = _every(b"SCAN", b"%d" % (7 * 3 + 1), b"COUNT", b"10")  # server 1, its cursor 7
    frags = fragment_every(msg, 3)
    ((index, frag),) = frags
    assert index == 1 and frag.data == encode_command([b"SCAN", b"7", b"COUNT", b"10"])
    frag.reply = b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"  # server 1 is done: server 2 is next
    assert msg.merge is not None
    assert msg.merge(msg) == b"*2\r\n$1\r\n2\r\n*1\r\n$1\r\nk\r\n"


def test_commands_the_proxy_cannot_serve_are_answered_locally() -> None:
    for args, text in (
        ([b"SCAN", b"-1"], b"-ERR invalid cursor\r\n"),
        ([b"SCRIPT", b"KILL"], b"-ERR SCRIPT KILL is not supported by the proxy\r\n"),
        ([b"SCRIPT", b"LOAD"], b"-ERR wrong number of arguments for 'script|load' command\r\n"),
    ):
        msg = RequestParser().parse(encode_command(args), 0)
        assert msg is not None and msg.action == ACTION_LOCAL and msg.reply == text
