"""Sans-IO memcache ASCII parsers: client requests and server replies.

Theory of operation
-------------------
A request is one command line, plus a data block for the storage commands
(``set add replace append prepend cas``).  Requests are forwarded as the
bytes the client sent, so the request parser's job is to find where each
request ends, which key routes it, whether the server will answer it
(``noreply``), and which requests the proxy must answer itself.

Every line is judged in two steps:

1. **What would memcached 1.6 do with it?**  The line is cut where memcached
   cuts it (at the first ``\\n``; one ``\\r`` before it is dropped; a NUL byte
   ends the line as ``strlen`` would), split on spaces only, and its numbers
   are read with the exact rules of memcached's ``safe_strtoul``,
   ``safe_strtol`` and ``safe_strtoull`` on 64-bit glibc (leading blanks, a
   sign, trailing blanks, values silently truncated to 32 bits).  Whenever
   memcached would refuse the line (``ERROR``, a ``CLIENT_ERROR``, or a
   silent close for an HTTP request line), the proxy answers exactly that,
   and consumes exactly the bytes memcached would: after a refused storage
   line the data block is *not* skipped, it is read as the next command,
   as memcached does.  ``noreply`` suppresses these errors as in memcached.
2. **Is it safe to forward?**  A line memcached accepts is forwarded only if
   it is canonical: no NUL and no stray ``\r`` in the line (memcached and
   nutcracker read those differently), numbers as plain decimal digits
   (exptime may be negative) that fit their field without truncation, no
   token other than ``noreply`` after the arguments.
   Otherwise the proxy answers ``CLIENT_ERROR bad command line format`` and,
   for a storage command, skips the data block memcached would have read,
   so the client's data is never executed as commands.  An accepted line
   with extra spaces or a bare ``\\n`` ending is forwarded rebuilt, tokens
   joined by single spaces and ended by CRLF; other lines go out untouched.

The meta commands (``mg ms md ma mn me``) go through the same two steps;
:mod:`._meta` holds memcached's rules for them and the quiet-mode design.

Only the text protocol is spoken.  memcached picks the binary protocol when
the first byte of a connection is its magic ``0x80``; the proxy closes such
a connection at once (no reply: a binary client could not read a text one),
as nutcracker does, instead of waiting for a newline that binary requests
seldom hold.  Later in a connection ``0x80`` is an ordinary byte, as it is
to memcached.

Limits (memcached's own): a command line may be at most 16384 bytes with its
``\\n`` (memcached's read buffer; a longer one makes memcached close the
connection) except ``get``/``gets`` lines, which memcached grows a buffer
for and which are capped here at :data:`GET_LINE_MAX`; keys are at most 250
bytes; a value larger than ``max_value`` (memcached's default item size, 1
MiB) is answered ``SERVER_ERROR object too large for cache`` and its data
block is discarded as it arrives, never buffered.

Both parsers are resumable: an incomplete line remembers how far it was
scanned, and an incomplete data block sets ``need`` to the size of the whole
request, so total work is O(n) however the bytes are split.

Replies are context-free: one line is one reply, except ``VALUE`` blocks,
which run until ``END``, and a meta ``VA`` line, which its data block
follows.  Anything a memcached server would never send is a
:class:`~corenet.errors.RemoteProtocolError`, so garbage never reaches a
client.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from corenet import accel
from corenet.errors import RemoteProtocolError
from corenet.msg import ACTION_CLOSE, Msg, fanout_msg
from corenet.protocols.memcache._meta import META_COMMANDS, ReplyFilter, fast_meta, judge
from corenet.protocols.memcache._syntax import (
    BAD_CHUNK,
    BAD_FORMAT,
    ERROR,
    INT32_MAX,
    KEY_MAX_LENGTH,
    TOO_LARGE,
    UINT32_MAX,
    UINT64_MAX,
    VLEN_MAX,
    Line,
    forward,
    local,
    mc_strtol,
    mc_strtoul,
    mc_strtoull,
    plain,
    unanswered,
)

__all__ = [
    "GET_LINE_MAX",
    "KEY_MAX_LENGTH",
    "LINE_MAX",
    "REPLY_LINE_MAX",
    "VALUE_MAX",
    "ReplyParser",
    "RequestParser",
    "value_blocks",
]

LINE_MAX = 16384  # memcached's READ_BUFFER_SIZE: a longer line never fits
GET_LINE_MAX = 1 << 20  # memcached grows its buffer for get lines; we stop here
VALUE_MAX = 1 << 20  # memcached's default item size limit (-I 1m)
REPLY_LINE_MAX = 8192  # no memcached reply line comes near this
_LONG_LINE_SPACES = 100  # memcached: more leading spaces than this on a long line: close

BAD_DELTA = b"CLIENT_ERROR invalid numeric delta argument\r\n"
BAD_EXPTIME = b"CLIENT_ERROR invalid exptime argument\r\n"
DELETE_USAGE = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
VERSION_REQUEST = b"version\r\n"
# nutcracker routes ``version`` by this placeholder key; so do we.
VERSION_KEY = b"placeholder"
NOREPLY = b"noreply"

# Bytes never forwarded inside a line: memcached ends the line at a NUL
# (strlen) and keeps a "\r" inside a key, where nutcracker ends the key.
# Other control bytes are ordinary key bytes to memcached (memcaslap's keys
# start with 0x10), so they pass.
_UNSAFE = re.compile(rb"[\x00\r]")
# Words memcached knows that do not start with one of "gsacidt" (nor are a
# two-letter meta command): they never reach memcached's HTTP check.
_MEMCACHED_OTHER = frozenset(
    [
        b"replace",
        b"prepend",
        b"bget",
        b"flush_all",
        b"version",
        b"quit",
        b"lru_crawler",
        b"watch",
        b"verbosity",
        b"lru",
        b"extstore",
        b"refresh_certs",
    ]
)
_NO_HTTP_CHECK_FIRST = frozenset(b"gsacidt")
_MAX_TOKENS = 23  # memcached tokenizes at most this many words before the rest


# -- numbers, as memcached's safe_strto* read them on 64-bit glibc ---------------


def _plain_delta(token: bytes) -> bool:
    return plain(token, UINT64_MAX)


def _mc_exptime(token: bytes) -> bool:
    return mc_strtol(token) is not None


def _plain_exptime(token: bytes) -> bool:
    """A canonical exptime: optional '-', then digits, within int32."""
    digits = token[1:] if token[:1] == b"-" else token
    return 0 < len(digits) <= 19 and digits.isdigit() and -(2**31) <= int(token) <= INT32_MAX


# -- requests ----------------------------------------------------------------------


def _close(text: str) -> RemoteProtocolError:
    return RemoteProtocolError(text, reply=b"", close=True)


# An incomplete data block: line, key, data length, noreply, reply filter.
_Block = tuple[Line, bytes, int, bool, ReplyFilter | None]

# The first byte of every binary-protocol request (PROTOCOL_BINARY_REQ).
_BINARY_MAGIC = 0x80
# Stands in RequestParser._block (compared by identity) for a connection
# whose first byte has not been seen.  memcached picks the protocol from that
# byte alone (later lines starting with 0x80 are unknown text commands,
# answered ERROR); keeping the mark in _block, which the fast path already
# tests, sends the first request down the general path at no cost to the
# others.
_NEGOTIATING: _Block = (Line([], 0, 0, False, False), b"", 0, False, None)


_Handler = Callable[["RequestParser", bytes, Line], "Msg | None"]


class RequestParser:
    """Parses one client's memcache requests; see the module docstring.

    Args:
        max_value: the largest data block forwarded; a larger one is answered
            ``SERVER_ERROR object too large for cache`` and discarded.
        get_line_max: the longest ``get``/``gets`` line accepted (bytes,
            ``\\n`` included); a longer one closes the connection.
    """

    def __init__(self, *, max_value: int = VALUE_MAX, get_line_max: int = GET_LINE_MAX) -> None:
        self.resume_at = 0
        self.need = 0
        self.variant = 0
        self.max_value = max_value
        self.get_line_max = max(get_line_max, LINE_MAX)
        self._scanned = 0  # bytes of the pending line already searched for "\n"
        self._swallow = 0  # data-block bytes still to discard
        # A storage request whose data block is incomplete: its parsed line,
        # key, data length, noreply flag and reply filter; _NEGOTIATING until
        # the first byte of the connection has been looked at.
        self._block: _Block | None = _NEGOTIATING
        compiled = accel.compiled(_EXTENSION)
        self._scan: Callable[[bytes, int, int, int], Any] | None = (
            compiled.request_fast if compiled is not None else None
        )
        self._scan_many: Callable[..., tuple[list[Msg], int]] | None = (
            compiled.request_many if compiled is not None else None
        )
        if compiled is None:
            self.parse_many = None  # type: ignore[assignment]  # the framer calls parse

    def parse_many(self, buf: bytes, pos: int, limit: int) -> tuple[list[Msg], int]:
        """The requests from ``buf[pos]`` on that :meth:`parse` would take
        from the compiled scan, in one call (at most ``limit``), and where
        :meth:`parse` goes on: the framer's batch (see corenet.framing)."""
        if self._swallow or self._block is not None or self._scanned:
            return [], pos
        return self._scan_many(  # type: ignore[misc]
            buf, pos, self.max_value, LINE_MAX, limit, Msg, fanout_msg, unanswered
        )

    def parse(self, buf: bytes, pos: int) -> Msg | None:
        if not (self._swallow or self._block is not None or self._scanned):
            scan = self._scan
            if scan is not None:
                # get/gets and storage in C; what it declines, _fast_request decides.
                found = scan(buf, pos, self.max_value, LINE_MAX)
                if found is not None:
                    kind, end, data, key = found
                    if kind == 0:
                        return Msg(data, end, key)
                    if kind == 1:
                        name = b"gets" if buf[pos + 3] == 115 else b"get"
                        return fanout_msg(data, end, key, name)
                    return forward(data, end, key, kind == 3)
            msg = _fast_request(buf, pos, self.max_value)
            if msg is not None:
                return msg
        n = len(buf)
        if self._swallow:
            take = min(self._swallow, n - pos)
            self._swallow -= take
            pos += take
            if pos >= n:
                self._again(n, 0)
                return None
        block = self._block
        if block is not None:
            if block is not _NEGOTIATING:
                return self._data_block(buf, pos, *block)
            self._block = None
            if buf[pos] == _BINARY_MAGIC:
                # memcached (-B auto, its default) would switch this
                # connection to the binary protocol, which the proxy does
                # not speak; parsed as text it would wait for a newline that
                # binary requests seldom hold.  Close it, as nutcracker does.
                raise _close("binary protocol request (magic byte 0x80)")
        nl = buf.find(b"\n", pos + self._scanned)
        if nl < 0 or nl - pos >= LINE_MAX:
            have = (n if nl < 0 else nl + 1) - pos
            if have >= LINE_MAX:
                self._long_line(buf, pos, have)
            if nl < 0:
                self._scanned = n - pos
                self._again(pos, 0)
                return None
        self._scanned = 0
        stop = nl - 1 if nl - pos > 1 and buf[nl - 1] == 13 else nl
        raw = buf[pos:stop]
        clean = _UNSAFE.search(raw) is None
        if not clean:
            zero = raw.find(b"\0")
            if zero >= 0:
                raw = raw[:zero]  # memcached reads the line with strlen()
        parts = raw.split(b" ")
        tokens = [t for t in parts if t]
        line = Line(tokens, pos, nl + 1, clean, clean and stop < nl and len(tokens) == len(parts))
        if not tokens or len(tokens[0]) < 2:
            return local(buf[pos : nl + 1], nl + 1, ERROR)
        handler = _HANDLERS.get(tokens[0])
        if handler is None:
            return self._unknown(buf, line)
        return handler(self, buf, line)

    def _again(self, pos: int, need: int) -> None:
        self.resume_at = pos
        self.need = need

    def _long_line(self, buf: bytes, pos: int, have: int) -> None:
        """A line of ``have`` (>= LINE_MAX) bytes so far: memcached keeps only get lines."""
        head = buf[pos : pos + _LONG_LINE_SPACES + 6]
        spaces = len(head) - len(head.lstrip(b" "))
        if spaces > _LONG_LINE_SPACES or not head.startswith((b"get ", b"gets "), spaces):
            raise _close(f"command line longer than {LINE_MAX - 1} bytes")
        if have > self.get_line_max:
            raise _close(f"get line longer than {self.get_line_max - 1} bytes")

    # -- commands ----------------------------------------------------------------

    def _unknown(self, buf: bytes, line: Line) -> Msg:
        tokens = line.tokens
        name = tokens[0]
        if (
            name[0] not in _NO_HTTP_CHECK_FIRST
            and not (name[0] == 109 and len(name) == 2)  # 'm': a meta command
            and name not in _MEMCACHED_OTHER
            and tokens[min(len(tokens), _MAX_TOKENS) - 1].startswith(b"HTTP/")
        ):
            # memcached drops the connection on what looks like HTTP.
            raise _close("HTTP request line")
        return local(buf[line.start : line.end], line.end, ERROR)

    def _get(self, buf: bytes, line: Line) -> Msg:
        tokens = line.tokens
        data = buf[line.start : line.end]
        end = line.end
        if len(tokens) < 2:
            return local(data, end, ERROR)
        keys = tokens[1:]
        for key in keys:
            if len(key) > KEY_MAX_LENGTH:
                return local(data, end, BAD_FORMAT)
        if not line.clean:
            return local(data, end, BAD_FORMAT)
        if not line.canonical:
            # Rebuilt, so a long line starts "get " at once: memcached refuses
            # a long line that does not (after more than 100 spaces, say).
            data = line.rebuilt()
        if len(keys) == 1:
            return Msg(data, end, keys[0])
        return fanout_msg(data, end, keys, tokens[0])

    def _storage(self, buf: bytes, line: Line) -> Msg | None:
        tokens = line.tokens
        end = line.end
        ntok = len(tokens)
        base = 6 if tokens[0] == b"cas" else 5
        if ntok != base and ntok != base + 1:
            return local(buf[line.start : end], end, ERROR)
        noreply = tokens[-1] == NOREPLY
        key = tokens[1]
        vlen = mc_strtol(tokens[4])
        if (
            len(key) > KEY_MAX_LENGTH
            or not mc_strtoul(tokens[2])
            or mc_strtol(tokens[3]) is None
            or vlen is None
            or (base == 6 and not mc_strtoull(tokens[5]))
            or vlen < 0
            or vlen > VLEN_MAX
        ):
            # memcached refuses the line and reads the data block as commands.
            return local(buf[line.start : end], end, b"" if noreply else BAD_FORMAT)
        # memcached accepts the line: it reads vlen + 2 bytes of data.
        if vlen > self.max_value:
            self._swallow = vlen + 2
            return local(buf[line.start : end], end, b"" if noreply else TOO_LARGE)
        if not (
            line.clean
            and (ntok == base or noreply)
            and plain(tokens[2], UINT32_MAX)
            and _plain_exptime(tokens[3])
            and plain(tokens[4], VLEN_MAX)
            and (base == 5 or plain(tokens[5], UINT64_MAX))
        ):
            self._swallow = vlen + 2
            return local(buf[line.start : end], end, b"" if noreply else BAD_FORMAT)
        return self._data_block(buf, line.start, line, key, vlen, noreply, None)

    def _data_block(
        self,
        buf: bytes,
        pos: int,
        line: Line,
        key: bytes,
        vlen: int,
        noreply: bool,
        reply_filter: ReplyFilter | None,
    ) -> Msg | None:
        head = line.end - line.start
        total = head + vlen + 2
        end = pos + total
        if end > len(buf):
            self._block = (line, key, vlen, noreply, reply_filter)
            self._again(pos, total)
            return None
        self._block = None
        if buf[end - 2 : end] != b"\r\n":
            # memcached read vlen + 2 bytes and found no CRLF at their end.
            return local(buf[pos:end], end, b"" if noreply else BAD_CHUNK)
        data = buf[pos:end] if line.canonical else line.rebuilt() + buf[pos + head : end]
        msg = forward(data, end, key, noreply)
        msg.reply_filter = reply_filter
        return msg

    def _arithmetic(self, buf: bytes, line: Line) -> Msg:
        return self._key_and_number(buf, line, mc_strtoull, BAD_DELTA, _plain_delta)

    def _touch(self, buf: bytes, line: Line) -> Msg:
        return self._key_and_number(buf, line, _mc_exptime, BAD_EXPTIME, _plain_exptime)

    def _key_and_number(
        self,
        buf: bytes,
        line: Line,
        accepted: Callable[[bytes], bool],
        refused: bytes,
        canonical: Callable[[bytes], bool],
    ) -> Msg:
        """``<cmd> <key> <number> [noreply]`` (incr, decr, touch): memcached
        refuses the number unless ``accepted``, with ``refused``; the proxy
        forwards it only if it is also ``canonical``."""
        tokens = line.tokens
        end = line.end
        data = buf[line.start : end]
        ntok = len(tokens)
        if ntok != 3 and ntok != 4:
            return local(data, end, ERROR)
        noreply = tokens[-1] == NOREPLY
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return local(data, end, b"" if noreply else BAD_FORMAT)
        if not accepted(tokens[2]):
            return local(data, end, b"" if noreply else refused)
        if not (line.clean and (ntok == 3 or noreply) and canonical(tokens[2])):
            return local(data, end, b"" if noreply else BAD_FORMAT)
        return forward(data if line.canonical else line.rebuilt(), end, tokens[1], noreply)

    def _delete(self, buf: bytes, line: Line) -> Msg:
        tokens = line.tokens
        end = line.end
        data = buf[line.start : end]
        ntok = len(tokens)
        if ntok < 2 or ntok > 4:
            return local(data, end, ERROR)
        noreply = False
        if ntok > 2:
            # "delete <key> 0 [noreply]" is memcached's legacy form.
            hold_is_zero = tokens[2] == b"0"
            noreply = tokens[-1] == NOREPLY
            if not (
                (ntok == 3 and (hold_is_zero or noreply))
                or (ntok == 4 and hold_is_zero and noreply)
            ):
                return local(data, end, b"" if noreply else DELETE_USAGE)
        if len(tokens[1]) > KEY_MAX_LENGTH:
            return local(data, end, b"" if noreply else BAD_FORMAT)
        if not line.clean:
            return local(data, end, b"" if noreply else BAD_FORMAT)
        return forward(data if line.canonical else line.rebuilt(), end, tokens[1], noreply)

    def _meta(self, buf: bytes, line: Line) -> Msg | None:
        """A meta command: judged by :func:`._meta.judge`, then forwarded with
        ``q`` removed (its reply filtered instead), ``ms`` with its data block."""
        reply, key, vlen, quiet, reply_filter = judge(line.tokens)
        end = line.end
        if reply is not None:
            if vlen >= 0:  # memcached read the length: it discards the data block
                self._swallow = vlen + 2
            return local(buf[line.start : end], end, reply)
        if vlen > self.max_value:
            self._swallow = vlen + 2
            return local(buf[line.start : end], end, TOO_LARGE)
        if not line.clean or (vlen >= 0 and not plain(line.tokens[2], VLEN_MAX)):
            if vlen >= 0:
                self._swallow = vlen + 2
            return local(buf[line.start : end], end, BAD_FORMAT)
        if quiet:
            del line.tokens[quiet]
            line.canonical = False
        if vlen >= 0:
            return self._data_block(buf, line.start, line, key, vlen, False, reply_filter)
        msg = Msg(buf[line.start : end] if line.canonical else line.rebuilt(), end, key)
        msg.reply_filter = reply_filter
        return msg

    def _version(self, buf: bytes, line: Line) -> Msg:
        # Like nutcracker: ask the server the placeholder key routes to.
        return Msg(VERSION_REQUEST, line.end, VERSION_KEY)

    def _quit(self, buf: bytes, line: Line) -> Msg:
        return Msg(buf[line.start : line.end], line.end, None, ACTION_CLOSE, b"")


