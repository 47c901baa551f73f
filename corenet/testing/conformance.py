"""A conformance suite any protocol plugin's parsers can run in a few lines.

Give it a factory of fresh parsers and a hypothesis strategy of *valid* wire
messages (one message per example, as a client or server would send it);
it checks the parser contract of :mod:`corenet.protocol` the way the proxy's
connections drive parsers (through :mod:`corenet.testing._drive`):

``round_trip``
    a message parsed alone gives exactly one message spanning all its bytes
    (requests: forwarded bytes equal the wire bytes unless
    ``forwards_verbatim=False``; replies: the reply is the wire bytes).
``any_split``
    a pipeline of messages cut at any offsets, or one byte at a time, parses
    to the same messages as one feed.
``pipelining``
    N concatenated messages parse to N messages; a trailing proper prefix of
    another message gives "need more data" and stays buffered, unconsumed.
``garbage``
    arbitrary bytes, and valid pipelines with bytes flipped, inserted or cut,
    only ever produce messages, "need more data" or a
    :class:`~corenet.errors.ProtocolError` (any other exception fails), and
    split feeds agree with whole feeds on the messages found.
``bounded``
    a message that never ends (its first byte, then megabytes of ``x``) is
    refused with a ``ProtocolError`` or parsed, never buffered without
    limit: incomplete data stays under ``max_pending`` bytes.
``need`` (only with ``large_message``)
    what O(n) means here.  A parser is called again each time more bytes
    arrive unless it announced, in ``need``, how many bytes the pending
    message spans.  A 1 MiB message fed in 1 KiB chunks must therefore be
    parsed in at most :data:`MAX_LARGE_CALLS` calls, not once per chunk (a
    parser that ignores ``need`` rescans the growing buffer 1024 times: the
    quadratic cost this check exists to catch).  Messages whose length is
    not announced early (text lines) cannot use ``need``; for them O(n)
    means resuming the scan where the last call stopped, with the line
    length capped, which ``bounded`` checks.

Two ways to use it: call :func:`check_request_parser` /
:func:`check_reply_parser` from a test, or subclass
:class:`RequestParserConformance` / :class:`ReplyParserConformance` in a
test module (the class name must start with ``Test``) and set a few class
attributes; each property then shows up as its own pytest test.
"""

from __future__ import annotations

import unittest
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corenet.errors import ProtocolError
from corenet.msg import ACTION_FANOUT, ACTION_FORWARD
from corenet.testing._drive import drive_replies, drive_requests, split_at

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.msg import Msg
    from corenet.protocol import ReplyParser, RequestParser

__all__ = [
    "ALL_CHECKS",
    "MAX_LARGE_CALLS",
    "ReplyParserConformance",
    "RequestParserConformance",
    "check_reply_parser",
    "check_request_parser",
    "summarize_request",
]

ALL_CHECKS = ("round_trip", "any_split", "pipelining", "garbage", "bounded", "need")
MAX_LARGE_CALLS = 32
"""Most parse calls allowed for one 1 MiB message fed in 1 KiB chunks."""
LARGE_SIZE = 1 << 20
LARGE_CHUNK = 1 << 10
ENDLESS_SIZE = 4 << 20
ENDLESS_CHUNK = 64 << 10
BYTEWISE_MAX = 2048  # streams up to this size are also fed one byte at a time


def summarize_request(msg: Msg) -> object:
    """What a request parse must agree on however the stream was split.

    The forwarded bytes, routing key, action, local reply, fan-out keys and
    whether the server answers; not ``end``, which depends on the buffer.
    """
    return (bytes(msg.data), msg.key, msg.action, msg.reply, msg.keys, msg.expect_reply)


