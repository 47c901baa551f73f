"""Sans-IO Redis parsers: client requests (RESP multibulk and inline) and
server replies (every RESP2 and RESP3 type), cutting the byte stream exactly
where Redis 7 would.

Theory of operation
-------------------
Multibulk requests are forwarded as the bytes the client sent (inline ones
are re-encoded as multibulk), so the parser's job is to find where each
request ends, which command it is and where its keys are; it copies out the
command name and the keys (every argument only for the commands the proxy
answers itself).  The common request, complete with plain lengths and
routed by one key or fanned out by its keys, takes one compiled call
(``_scan_keyed``; :func:`_scan_keyed_pure` is its reference); everything
else goes through the general path below.  It follows Redis's own
``processMultibulkBuffer``/``processInlineBuffer`` rules: the count and
length lines are read up to ``\\r`` with ``string2ll`` (strict digits), the
two bytes after a bulk are skipped unchecked, a count line or inline request
longer than 64 KiB without its terminator is an error, as is a bulk longer
than ``proto_max_bulk_len``.  The argument count may be anything up to
``INT_MAX`` (Redis 6 refused more than 1 048 576; Redis 7 does not), and a
declared count allocates nothing: arguments are recorded as they arrive.
Redis finds those terminators with ``strchr``, which stops at a NUL byte, so
a NUL before the ``\\r`` of a count or length line (or the ``\\n`` of an
inline request) means Redis never sees the line end: it waits, and refuses the
request as "too big" once 64 KiB are buffered.  The parser does the same
(:func:`_nul_wait`).  Redis and the proxy therefore split any stream
identically, and no malformed length ever reaches a backend.

Both parsers are resumable: when a message is incomplete they remember how
far they got (relative to the message start) and, inside a bulk, how many
bytes must arrive before it is worth calling again (``need``).  The caller
keeps the unconsumed tail and calls again with more data, so total work is
O(n) even for a 512 MiB value arriving in 16 KiB pieces.

Replies are scanned for boundaries only: nested aggregates need no stack,
just a count of elements still owed (an array of n adds n, a map 2n, an
attribute 2n plus the value it decorates).
"""

from __future__ import annotations

import functools
from array import array
from typing import TYPE_CHECKING, Any

from corenet.errors import RemoteProtocolError
from corenet.msg import ACTION_CLOSE, ACTION_EVERY, ACTION_LOCAL, Msg, fanout_msg
from corenet.protocols.redis import _accel
from corenet.protocols.redis._acl import ALWAYS_ALLOWED
from corenet.protocols.redis._commands import (
    FANOUT_ROUTES,
    SUBCOMMANDS,
    Command,
    Route,
    every_refusal,
    subcommand_refusal,
)
from corenet.protocols.redis._keyspecs import FINDERS, key_positions
from corenet.protocols.redis._local import HANDLERS, Session
from corenet.protocols.redis._pin import pin_request
from corenet.protocols.redis._pool_commands import Overrides, commands_with
from corenet.protocols.redis._pubsub import (
    SUBSCRIBED_ALLOWED,
    not_allowed,
    pubsub_request,
    subscribed_ping,
)
from corenet.protocols.redis._resp import encode_command, encode_error, string2ll

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "INLINE_MAX",
    "MAX_ARGS",
    "PROTO_MAX_BULK_LEN",
    "ReplyParser",
    "RequestParser",
    "split_inline",
]

# Module constants: an Enum attribute costs a class lookup per request.
_KEY, _LOCAL, _EVAL, _ANY, _EVERY = Route.KEY, Route.LOCAL, Route.EVAL, Route.ANY, Route.EVERY
_MGET, _SUM, _MSET, _COLOCATED = Route.MGET, Route.SUM, Route.MSET, Route.COLOCATED
_SUBCOMMAND = Route.SUBCOMMAND
_PIN, _PUBSUB = Route.PIN, Route.PUBSUB

KeyedTable = dict[bytes, tuple[int, int, Command | None]]
"""What :func:`_scan_keyed` looks commands up in (see :func:`_keyed_table`)."""

