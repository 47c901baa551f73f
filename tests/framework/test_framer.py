"""corenet.framing.Framer: one framer for requests and replies, sans-IO."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.framing import Framer
from corenet.testing import split_at


class Lines:
    """Offset frames: ``\\n``-terminated lines; ``!`` starts a bad line."""

    frames = "offsets"

    def __init__(self, *, close: bool = True) -> None:
        self.resume_at = 0
        self.need = 0
        self.close = close
        self.calls = 0

    def parse(self, buf: bytes, pos: int) -> int | None:
        self.calls += 1
        end = buf.find(b"\n", pos)
        if end < 0:
            self.resume_at, self.need = pos, 0
            return None
        if buf[pos : pos + 1] == b"!":
            self.resume_at = end + 1
            raise ProtocolError("bad", reply=b"-bad\n", close=self.close)
        return end + 1


class Sized:
    """Object frames: a length byte then that many bytes (``need`` is exact)."""

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0
        self.calls = 0

    def parse(self, buf: bytes, pos: int) -> Any:
        self.calls += 1
        if pos >= len(buf) or pos + 1 + buf[pos] > len(buf):
            self.resume_at = pos
            self.need = 1 + buf[pos] if pos < len(buf) else 1
            return None
        frame = type("Frame", (), {})()
        frame.end = pos + 1 + buf[pos]
        frame.body = buf[pos + 1 : frame.end]
        return frame


# Valid lines only: no "!" (the bad-line marker) and no inner newline.
lines = st.lists(
    st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"").replace(b"!", b"") + b"\n"),
    max_size=12,
)


@given(items=lines, tail=st.binary(max_size=8).map(lambda b: b.replace(b"\n", b"")), data=st.data())
def test_lines_any_cut_gives_the_same_frames(items: list[bytes], tail: bytes, data: Any) -> None:
    wire = b"".join(items) + tail
    cuts = data.draw(st.lists(st.integers(0, len(wire))))
    framer: Framer[bytes] = Framer(Lines())
    got: list[bytes] = []
    for chunk in split_at(wire, cuts):
        got.extend(framer.feed(chunk))
    assert got == items
    assert framer.buffered == len(tail)
    assert framer.waiting == bool(tail)


@given(bodies=st.lists(st.binary(max_size=40), max_size=8), data=st.data())
def test_sized_frames_wait_for_need_without_reparsing(bodies: list[bytes], data: Any) -> None:
    wire = b"".join(bytes([len(b)]) + b for b in bodies)
    chunks = split_at(wire, data.draw(st.lists(st.integers(0, len(wire)))))
    parser = Sized()
    framer: Framer[Any] = Framer(parser)
    got = [f.body for chunk in chunks for f in framer.feed(chunk)]
    assert got == bodies
    # ``need`` is exact: at most one incomplete call per frame, however it is cut.
    assert parser.calls <= 2 * len(bodies) + 1


@given(
    items=st.lists(st.sampled_from([b"a\n", b"bc\n", b"!x\n", b"\n", b"d"]), max_size=10),
    close=st.booleans(),
    data=st.data(),
)
def test_backlog_says_whether_whole_frames_are_kept(
    items: list[bytes], close: bool, data: Any
) -> None:
    # Any cuts, limits, errors and resumes: ``backlog`` (an attribute the
    # framer keeps) always says what the kept bytes are.
    wire = b"".join(items)
    framer: Framer[bytes] = Framer(Lines(close=close))
    for chunk in split_at(wire, data.draw(st.lists(st.integers(0, len(wire)), max_size=5))):
        framer.feed(chunk, data.draw(st.integers(0, 3)))
        for _ in range(data.draw(st.integers(0, 2))):
            assert framer.backlog == (not framer.waiting and framer.buffered > 0)
            framer.resume(data.draw(st.integers(0, 3)))
        assert framer.backlog == (not framer.waiting and framer.buffered > 0)
        if framer.error is not None and framer.error.close:
            break
    framer.clear()
    assert not framer.backlog


def test_limit_keeps_a_backlog_and_resume_continues() -> None:
    framer: Framer[bytes] = Framer(Lines())
    assert framer.feed(b"a\nb\nc\nd", limit=2) == [b"a\n", b"b\n"]
    assert framer.backlog and not framer.waiting
    assert framer.resume(limit=1) == [b"c\n"]
    assert framer.resume() == []  # "d" is an incomplete frame now, not a backlog
    assert framer.waiting and framer.buffered == 1
    assert framer.feed(b"\n") == [b"d\n"]


def test_a_closing_error_reports_the_frames_before_it_and_keeps_nothing() -> None:
    framer: Framer[bytes] = Framer(Lines())
    assert framer.feed(b"a\n!x\nb\n") == [b"a\n"]
    assert framer.error is not None and framer.error.reply == b"-bad\n"
    assert framer.buffered == 0


def test_a_recoverable_error_resumes_after_the_bad_frame() -> None:
    framer: Framer[bytes] = Framer(Lines(close=False))
    assert framer.feed(b"a\n!x\nb\n") == [b"a\n"]
    assert framer.error is not None and not framer.error.close
    assert framer.resume() == [b"b\n"]
    assert framer.error is None


def test_offset_parsers_may_still_answer_minus_one() -> None:
    class Legacy(Lines):
        def parse(self, buf: bytes, pos: int) -> int | None:
            end = super().parse(buf, pos)
            return -1 if end is None else end

    framer: Framer[bytes] = Framer(Legacy(), replies=True)
    assert framer.feed(b"a\nb") == [b"a\n"]
    assert framer.waiting


@pytest.mark.parametrize("replies", [True, False])
def test_the_parsers_own_declaration_wins(replies: bool) -> None:
    class Declared(Sized):
        frames = "objects"

    framer: Framer[Any] = Framer(Declared(), replies=replies)
    assert [f.body for f in framer.feed(b"\x01a")] == [b"a"]