class _Counting:
    """Wraps a parser and counts ``parse`` calls; mirrors its buffering state."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0
        self.resume_at = 0
        self.need = 0
        self.variant = getattr(inner, "variant", 0)

    def parse(self, buf: bytes, pos: int) -> Any:
        self.calls += 1
        try:
            return self.inner.parse(buf, pos)
        finally:
            self.resume_at = self.inner.resume_at
            self.need = self.inner.need
            self.variant = getattr(self.inner, "variant", 0)


class _Driver:
    """One direction of a protocol, driven the way a connection drives it."""

    def __init__(
        self,
        make_parser: Callable[[], Any],
        drive: Callable[[Any, Sequence[bytes]], tuple[list[Any], ProtocolError | None, int]],
        summarize: Callable[[Any], object],
        what: str,
    ) -> None:
        self.make_parser = make_parser
        self.drive_fn = drive
        self.summarize = summarize
        self.what = what

    def drive(
        self, chunks: Sequence[bytes], parser: Any = None
    ) -> tuple[list[object], ProtocolError | None, int, list[Any]]:
        parser = self.make_parser() if parser is None else parser
        try:
            found, err, left = self.drive_fn(parser, chunks)
        except ProtocolError:  # pragma: no cover - the driver catches these
            raise
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"{self.what} parser raised {type(exc).__name__}: {exc} "
                f"(only ProtocolError may signal bad input); chunks={_short(chunks)}"
            ) from exc
        return [self.summarize(item) for item in found], err, left, found


def _short(chunks: Sequence[bytes]) -> str:
    text = repr(list(chunks))
    return text if len(text) < 400 else text[:400] + "..."


def _settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


@st.composite
def _mutated(draw: st.DrawFn, stream: st.SearchStrategy[bytes]) -> bytes:
    """A valid stream with a few bytes flipped, inserted or cut away."""
    data = bytearray(draw(stream))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


class _Limits(NamedTuple):
    """The knobs both public checkers share (see :func:`check_request_parser`)."""

    large_message: Callable[[int], bytes] | None
    max_pending: int | None
    max_examples: int
    checks: Sequence[str]


def _run_checks(
    driver: _Driver,
    messages: st.SearchStrategy[bytes],
    check_one: Callable[[bytes, Any], None],
    limits: _Limits,
) -> None:
    large_message, max_pending, max_examples, checks = limits
    unknown = set(checks) - set(ALL_CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)} (known: {', '.join(ALL_CHECKS)})")
    pipelines = st.lists(messages, min_size=1, max_size=8).map(b"".join)
    what = driver.what

    @_settings(max_examples)
    @given(wire=messages)
    def round_trip(wire: bytes) -> None:
        _, err, left, found = driver.drive([wire])
        assert err is None, f"valid {what} {wire!r} raised {err!r}"
        assert len(found) == 1, f"valid {what} {wire!r} parsed to {len(found)} messages"
        assert left == 0, f"{left} bytes of {wire!r} left unparsed"
        check_one(wire, found[0])

    @_settings(max_examples)
    @given(stream=pipelines, data=st.data())
    def any_split(stream: bytes, data: st.DataObject) -> None:
        whole, err, left, _ = driver.drive([stream])
        assert err is None and left == 0, f"valid stream {stream!r}: error {err!r}, left {left}"
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
        chunks = split_at(stream, cuts)
        split, err, left, _ = driver.drive(chunks)
        assert err is None and left == 0, f"split {_short(chunks)}: error {err!r}, left {left}"
        assert split == whole, f"split feed {_short(chunks)} parsed differently from one feed"
        if len(stream) <= BYTEWISE_MAX:
            bytewise, err, left, _ = driver.drive([stream[i : i + 1] for i in range(len(stream))])
            assert err is None and left == 0, f"byte by byte: error {err!r}, left {left}"
            assert bytewise == whole, f"byte-by-byte feed of {stream!r} parsed differently"

    @_settings(max_examples)
    @given(
        wires=st.lists(messages, min_size=1, max_size=40),
        partial=messages,
        data=st.data(),
    )
    def pipelining(wires: list[bytes], partial: bytes, data: st.DataObject) -> None:
        stream = b"".join(wires)
        _, err, left, found = driver.drive([stream])
        assert err is None and left == 0, f"pipeline of {len(wires)}: error {err!r}, left {left}"
        assert len(found) == len(wires), f"{len(wires)} pipelined {what}s gave {len(found)}"
        if len(partial) < 2:
            return
        cut = data.draw(st.integers(1, len(partial) - 1), label="cut")
        _, err, left, found = driver.drive([stream + partial[:cut]])
        assert err is None, f"a proper prefix {partial[:cut]!r} raised {err!r}"
        assert len(found) == len(wires), f"a proper prefix {partial[:cut]!r} parsed as a message"
        assert left == cut, f"of a trailing partial {what} of {cut} bytes, {left} stay buffered"

    @_settings(max_examples)
    @given(
        junk=st.one_of(st.binary(max_size=512), _mutated(pipelines)),
        data=st.data(),
    )
    def garbage(junk: bytes, data: st.DataObject) -> None:
        whole, whole_err, _, _ = driver.drive([junk])
        cuts = data.draw(st.lists(st.integers(0, len(junk)), max_size=12), label="cuts")
        split, split_err, _, _ = driver.drive(split_at(junk, cuts))
        if whole_err is None and split_err is None:
            assert split == whole, f"split feed of {junk!r} parsed differently from one feed"

    @_settings(min(max_examples, 10))
    @given(wire=messages.filter(bool))
    def bounded(wire: bytes) -> None:
        filler = b"x" * ENDLESS_CHUNK
        chunks = [wire[:1] + filler] + [filler] * (ENDLESS_SIZE // ENDLESS_CHUNK)
        _, err, left, _ = driver.drive(chunks)
        if err is None:
            assert max_pending is not None and left <= max_pending, (
                f"{what} starting {wire[:1]!r} followed by {ENDLESS_SIZE} bytes of 'x' "
                f"is still buffered ({left} bytes): cap incomplete messages with a ProtocolError"
            )

    def need() -> None:
        assert large_message is not None
        wire = large_message(LARGE_SIZE)
        counting = _Counting(driver.make_parser())
        chunks = [wire[i : i + LARGE_CHUNK] for i in range(0, len(wire), LARGE_CHUNK)]
        _, err, left, found = driver.drive(chunks, counting)
        assert err is None and left == 0 and len(found) == 1, (
            f"large {what} of {len(wire)} bytes: error {err!r}, left {left}, {len(found)} found"
        )
        check_one(wire, found[0])
        assert counting.calls <= MAX_LARGE_CALLS, (
            f"a {len(wire)}-byte {what} fed in {len(chunks)} chunks took {counting.calls} parse "
            f"calls (at most {MAX_LARGE_CALLS}): set `need` when the message length is known"
        )

    runs: dict[str, Callable[[], None]] = {
        "round_trip": round_trip,
        "any_split": any_split,
        "pipelining": pipelining,
        "garbage": garbage,
        "bounded": bounded,
        "need": need,
    }
    for name in checks:
        if (name == "need" and large_message is None) or (
            name == "bounded" and max_pending is None
        ):
            continue
        runs[name]()


def check_request_parser(
    make_parser: Callable[[], RequestParser],
    messages: st.SearchStrategy[bytes],
    *,
    summarize: Callable[[Msg], object] = summarize_request,
    check_message: Callable[[bytes, Msg], None] | None = None,
    forwards_verbatim: bool = True,
    large_message: Callable[[int], bytes] | None = None,
    max_pending: int | None = 2 << 20,
    max_examples: int = 100,
    checks: Sequence[str] = ALL_CHECKS,
) -> None:
    """Run the conformance checks (module docstring) on a request parser.

    Args:
        make_parser: returns a fresh parser, as for a new client connection.
        messages: one valid request's wire bytes per example.
        summarize: what whole and split feeds must agree on per request.
        check_message: ``check_message(wire, msg)`` asserts more about one
            request parsed alone (its key, say).
        forwards_verbatim: forwarded requests (``ACTION_FORWARD`` and
            ``ACTION_FANOUT``) must carry exactly the bytes the client sent.
        large_message: ``large_message(size)`` returns one valid request of
            about ``size`` bytes whose length is known early (enables ``need``).
        max_pending: most bytes an incomplete request may keep buffered
            (None skips ``bounded``).
        max_examples: hypothesis examples per property.
        checks: which checks to run (default all of :data:`ALL_CHECKS`).

    Raises:
        AssertionError: the parser breaks the contract; the message and the
            hypothesis report say how, with a minimal failing input.
    """

    def check_one(wire: bytes, msg: Msg) -> None:
        assert msg.end > 0, f"request {wire!r} has end {msg.end}"
        if forwards_verbatim and msg.action in (ACTION_FORWARD, ACTION_FANOUT):
            assert bytes(msg.data) == wire, f"request {wire!r} forwards {bytes(msg.data)!r}"
        if check_message is not None:
            check_message(wire, msg)

    driver = _Driver(make_parser, drive_requests, summarize, "request")
    limits = _Limits(large_message, max_pending, max_examples, checks)
    _run_checks(driver, messages, check_one, limits)


def check_reply_parser(
    make_parser: Callable[[], ReplyParser],
    replies: st.SearchStrategy[bytes],
    *,
    large_message: Callable[[int], bytes] | None = None,
    max_pending: int | None = 2 << 20,
    max_examples: int = 100,
    checks: Sequence[str] = ALL_CHECKS,
) -> None:
    """Run the conformance checks (module docstring) on a reply parser.

    ``make_parser`` builds one as for a new server connection and ``replies``
    draws one valid reply's wire bytes; the keyword arguments mean what they
    mean for :func:`check_request_parser`, with replies for requests.

    Raises:
        AssertionError: the parser breaks the contract.
    """

    def check_one(wire: bytes, reply: bytes) -> None:
        assert reply == wire, f"reply {wire!r} parsed as {reply!r}"

    driver = _Driver(make_parser, drive_replies, bytes, "reply")
    _run_checks(
        driver, replies, check_one, _Limits(large_message, max_pending, max_examples, checks)
    )


class _Conformance:
    """One pytest test per check; subclasses say how to run a check."""

    large_message: ClassVar[Callable[[int], bytes] | None] = None
    max_pending: ClassVar[int | None] = 2 << 20
    max_examples: ClassVar[int] = 100

    def _check(self, name: str) -> None:
        cls = type(self)
        cls._runner(
            cls.make_parser,  # type: ignore[attr-defined]
            cls._wire(),
            large_message=cls.large_message,
            max_pending=cls.max_pending,
            max_examples=cls.max_examples,
            checks=(name,),
            **cls._options(),
        )

    # What a subclass fills in: which checker, which wire strategy, which extras.
    _runner: ClassVar[Callable[..., None]]

    @classmethod
    def _wire(cls) -> st.SearchStrategy[bytes]:
        raise NotImplementedError

    @classmethod
    def _options(cls) -> dict[str, Any]:
        return {}

    def test_round_trip(self) -> None:
        self._check("round_trip")

    def test_any_split(self) -> None:
        self._check("any_split")

    def test_pipelining(self) -> None:
        self._check("pipelining")

    def test_garbage(self) -> None:
        self._check("garbage")

    def test_bounded(self) -> None:
        if self.max_pending is None:
            raise unittest.SkipTest("max_pending is None: nothing to bound")
        self._check("bounded")

    def test_need(self) -> None:
        if type(self).large_message is None:
            # Reported, not passed: set large_message, or `test_need = None`
            # in the subclass when no message length is ever known early.
            raise unittest.SkipTest("no large_message: `need` is not checked")
        self._check("need")


class RequestParserConformance(_Conformance):
    """Subclass as ``TestXxx`` and set the attributes; one pytest test per check.

    Required: ``make_parser`` (a class or function returning a fresh request
    parser) and ``messages`` (strategy of valid wire requests).  Optional:
    ``large_message``, ``forwards_verbatim``, ``max_pending``, ``max_examples``
    as in :func:`check_request_parser`.
    """

    make_parser: ClassVar[Callable[[], RequestParser]]
    messages: ClassVar[st.SearchStrategy[bytes]]
    forwards_verbatim: ClassVar[bool] = True
    _runner = staticmethod(check_request_parser)

    @classmethod
    def _wire(cls) -> st.SearchStrategy[bytes]:
        return cls.messages

    @classmethod
    def _options(cls) -> dict[str, Any]:
        return {"forwards_verbatim": cls.forwards_verbatim}


class ReplyParserConformance(_Conformance):
    """Subclass as ``TestXxx``: set ``make_parser`` and ``replies`` (and
    optionally ``large_message``, ``max_pending``, ``max_examples``)."""

    make_parser: ClassVar[Callable[[], ReplyParser]]
    replies: ClassVar[st.SearchStrategy[bytes]]
    _runner = staticmethod(check_reply_parser)

    @classmethod
    def _wire(cls) -> st.SearchStrategy[bytes]:
        return cls.replies