# The requests most clients send, in their canonical form: one regular
# expression match decides what the general path would, for these only.
# Key: 1-250 bytes without space, NUL, CR or LF; numbers short enough that
# their limits cannot be exceeded (a longer one goes the general way).
_FAST_GET = re.compile(rb"gets? ([^ \x00\r\n]{1,250})((?: [^ \x00\r\n]{1,250})*)\r\n")
_FAST_STORE = re.compile(
    rb"(?:set|add|replace|append|prepend) ([^ \x00\r\n]{1,250}) \d{1,9} -?\d{1,9} (\d{1,9})"
    rb"( noreply)?\r\n"
)


def _fast_request(buf: bytes, pos: int, max_value: int) -> Msg | None:
    """The request at ``buf[pos:]`` when it is a canonical, complete get/gets
    or storage request (not cas) that the general path would forward as it
    came, or a canonical mg/md/ma (:func:`._meta.fast_meta`); None otherwise,
    leaving the general path to decide.

    Equivalent to the general path on these requests: a canonical line with
    valid numbers and a key within limits, and for storage a data block
    present in full, ended by CRLF, no larger than ``max_value``."""
    m = _FAST_GET.match(buf, pos)
    if m is not None:
        end = m.end()
        if end - pos >= LINE_MAX:  # long get lines have their own rules
            return None
        first, rest = m.groups()
        if not rest:  # one key: no list to make
            return Msg(buf[pos:end], end, first)
        keys = [first, *rest[1:].split(b" ")]
        return fanout_msg(buf[pos:end], end, keys, b"gets" if buf[pos + 3] == 115 else b"get")
    m = _FAST_STORE.match(buf, pos)
    if m is None:
        return fast_meta(buf, pos)
    vlen = int(m.group(2))
    end = m.end() + vlen + 2
    if vlen > max_value or end > len(buf) or buf[end - 2 : end] != b"\r\n":
        return None
    return forward(buf[pos:end], end, m.group(1), m.group(3) is not None)