INLINE_MAX = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
# A reply line (status, error, number, or a length) longer than this is a
# broken server, not a reply: refuse it rather than buffer without bound.
# Generous, because a Lua script can return a long error string.
REPLY_LINE_MAX = 1024 * 1024
PROTO_MAX_BULK_LEN = 512 * 1024 * 1024  # Redis's proto-max-bulk-len default
_INT_MAX = 2**31 - 1
MAX_ARGS = 1024 * 1024
"""Arguments one request may have: Redis 6's limit (Redis 7 takes up to
``INT_MAX``, but each argument costs the proxy memory while it is split and
merged, so corenet keeps the older cap); more is ``invalid multibulk length``."""
# How far ahead of the bytes already buffered an incomplete reply may ask the
# framer to wait (``need``, a lower bound on its size).  Waiting for more than
# one read at a time is what keeps a reply of many small elements from being
# joined again on every read (quadratic copying); the cap bounds the bytes
# scanned per call.  (Requests keep asking for the next line: Redis answers
# a malformed one as soon as its line is complete.)
_NEED_AHEAD = 512 * 1024
# How much of an incomplete request the parser keeps itself (RequestParser._wait).
_HEAD_MIN = 64 * 1024

_OK = b"+OK\r\n"
_NOPERM = b"NOPERM this user has no permissions to run the '%s' command"
# What a client may send before AUTH, as in Redis.
_BEFORE_AUTH = frozenset([b"auth", b"hello", b"quit"])
# The local commands that change the protocol version or authentication.
_SESSION_CHANGERS = frozenset([b"auth", b"hello", b"select"])


