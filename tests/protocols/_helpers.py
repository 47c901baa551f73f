"""Checks and tables shared by the protocol parser tests (and the live-server
hardening tests, which hold the same cases against real servers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.testing import drive_replies, drive_requests, split_at

if TYPE_CHECKING:
    from collections.abc import Sequence

NUL_WAITS = [
    # (request whose line Redis never sees the end of, its "too big" error)
    (b"PING\x00\r\n", b"too big inline request"),
    (b"\x00PING\r\n", b"too big inline request"),
    (b'SET k "v\x00"\r\n', b"too big inline request"),
    (b"*1\x00\r\n$4\r\nPING\r\n", b"too big mbulk count string"),
    (b"*\x00\r\n", b"too big mbulk count string"),
    (b"*1\r\n$4\x00\r\nPING\r\n", b"too big bulk count string"),
    (b"*1\r\n$\x004\r\nPING\r\n", b"too big bulk count string"),
    (b"*1\r\n\x00$4\r\nPING\r\n", b"too big bulk count string"),  # not "expected '$'"
    (b"*2\r\n$3\r\nGET\r\nx\x00\r\n", b"too big bulk count string"),
]


def record_parse_calls(parser: Any) -> list[int]:
    """Wrap ``parser.parse``; the list returned grows by one entry a call,
    the number of bytes the call was offered (``len(buf) - pos``)."""
    offered: list[int] = []
    original = parser.parse

    def recording(buf: bytes, pos: int) -> Any:
        offered.append(len(buf) - pos)
        return original(buf, pos)

    parser.parse = recording
    return offered


def assert_redis_refused(parser: Any, chunks: Sequence[bytes], text: bytes) -> None:
    """``chunks`` give no request, only a closing Redis ``Protocol error: text``."""
    msgs, err, _ = drive_requests(parser, chunks)
    assert msgs == []
    assert isinstance(err, ProtocolError)
    assert err.close
    assert err.reply == b"-ERR Protocol error: " + text + b"\r\n"


def assert_reply_found_whole_bytewise_and_before_more(
    make_parser: Any, reply: bytes, trailing: bytes
) -> None:
    """``reply`` is found alone, fed byte by byte, and followed by the
    incomplete ``trailing`` (which stays buffered)."""
    for chunks in ([reply], [reply[i : i + 1] for i in range(len(reply))], [reply + trailing]):
        found, err, left = drive_replies(make_parser(), chunks)
        assert err is None
        assert found == [reply]
        assert left == (len(chunks[0]) - len(reply) if len(chunks) == 1 else 0)


def assert_any_split_finds_every_reply(
    make_parser: Any, replies: list[bytes], data: st.DataObject
) -> None:
    wire = b"".join(replies)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=12))
    found, err, left = drive_replies(make_parser(), split_at(wire, cuts))
    assert err is None
    assert left == 0
    assert found == replies


def assert_partial_tail_is_kept_whole(
    make_parser: Any, replies: list[bytes], tail: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(1, len(tail) - 1))
    found, err, left = drive_replies(make_parser(), [b"".join(replies) + tail[:cut]])
    assert err is None
    assert found == replies
    assert left == cut