_HANDLERS: dict[bytes, _Handler] = {
    b"get": RequestParser._get,
    b"gets": RequestParser._get,
    b"set": RequestParser._storage,
    b"add": RequestParser._storage,
    b"replace": RequestParser._storage,
    b"append": RequestParser._storage,
    b"prepend": RequestParser._storage,
    b"cas": RequestParser._storage,
    b"incr": RequestParser._arithmetic,
    b"decr": RequestParser._arithmetic,
    b"touch": RequestParser._touch,
    b"delete": RequestParser._delete,
    b"version": RequestParser._version,
    b"quit": RequestParser._quit,
    **dict.fromkeys(META_COMMANDS, RequestParser._meta),
}


# -- replies -----------------------------------------------------------------------

_REPLY_WORDS = frozenset(
    [b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND", b"DELETED", b"TOUCHED", b"END", b"ERROR"]
)
_REPLY_PREFIXES = (b"CLIENT_ERROR", b"SERVER_ERROR", b"VERSION ", b"ME ")
# Meta return codes, alone or followed by flags (" k<key> O<opaque>...").
_META_CODES = frozenset([b"HD", b"EN", b"NF", b"NS", b"EX", b"MN"])


class ReplyParser:
    """Finds the end of each reply in a memcached server's byte stream."""

    def __init__(self) -> None:
        self.resume_at = 0
        self.need = 0
        self._off = 0  # where the current line starts, relative to the reply
        self._scanned = 0  # how far past it "\n" was already searched for
        compiled = accel.compiled(_EXTENSION)
        self._fast_end: Callable[[bytes, int], int] = (
            compiled.reply_end if compiled is not None else _fast_reply_end
        )
        self._split: Callable[[bytes, int, int], tuple[list[bytes], int]] | None = (
            compiled.split_replies if compiled is not None else None
        )
        if compiled is None:
            self.parse_many = None  # type: ignore[assignment]  # the framer calls parse

    def parse_many(self, buf: bytes, pos: int, limit: int) -> tuple[list[bytes], int]:
        """The complete replies from ``buf[pos]`` on that the compiled fast
        path takes, as bytes, in one call (at most ``limit``), and where
        :meth:`parse` goes on."""
        if self._off or self._scanned:
            return [], pos
        return self._split(buf, pos, limit)  # type: ignore[misc]

    def parse(self, buf: bytes, pos: int) -> int:
        if not (self._off or self._scanned):
            end = self._fast_end(buf, pos)
            if end > 0:
                return end
        n = len(buf)
        p = pos + self._off
        find = buf.find
        while True:
            nl = find(b"\n", p + self._scanned)
            if (n if nl < 0 else nl) - p > REPLY_LINE_MAX:
                # Checked on found lines too, so the verdict never depends
                # on how the bytes were split.
                raise RemoteProtocolError(f"reply line longer than {REPLY_LINE_MAX} bytes")
            if nl < 0:
                self._scanned = n - p
                return self._again(pos, p, 0)
            self._scanned = 0
            if nl == p or buf[nl - 1] != 13:
                raise _bad_reply(buf, p)
            line = buf[p : nl - 1]
            if line.startswith(b"VALUE "):
                size = _value_size(line)
                end = nl + 1 + size + 2
                if end > n:
                    return self._again(pos, p, end - pos)
                if buf[end - 2 : end] != b"\r\n":
                    raise RemoteProtocolError(f"VALUE block not ended by CRLF: {line[:64]!r}")
                p = end
                continue
            if p != pos and line != b"END":
                # After VALUE blocks only more of them or END may follow.
                raise _bad_reply(buf, p)
            if line.startswith(b"VA "):
                # A meta hit: one line and one data block, the whole reply.
                end = nl + 1 + _meta_value_size(line) + 2
                if end > n:
                    return self._again(pos, p, end - pos)
                if buf[end - 2 : end] != b"\r\n":
                    raise RemoteProtocolError(f"VA block not ended by CRLF: {line[:64]!r}")
                self._off = 0
                return end
            if (
                line in _REPLY_WORDS
                or line.startswith(_REPLY_PREFIXES)
                or (line.isdigit() and len(line) <= 20)
                or (line[:2] in _META_CODES and (len(line) == 2 or line[2] == 32))
            ):
                self._off = 0
                return nl + 1
            raise _bad_reply(buf, p)

    def _again(self, pos: int, p: int, need: int) -> int:
        self.resume_at = pos
        self.need = need
        self._off = p - pos
        return -1


_EXTENSION = "corenet.protocols.memcache._speedups"
"""The compiled ``_fast_reply_end`` (``reply_end``), when built and allowed."""

# A VALUE line as memcached writes it (no cas), sizes short enough that no
# limit applies: the common hit, matched at once.
_FAST_VALUE = re.compile(rb"VALUE [^ \r\n]{1,250} \d{1,9} (\d{1,9})\r\n")
_FAST_WORDS = (b"END\r\n", b"STORED\r\n")
# A meta reply line without CR inside, short enough that no limit applies.
_FAST_META = re.compile(rb"(?:HD|EN|NF|NS|EX|MN|VA (\d{1,9}))(?: [^\r\n]{0,4096})?\r\n")


def _fast_reply_end(buf: bytes, pos: int) -> int:
    """End of the reply at ``buf[pos:]`` when it is ``END``, ``STORED``,
    complete canonical ``VALUE`` blocks then ``END``, or a meta reply (a
    return code, flags without CR, a complete ``VA`` block); 0 when the
    general path must decide (it finds the same end whenever this one does).
    The classic replies are tried first: the meta ones cost them nothing."""
    if buf.startswith(_FAST_WORDS, pos):
        return pos + (5 if buf[pos] == 69 else 8)  # 'E'
    p = pos
    match = _FAST_VALUE.match
    while (m := match(buf, p)) is not None:
        end = m.end() + int(m.group(1)) + 2
        if end > len(buf) or buf[end - 2 : end] != b"\r\n":
            return 0
        # END is looked for before another VALUE: a hit costs one match.
        if buf.startswith(b"END\r\n", end):
            return end + 5
        p = end
    if p != pos:
        return 0
    m = _FAST_META.match(buf, pos)
    if m is None:
        return 0
    size = m.group(1)
    if size is None:
        return m.end()
    end = m.end() + int(size) + 2
    if end > len(buf) or buf[end - 2 : end] != b"\r\n":
        return 0
    return end


def _value_size(line: bytes) -> int:
    """The data length of a ``VALUE <key> <flags> <bytes> [<cas>]`` line."""
    parts = line.split(b" ")
    if (
        (len(parts) != 4 and len(parts) != 5)
        or not parts[1]
        or not plain(parts[2], UINT32_MAX)
        or not plain(parts[3], VLEN_MAX)
        or (len(parts) == 5 and not plain(parts[4], UINT64_MAX))
    ):
        raise RemoteProtocolError(f"malformed VALUE line {line[:64]!r}")
    return int(parts[3])


def _meta_value_size(line: bytes) -> int:
    """The data length of a ``VA <bytes> <flags>*`` line."""
    parts = line.split(b" ", 2)
    if not plain(parts[1], VLEN_MAX):
        raise RemoteProtocolError(f"malformed VA line {line[:64]!r}")
    return int(parts[1])


def _bad_reply(buf: bytes, p: int) -> RemoteProtocolError:
    return RemoteProtocolError(f"unexpected reply bytes {buf[p : p + 32]!r}")


def value_blocks(reply: bytes) -> list[tuple[bytes, bytes]]:
    """Split a complete, already validated ``VALUE ... END`` reply into
    ``(key, block)`` pairs, each block a whole ``VALUE`` line plus its data."""
    blocks: list[tuple[bytes, bytes]] = []
    p = 0
    end = len(reply) - 5  # the closing END\r\n
    while p < end:
        nl = reply.index(b"\r\n", p)
        parts = reply[p:nl].split(b" ", 4)
        stop = nl + 2 + int(parts[3]) + 2
        blocks.append((parts[1], reply[p:stop]))
        p = stop
    return blocks