def _protocol_error(text: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(
        text.decode("latin-1"), reply=encode_error(b"ERR Protocol error: " + text), close=True
    )


class RequestParser:
    """Parses one client's requests: :class:`corenet.protocol.RequestParser`'s
    contract, with Redis's rules (module docstring)."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        max_bulk_len: int = PROTO_MAX_BULK_LEN,
        denied: frozenset[bytes] = frozenset(),
        commands: Overrides = (),
    ) -> None:
        self.resume_at = 0
        self.need = 0
        self.session = session if session is not None else Session()
        self.max_bulk_len = max_bulk_len
        self.denied = denied
        self.overrides = commands
        """The pool's ``redis_commands`` entries (see _pool_commands)."""
        self.commands = commands_with(commands)
        self.user_denied: frozenset[bytes] = frozenset()
        """What the logged-in ``redis_users`` user may not run (see _acl)."""
        # Which backend connections: database << 1 | RESP3 (RedisProtocol.variants).
        self.variant = self.session.db << 1
        self.switches: list[tuple[Msg, int, int]] = []
        """(request, variant before, after) for each request that switched
        ``variant``; the client connection routes by it, then clears it."""
        # Resume state of an incomplete multibulk request, offsets relative to
        # its first byte: argument count, (start, end) spans so far, scan
        # offset, and the declared length of the bulk being read (-1: none).
        self._argc = -1
        self._spans = array("q")
        self._off = 0
        self._bulk = -1
        # The bytes of a long incomplete request already scanned, kept here
        # rather than in the framer (see _wait), and how many there are.
        self._head: list[bytes] = []
        self._base = 0
        # The commands :func:`_scan_keyed` may answer for, or None while the
        # compiled scan is missing or the client has not authenticated.
        self._keyed: KeyedTable | None = None
        # Compiled or pure, as corenet.accel says when this parser is built.
        scans = _accel.scans()
        self._scan_keyed = scans.scan_keyed
        self._scan_keyed_many = scans.scan_keyed_many
        if self._scan_keyed_many is None:
            self.parse_many = None  # type: ignore[assignment]  # the framer calls parse
        self._scan_multibulk = scans.scan_multibulk or _scan_multibulk_pure
        self._update_keyed()

    def follow_session(self) -> None:
        """The session's database, protocol or authentication changed."""
        session = self.session
        self.variant = session.db << 1 | (session.protocol == 3)
        user = session.users.get(session.user) if session.users and session.user else None
        self.user_denied = user.denied - ALWAYS_ALLOWED if user is not None else frozenset()
        self._update_keyed()  # who may take the fast path

    def set_denied(self, denied: frozenset[bytes]) -> None:
        """Refuse ``denied`` (lower-case command names) from the next request on."""
        self.denied = denied
        self._update_keyed()

    def set_commands(self, commands: Overrides) -> None:
        """Route by the pool's new ``redis_commands`` from the next request on."""
        self.overrides = commands
        self.commands = commands_with(commands)
        self._update_keyed()

    def _update_keyed(self) -> None:
        session = self.session
        if (
            self._scan_keyed is not None
            and session.authenticated
            and not session.multi
            and not (session.protocol == 2 and session.subscribed)
        ):
            self._keyed = _keyed_table(self.denied | self.user_denied, self.overrides)
        else:
            self._keyed = None

    def parse_many(self, buf: bytes, pos: int, limit: int) -> tuple[list[Msg], int]:
        """The requests from ``buf[pos]`` on that :meth:`parse` would take
        from the compiled scan, in one call (at most ``limit``), and where
        :meth:`parse` goes on: the framer's batch (see corenet.framing)."""
        keyed = self._keyed
        if keyed is None or self._argc >= 0:
            return [], pos
        return self._scan_keyed_many(  # type: ignore[misc]
            buf, pos, self.max_bulk_len, keyed, limit, Msg, fanout_msg, MAX_ARGS
        )

    def parse(self, buf: bytes, pos: int) -> Msg | None:
        keyed = self._keyed
        if keyed is not None and self._argc < 0:
            # The common request (GET k, SET k v...) in one compiled call.
            found = self._scan_keyed(buf, pos, self.max_bulk_len, keyed)  # type: ignore[misc]
            if found is not None:
                # As _keyed_msg, inlined: this is once per request.
                data, end, key, fan = found
                if fan is None:
                    return Msg(data, end, key)
                if len(key) < MAX_ARGS:  # else _command refuses it
                    return fanout_msg(data, end, key, fan)
        if self._argc < 0 and buf[pos : pos + 1] == b"*":
            msg = self._complete_multibulk(buf, pos)
            if msg is not None:
                return msg
        if self._argc >= 0 and self._base:
            return self._multibulk(buf, pos)  # resumed past the request's start
        n = len(buf)
        while pos < n:
            if buf[pos] == 42:  # '*'
                if self._argc < 0:
                    nl = buf.find(b"\r", pos)
                    if nl < 0 or nl + 1 >= n:
                        if n - pos > INLINE_MAX:
                            raise _protocol_error(b"too big mbulk count string")
                        self._again(pos, 0)
                        return None
                    argc = string2ll(buf[pos + 1 : nl])
                    if argc is None or argc > MAX_ARGS:
                        # Looked for only now: a valid count costs nothing more.
                        if argc is None and buf.find(b"\0", pos, nl) >= 0:
                            _nul_wait(self, buf, pos, pos, b"too big mbulk count string")
                            return None
                        raise _protocol_error(b"invalid multibulk length")
                    if argc > 10 and not self.session.authenticated:
                        raise _protocol_error(b"unauthenticated multibulk length")
                    if argc <= 0:  # an empty command: Redis skips it
                        pos = nl + 2
                        continue
                    self._argc = argc
                    self._spans = array("q")
                    self._off = nl + 2 - pos
                    self._bulk = -1
                return self._multibulk(buf, pos)
            found = self._inline(buf, pos)
            if isinstance(found, int):  # an empty line: Redis skips it
                pos = found
                continue
            return found
        self._again(pos, 0)
        return None

    def _complete_multibulk(self, buf: bytes, start: int) -> Msg | None:
        """The common case, without resume state: a complete request with
        plain decimal lengths (found by :func:`_scan_multibulk_pure`, or its
        compiled twin).  Anything else (incomplete, odd, malformed) returns
        None and goes through the general path, which tries this at most
        once per request (after :func:`_scan_keyed` said no), so total work
        stays O(n)."""
        if not self.session.authenticated:
            return None
        found = self._scan_multibulk(buf, start, self.max_bulk_len)
        if found is None:
            return None
        end, spans = found
        return self._command(buf, start, end, spans, buf[start:end])

    def _again(self, pos: int, need: int) -> None:
        self.resume_at = pos
        self.need = need
        return None

    def _multibulk(self, buf: bytes, start: int) -> Msg | None:
        n = len(buf)
        argc = self._argc
        spans = self._spans
        off = self._off
        bulk = self._bulk
        # buf's offset of the request's first byte: before buf (negative)
        # once a head is kept, since buf then starts at request offset _base.
        origin = start - self._base
        find = buf.find
        while len(spans) < 2 * argc:
            p = origin + off
            if bulk < 0:
                nl = find(b"\r", p)
                if nl < 0 or nl + 1 >= n:
                    if n - p > INLINE_MAX:
                        raise _protocol_error(b"too big bulk count string")
                    self._bulk = -1
                    self._wait(buf, start, off, 0)
                    return None
                bulk_len = string2ll(buf[p + 1 : nl]) if buf[p] == 36 else None  # '$'
                if bulk_len is None or bulk_len < 0 or bulk_len > self.max_bulk_len:
                    if bulk_len is None and find(b"\0", p, nl) >= 0:
                        self._off = off
                        self._bulk = -1
                        _nul_wait(self, buf, start, p, b"too big bulk count string")
                        return None
                    if buf[p] != 36:
                        raise _protocol_error(b"expected '$', got '" + buf[p : p + 1] + b"'")
                    raise _protocol_error(b"invalid bulk length")
                if bulk_len > 16384 and not self.session.authenticated:
                    raise _protocol_error(b"unauthenticated bulk length")
                bulk = bulk_len
                off = nl + 2 - origin
            data_end = off + bulk
            if origin + data_end + 2 > n:
                self._bulk = bulk
                self._wait(buf, start, off, data_end + 2)
                return None
            spans.append(off)
            spans.append(data_end)
            off = data_end + 2
            bulk = -1
        self._argc = -1
        self._spans = array("q")
        end = origin + off
        if not self._head:
            return self._command(buf, start, end, spans, buf[start:end])
        self._head.append(buf[start:end])
        data = b"".join(self._head)
        self._head = []
        self._base = 0
        if self._keyed is not None:
            # Complete now: the compiled scan cuts its keys out in one call.
            found = self._scan_keyed(data, 0, self.max_bulk_len, self._keyed)  # type: ignore[misc]
            if found is not None and found[1] == len(data):
                msg = _keyed_msg(found, end)
                if msg is not None:
                    return msg
        return self._command(data, 0, end, spans, data)

    def _wait(self, buf: bytes, start: int, off: int, need: int) -> None:
        """Wait for more of the incomplete request that ``buf[start:]`` holds
        from its offset ``_base`` on; ``off`` is where its scan goes on and
        ``need`` the request's bytes needed to go on (0: unknown).

        A request read over many calls would otherwise be joined again on
        every read from its first byte (quadratic copying, and twice its
        size in memory while joining): past :data:`_HEAD_MIN` bytes, what is
        scanned moves into ``_head``, joined once when the request is
        complete, and the framer keeps only the line or bulk being read.
        """
        self._off = off
        cut = start + off - self._base
        if cut - start >= _HEAD_MIN:
            self._head.append(buf[start:cut])
            self._base = off
            start = cut
        self._again(start, need - self._base if need else 0)

    def _inline(self, buf: bytes, pos: int) -> Msg | int | None:
        """Return the inline request at ``pos``, None if incomplete, or the
        offset after an empty line."""
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > INLINE_MAX:
                raise _protocol_error(b"too big inline request")
            self._again(pos, 0)
            return None
        if buf.find(b"\0", pos, nl) >= 0:
            # Redis looks for the newline with strchr(), which stops at the
            # NUL: for Redis this line never ends (see _nul_wait).
            _nul_wait(self, buf, pos, pos, b"too big inline request")
            return None
        line_end = nl - 1 if nl > pos and buf[nl - 1] == 13 else nl
        args = split_inline(buf[pos:line_end])
        if args is None:
            raise _protocol_error(b"unbalanced quotes in request")
        if not args:
            return nl + 1
        wire = encode_command(args)
        spans: list[int] = []
        off = len(b"*%d\r\n" % len(args))
        for arg in args:
            off += len(b"$%d\r\n" % len(arg))
            spans.append(off)
            spans.append(off + len(arg))
            off += len(arg) + 2
        msg = self._command(wire, 0, len(wire), spans, wire)
        msg.end = nl + 1
        return msg

    def _command(self, buf: bytes, start: int, end: int, spans: Sequence[int], data: bytes) -> Msg:
        name_raw = buf[start + spans[0] : start + spans[1]]
        cmd = self.commands.get(name_raw.lower())
        argc = len(spans) >> 1
        if argc > MAX_ARGS:  # complete in one read, so not refused at its count
            refused = _protocol_error(b"invalid multibulk length")
            return Msg(data, end, None, ACTION_CLOSE, refused.reply)
        if cmd is None:
            return self._refused(data, end, encode_error(_unknown_command(buf, start, spans)))
        arity = cmd.arity
        if argc != arity if arity > 0 else argc < -arity:
            return self._refused(
                data,
                end,
                encode_error(b"ERR wrong number of arguments for '%s' command" % cmd.name),
            )
        route = cmd.route
        if cmd.name in self.denied:
            return self._refused(
                data, end, encode_error(b"ERR command '%s' is not allowed" % cmd.name.upper())
            )
        if cmd.name in self.user_denied:
            return self._refused(
                data,
                end,
                encode_error(_NOPERM % cmd.name),
            )
        if not self.session.authenticated and cmd.name not in _BEFORE_AUTH:
            return self._refused(data, end, b"-NOAUTH Authentication required.\r\n")
        session = self.session
        subscribed = session.subscribed and session.protocol == 2
        if subscribed and cmd.name not in SUBSCRIBED_ALLOWED:
            return self._local(data, end, not_allowed(cmd.name))
        if (route is _PIN or self.session.multi) and cmd.name != b"quit":
            args = _arguments(buf, start, spans)
            was_multi = self.session.multi
            msg = pin_request(self.session, cmd, args, data, end)
            if self.session.multi != was_multi:
                self._update_keyed()  # no fast path inside a transaction
            return msg
        if route is _PUBSUB:
            args = _arguments(buf, start, spans)
            msg = pubsub_request(session, cmd.name, args, data, end)
            self._update_keyed()  # a subscribed RESP2 client takes no fast path
            return msg
        if subscribed and cmd.name == b"ping":
            args = _arguments(buf, start, spans)
            return self._local(data, end, subscribed_ping(args))
        if route is _KEY:
            k = cmd.first_key << 1
            if k >= len(spans):  # a subcommand without its key (XINFO HELP)
                return Msg(data, end, b"")
            return Msg(data, end, buf[start + spans[k] : start + spans[k + 1]])
        if route is _LOCAL:
            return self._answer(cmd, buf, start, end, spans, data)
        if route is _MGET or route is _SUM or route is _MSET:
            keys = [buf[start + spans[i] : start + spans[i + 1]] for i in range(2, len(spans), 2)]
            return fanout_msg(data, end, keys, cmd)
        if route is _EVAL:
            numkeys = string2ll(buf[start + spans[4] : start + spans[5]])
            if numkeys is None or numkeys < 0:
                return self._local(data, end, b"-ERR value is not an integer or out of range\r\n")
            if numkeys > argc - 3:
                return self._local(
                    data, end, b"-ERR Number of keys can't be greater than number of args\r\n"
                )
            if numkeys == 0:
                return self._local(
                    data,
                    end,
                    encode_error(
                        b"ERR %s needs at least one key to be routed by the proxy" % cmd.name
                    ),
                )
            if numkeys == 1:
                return Msg(data, end, buf[start + spans[6] : start + spans[7]])
            keys = [
                buf[start + spans[i] : start + spans[i + 1]] for i in range(6, 6 + 2 * numkeys, 2)
            ]
            return fanout_msg(data, end, keys, cmd)
        if route is _COLOCATED or route is _SUBCOMMAND:
            args = _arguments(buf, start, spans)
            return self._colocated(cmd, args, data, end)
        if route is _ANY:
            return Msg(data, end, b"")
        if route is _EVERY:
            args = _arguments(buf, start, spans)
            refusal = every_refusal(cmd, args)
            if refusal is not None:
                return self._local(data, end, refusal)
            msg = Msg(data, end, None, ACTION_EVERY)
            msg.info = (cmd, args)
            return msg
        return self._local(
            data, end, encode_error(b"ERR command '%s' is not supported by the proxy" % cmd.name)
        )

    def _colocated(self, cmd: Command, args: list[bytes], data: bytes, end: int) -> Msg:
        """A command whose keys must share a server (or a subcommand about a
        key): forwarded by its one key, or marked for ``fragment`` to check
        that its keys co-locate."""
        if cmd.name == b"copy" and any(a.lower() == b"db" for a in args[3:]):
            # Another database of the same server: not what the pool's
            # redis_db names, and not where the keys' shard keeps them.
            return self._local(data, end, b"-ERR COPY with DB is not supported by the proxy\r\n")
        specs = cmd.specs
        if cmd.route is _SUBCOMMAND:
            refusal = subcommand_refusal(cmd, args)
            if refusal is not None:
                return self._local(data, end, refusal)
            specs = SUBCOMMANDS[cmd.name + b"|" + args[1].lower()][1]
        finder = FINDERS.get(cmd.name)
        positions = finder(args) if finder is not None else key_positions(specs, args)
        if not positions:
            # Arguments that do not fit the key specs: Redis refuses the
            # request with its own error (a count that is no number...),
            # whichever server gets it.
            return Msg(data, end, b"")
        if len(positions) == 1:
            return Msg(data, end, args[positions[0]])
        return fanout_msg(data, end, [args[i] for i in positions], cmd)

    def _answer(
        self, cmd: Command, buf: bytes, start: int, end: int, spans: Sequence[int], data: bytes
    ) -> Msg:
        if cmd.name == b"quit":
            return Msg(data, end, None, ACTION_CLOSE, _OK)
        args = _arguments(buf, start, spans)
        reply = HANDLERS[cmd.name](self.session, args)
        msg = self._local(data, end, reply)
        if cmd.name in _SESSION_CHANGERS:
            before = self.variant
            self.follow_session()
            if self.variant != before:
                self.switches.append((msg, before, self.variant))
        return msg

    def _refused(self, data: bytes, end: int, reply: bytes) -> Msg:
        if self.session.multi:
            # Refused while queuing: Redis fails the transaction at EXEC.
            self.session.dirty = True
        return self._local(data, end, reply)

    @staticmethod
    def _local(data: bytes, end: int, reply: bytes) -> Msg:
        return Msg(data, end, None, ACTION_LOCAL, reply)


def _arguments(buf: bytes, start: int, spans: Sequence[int]) -> list[bytes]:
    """The arguments of a request whose (start, end) ``spans`` are relative to ``start``."""
    return [buf[start + spans[i] : start + spans[i + 1]] for i in range(0, len(spans), 2)]


def _ahead(known: int, elements: int, buffered: int) -> int:
    """The ``need`` of an incomplete reply: ``known`` bytes from its start,
    then at least 3 bytes (``+\\r\\n``) for each of ``elements`` more, but
    no further than :data:`_NEED_AHEAD` past the ``buffered`` bytes."""
    return min(known + 3 * elements, buffered + _NEED_AHEAD)


def _keyed_msg(found: tuple[bytes, int, Any, Any], end: int) -> Msg | None:
    """The request :func:`_scan_keyed` found, ending at ``end`` in the
    caller's buffer; None when the general path must answer it."""
    data, _, key, fan = found
    if fan is None:
        return Msg(data, end, key)
    if len(key) < MAX_ARGS:  # else _command refuses it
        return fanout_msg(data, end, key, fan)
    return None


def _nul_wait(parser: RequestParser, buf: bytes, start: int, line: int, text: bytes) -> None:
    """Wait, as Redis does, for the line at ``buf[line:]`` of the request at
    ``start`` that holds a NUL before its terminator.

    Redis finds a line's end with ``strchr``, which stops at the NUL and
    reports no end, so Redis neither answers nor refuses the line: it keeps
    reading until more than 64 KiB (``PROTO_INLINE_MAX_SIZE``) are buffered
    from the line's start, then refuses with ``text`` and closes.  ``need``
    is set so that the framer calls again only then, instead of rescanning
    the line on every read.
    """
    if len(buf) - line > INLINE_MAX:
        raise _protocol_error(text)
    parser._again(start, line - start + INLINE_MAX + 1)


def _scan_multibulk_pure(buf: bytes, start: int, max_bulk: int) -> tuple[int, Sequence[int]] | None:
    """Return ``(end, spans)`` of the complete multibulk request at
    ``buf[start:]`` (spans relative to ``start``), or None unless it is
    complete with plain decimal lengths: a count of digits without a leading
    zero, at most ``_INT_MAX``; each element ``$`` and digits (a lone ``0``
    or no leading zero), a size at most ``max_bulk``, the data and two more
    bytes, which are not checked (as in Redis).  ``buf[start]`` is not looked
    at: the caller has seen the ``*``.

    The reference for ``_speedups.scan_multibulk``, which returns the same
    with ``spans`` as a tuple."""
    find = buf.find
    nl = find(b"\r\n", start)
    field = buf[start + 1 : nl]
    if nl < 0 or not field.isdigit() or field[0] == 48:
        return None
    argc = int(field)
    if argc > _INT_MAX:
        return None
    n = len(buf)
    spans: list[int] = []
    p = nl + 2
    for _ in range(argc):
        if buf[p : p + 1] != b"$":
            return None
        nl = find(b"\r\n", p)
        field = buf[p + 1 : nl]
        if nl < 0 or not field.isdigit() or (field[0] == 48 and len(field) > 1):
            return None
        size = int(field)
        p = nl + 2 + size
        if p + 2 > n or size > max_bulk:
            return None
        spans.append(nl + 2 - start)
        spans.append(p - start)
        p += 2
    return p, spans


def _scan_keyed_pure(
    buf: bytes, pos: int, max_bulk: int, table: KeyedTable
) -> tuple[bytes, int, bytes | list[bytes], Command | None] | None:
    """Return ``(data, end, key, None)`` for the request at ``buf[pos:]`` when
    it is a complete plain multibulk request (:func:`_scan_multibulk_pure`)
    whose name, ASCII-lowercased, ``table`` maps to ``(arity, first_key,
    None)``, with an argument count ``arity`` allows (as ``Command.arity``)
    and ``first_key`` among the first 8 arguments; ``(data, end, keys, fan)``
    when the entry is ``(arity, first_key, fan)`` with ``fan`` not None, where
    ``keys`` is every argument from ``first_key`` on; else None.

    Such a request is exactly one that :meth:`RequestParser._command` routes
    by the key at ``first_key`` (or fans out by its keys), which is what
    makes the table (:func:`_keyed_table`) safe.  The reference for
    ``_speedups.scan_keyed``, which the parser uses; without it the general
    path serves these too."""
    if buf[pos : pos + 1] != b"*":
        return None
    found = _scan_multibulk_pure(buf, pos, max_bulk)
    if found is None:
        return None
    end, spans = found
    name = buf[pos + spans[0] : pos + spans[1]]
    if not 0 < len(name) <= 32:
        return None
    entry = table.get(name.lower())
    if entry is None:
        return None
    arity, first_key, fan = entry
    argc = len(spans) >> 1
    if (argc != arity if arity > 0 else argc < -arity) or not 0 <= first_key < min(argc, 8):
        return None
    args = _arguments(buf, pos, spans)
    return buf[pos:end], end, args[first_key] if fan is None else args[first_key:], fan


@functools.cache
def _keyed_table(denied: frozenset[bytes], overrides: Overrides = ()) -> KeyedTable:
    """Lowercase name -> ``(arity, first_key, fan)`` of the commands that
    ``denied`` does not refuse and that are routed by one key (``fan`` None)
    or split by their keys (``fan`` the Command), in the table with the
    pool's ``redis_commands`` applied: the fast path's whole vocabulary.
    One table per distinct ``deny_commands`` and ``redis_commands``, shared
    by the pool's clients."""
    return {
        name: (cmd.arity, cmd.first_key, cmd if cmd.route in FANOUT_ROUTES else None)
        for name, cmd in commands_with(overrides).items()
        if (cmd.route is _KEY or cmd.route in FANOUT_ROUTES)
        and cmd.name not in denied
        and not (cmd.arity < 0 and cmd.first_key >= -cmd.arity)  # the key may be absent
    }


def _unknown_command(buf: bytes, start: int, spans: Sequence[int]) -> bytes:
    # Redis 7: the name cut at 128 bytes, then each argument quoted and
    # followed by a space while the list stays under 128 bytes.
    name = buf[start + spans[0] : start + spans[1]][:128]
    args = b""
    for i in range(2, len(spans), 2):
        if len(args) >= 128:
            break
        arg = buf[start + spans[i] : start + spans[i + 1]]
        args += b"'" + arg[: 128 - len(args)] + b"' "
    return b"ERR unknown command '%s', with args beginning with: %s" % (name, args)


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
# sdssplitargs uses two different notions of a blank, and both matter:
# isspace() in the C locale (Redis never sets LC_CTYPE) skips the blanks
# before a word and decides whether a closing quote is followed by a blank;
# but an unquoted word ends only at ' ', '\n', '\r', '\t' (or the NUL that
# ends the C string), so '\v' and '\f' are kept inside a word:
# "SET k v\f" stores "v\f".
_ISSPACE = b" \t\n\v\f\r"
_WORD_END = b" \t\n\r"
_HEX = b"0123456789abcdefABCDEF"


def split_inline(line: bytes) -> list[bytes] | None:
    """Split an inline command exactly as Redis 7's ``sdssplitargs``; None
    on unbalanced quotes (a quote left open, or a closing quote followed by
    something other than a blank).

    ``sdssplitargs`` reads a C string, so the line ends at its first NUL
    (the request parser never passes one: see ``_nul_wait``)."""
    zero = line.find(b"\0")
    if zero >= 0:
        line = line[:zero]
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _ISSPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_dq = in_sq = False
        while True:
            if in_dq:
                if i >= n:
                    return None
                c = line[i]
                if (
                    c == 92
                    and i + 3 < n
                    and line[i + 1] == 120
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], line[i : i + 1])
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None  # closing quote must be followed by a space
                    i += 1
                    break
                else:
                    current.append(c)
            elif in_sq:
                if i >= n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _WORD_END:
                    break
                if c == 34:
                    in_dq = True
                elif c == 39:
                    in_sq = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))


# RESP type bytes, by how their length is found.
_LINE_TYPES = frozenset(b"+-:_,#(")  # value ends at the first CRLF
_BULK_TYPES = frozenset(b"$=!")  # CRLF-terminated length, then that many bytes
_AGGREGATE_TYPES = {42: 1, 126: 1, 62: 1, 37: 2, 124: 2}  # * ~ > : n elements; % | : 2n


class ReplyParser:
    """Finds the end of each reply in a Redis server's byte stream."""

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0
        self._owed = 0  # elements still owed by an incomplete reply
        self._off = 0
        scans = _accel.scans()
        self._reply_end = scans.reply_end
        self._reply_resume = scans.reply_resume
        self._split_replies = scans.split_replies
        if self._split_replies is None:
            self.parse_many = None  # type: ignore[assignment]  # the framer calls parse

    def parse_many(self, buf: bytes, pos: int, limit: int) -> tuple[list[bytes], int]:
        """The complete replies from ``buf[pos]`` on, as bytes, in one
        compiled call (at most ``limit``), and where :meth:`parse` goes on."""
        if self._owed:
            return [], pos
        return self._split_replies(buf, pos, limit)  # type: ignore[misc]

    def parse(self, buf: bytes, pos: int) -> int:
        reply_end = self._reply_end
        if not self._owed and reply_end is not None:
            # Compiled scan of a whole reply; on an incomplete (-1) or
            # malformed (-2) one the scan below keeps the resume state or
            # raises the exact error, once per reply.
            end = reply_end(buf, pos)
            if end >= 0:
                return end
        n = len(buf)
        # Resume an incomplete reply, or start one owing a single element.
        owed, p = (self._owed, pos + self._off) if self._owed else (1, pos)
        if self._reply_resume is not None:
            # Compiled walk over the complete elements (a 200 000-element
            # array arriving in pieces costs milliseconds, not a second);
            # the loop below takes the element it stopped at: it waits for
            # the rest of it or raises the exact error.
            p, owed = self._reply_resume(buf, p, owed)
        find = buf.find
        while owed:
            nl = find(b"\r\n", p)
            if nl < 0:
                if n - p > REPLY_LINE_MAX:
                    raise _bad_reply(buf, p)
                return self._again(pos, p, owed, _ahead(p - pos, owed, n - pos))
            t = buf[p]
            owed -= 1
            if t in _LINE_TYPES:
                p = nl + 2
            elif t in _BULK_TYPES:
                size = _length(buf[p + 1 : nl])
                if size < 0:
                    p = nl + 2
                else:
                    end = nl + 4 + size
                    if end > n:
                        rest = _ahead(end - pos, owed, n - pos)
                        return self._again(pos, p, owed + 1, max(end - pos, rest))
                    if buf[end - 2 : end] != b"\r\n":
                        raise _bad_reply(buf, p)
                    p = end
            elif t in _AGGREGATE_TYPES:
                count = _length(buf[p + 1 : nl])
                if count > 0:
                    owed += count * _AGGREGATE_TYPES[t]
                if t == 124:  # an attribute decorates the value after it
                    owed += 1
                p = nl + 2
            else:
                raise _bad_reply(buf, p)
            if owed and p >= n:
                return self._again(pos, p, owed, _ahead(p - pos, owed, n - pos))
        self._owed = 0
        return p

    def _again(self, pos: int, p: int, owed: int, need: int) -> int:
        self.resume_at = pos
        self.need = need
        self._owed = owed
        self._off = p - pos
        return -1


def _length(field: bytes) -> int:
    if field.isdigit():
        return int(field)
    if field == b"-1":
        return -1
    raise RemoteProtocolError(f"invalid length {field[:32]!r} in a reply")


def _bad_reply(buf: bytes, p: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"unexpected reply bytes {buf[p : p + 32]!r}")
