"""memcached's meta commands (``mg ms md ma mn me``): what memcached 1.6 makes of a line.

Theory of operation
-------------------
A meta request is ``<cm> <key> [<datalen>] <flag>*``: a two-letter command,
one key, a data length for ``ms`` only, then flags, each one character and
an optional argument glued to it (``T30``, ``Oopaque``).  :func:`judge`
reads the tokens of one line exactly as memcached 1.6.18's ``proto_text.c``
does, in its order of checks, and says what the proxy does with it:

* **answer it here** with the error memcached would send (the proxy never
  forwards a request memcached would refuse), and for ``ms`` whether the
  data block is then discarded (memcached swallows it once it has read the
  length) or read as commands (refused before the length was read);
* or **forward it**, routed by its key (base64-decoded when the ``b`` flag
  is set, as memcached stores it), every flag passed through.

``mn`` is answered here (``MN``): the proxy returns replies in request
order, so once every earlier reply is written the client has seen what
``MN`` promises, whichever servers held the keys.

Quiet mode (``q``) is the one rewrite.  memcached sends nothing for the
"nominal" outcome of a quiet command (``mg``: a miss, ``EN``; ``ms`` and
``md``: success, ``HD``; ``ma``: success, ``HD`` or ``VA``) and always sends
the others and every error.  Forwarded as it came, a quiet request has zero
or one reply, which no proxy can pair with its request once a pipeline
spans servers.  So the ``q`` token is removed before forwarding (every
request then has exactly one reply, the rule the server connections count
on) and the request's ``reply_filter`` turns the reply memcached would have
suppressed into nothing.  ``O`` (opaque) and ``k`` are kept, so the replies
that do go back carry what the client asked for.  One case cannot be told
from the reply: ``ma`` with ``q`` and ``N`` that creates the item; memcached
sends that reply, the proxy drops it as a success (docs/memcache.md).

Numbers in flags are read by memcached's own rules (``_syntax``) and passed
through unchanged: only the ``ms`` length decides framing, and it must be
plain decimal digits to be forwarded (as the classic storage commands).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable

from corenet.msg import Msg
from corenet.protocols.memcache._syntax import (
    BAD_FORMAT,
    ERROR,
    KEY_MAX_LENGTH,
    VLEN_MAX,
    mc_strtol,
    mc_strtoul,
    mc_strtoull,
)

__all__ = ["META_COMMANDS", "MN", "ReplyFilter", "Verdict", "decode_key", "fast_meta", "judge"]

META_COMMANDS = (b"mg", b"ms", b"md", b"ma", b"mn", b"me")
MN = b"MN\r\n"

_DUPLICATE = b"CLIENT_ERROR duplicate flag\r\n"
_INVALID_FLAG = b"CLIENT_ERROR invalid flag\r\n"
_BAD_KEY = b"CLIENT_ERROR error decoding key\r\n"
_BAD_TOKEN = b"CLIENT_ERROR bad token in command line format\r\n"
_M_LENGTH = b"CLIENT_ERROR incorrect length for M token\r\n"
_BAD_INITIAL = b"CLIENT_ERROR invalid numeric initial value\r\n"
_BAD_DELTA = b"CLIENT_ERROR invalid numeric delta value\r\n"
_OPAQUE_LONG = b"CLIENT_ERROR opaque token too long\r\n"
# memcached words the same limit two ways: mg says "are", the others do not.
_GET_TOO_LONG = b"CLIENT_ERROR options flags are too long\r\n"
_TOO_LONG = b"CLIENT_ERROR options flags too long\r\n"
# md and ma answer any flag error with this one message.
_FLAG_ERROR = b"CLIENT_ERROR invalid or duplicate flag\r\n"
_SET_MODE = b"CLIENT_ERROR invalid mode for ms M token\r\n"
_ARITH_MODE = b"CLIENT_ERROR invalid mode for ma M token\r\n"

_MAX_TOKENS = 19  # memcached: ntokens (tokens + its terminal one) over 20 is refused
_OPAQUE_MAX = 32  # MFLAG_MAX_OPAQUE_LENGTH
_SET_MODES = b"EAPRS"  # add, append, prepend, replace, set
_ARITH_MODES = b"I+D-"

# Flags memcached accepts without looking at their argument.
_PLAIN_FLAGS = frozenset(b"lOPLkstcfvhuqI")


# Flags whose argument memcached reads as a number: (accepted?, error or None).
# None: F's failure leaves the error memcached had already chosen.
def _strtol_ok(token: bytes) -> bool:
    return mc_strtol(token) is not None


_NUMERIC_FLAGS: dict[int, tuple[Callable[[bytes], bool], bytes | None]] = {
    ord("N"): (_strtol_ok, _BAD_TOKEN),  # TTLs: N vivify, T update, R recache
    ord("T"): (_strtol_ok, _BAD_TOKEN),
    ord("R"): (_strtol_ok, _BAD_TOKEN),
    ord("F"): (mc_strtoul, None),
    ord("C"): (mc_strtoull, _BAD_TOKEN),
    ord("J"): (mc_strtoull, _BAD_INITIAL),
    ord("D"): (mc_strtoull, _BAD_DELTA),
}
_B, _M, _O, _Q = ord("b"), ord("M"), ord("O"), ord("q")

# (error reply or None, routing key, data length or -1, index of the q token
# or 0, reply filter for quiet mode or None).
ReplyFilter = Callable[[bytes], bytes]
Verdict = tuple[bytes | None, bytes, int, int, ReplyFilter | None]

# memcached's base64 decoder skips every byte outside this alphabet.
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_SKIPPED = bytes(sorted(set(range(256)) - set(_B64_ALPHABET)))


def decode_key(token: bytes) -> bytes | None:
    """``token`` base64-decoded exactly as memcached 1.6's ``base64_decode``; None if it fails.

    memcached skips bytes outside the alphabet, needs a multiple of four
    that remain, reads ``=`` as a zero digit, and stops after the first
    block holding padding: one or two ``=`` drop as many bytes, more fail.
    """
    digits = token.translate(None, _B64_SKIPPED)
    n = len(digits)
    if n == 0 or n % 4:
        return None
    pad_at = digits.find(b"=")
    if pad_at < 0:
        return binascii.a2b_base64(digits)
    block = pad_at - pad_at % 4
    last = digits[block : block + 4]
    pad = last.count(b"=")
    if pad > 2:
        return None
    head = binascii.a2b_base64(digits[:block]) if block else b""
    return head + binascii.a2b_base64(last.replace(b"=", b"A"))[: 3 - pad]


def _flags(tokens: list[bytes], start: int, key: bytes) -> tuple[bytes | None, bytes, int]:
    """memcached's ``_meta_flag_preparse`` over ``tokens[start:]``.

    Returns (the error memcached answers, or None; the key, decoded if ``b``
    is set; the index of the ``q`` token, or 0).  A duplicate or unknown
    flag stops at once; a bad argument is noted and the scan goes on, so the
    last bad argument names the error.
    """
    seen = bytearray(128)
    error: bytes | None = None
    failed = False
    quiet = 0
    for i in range(start, len(tokens)):
        token = tokens[i]
        flag = token[0]
        if flag >= 127 or seen[flag]:
            return _DUPLICATE, key, 0
        seen[flag] = 1
        if flag in _PLAIN_FLAGS:
            if flag == _Q:
                quiet = i
            continue
        numeric = _NUMERIC_FLAGS.get(flag)
        if numeric is not None:
            accepted, message = numeric
            if not accepted(token[1:]):
                failed = True
                if message is not None:
                    error = message
        elif flag == _B:
            decoded = decode_key(key)
            if decoded is None:
                failed = True
                error = _BAD_KEY
            else:
                key = decoded
        elif flag == _M:
            if len(token) != 2:
                failed = True
                error = _M_LENGTH
        else:
            return _INVALID_FLAG, key, 0
    if failed:
        return error or BAD_FORMAT, key, 0
    return None, key, quiet


def _mode_error(tokens: list[bytes], start: int, modes: bytes, refused: bytes) -> bytes | None:
    for i in range(start, len(tokens)):
        token = tokens[i]
        if token[0] == _M:
            return None if token[1] in modes else refused
    return None


def _opaque_error(tokens: list[bytes]) -> bytes | None:
    for i in range(2, len(tokens)):
        token = tokens[i]
        if token[0] == _O and len(token) > _OPAQUE_MAX:
            return _OPAQUE_LONG
    return None


def judge(tokens: list[bytes]) -> Verdict:
    """What memcached 1.6.18 makes of one meta command line (see the module docstring).

    ``tokens`` is the line split on spaces, ``tokens[0]`` one of
    :data:`META_COMMANDS`.  For ``ms`` the data length is returned whenever
    memcached has read it: then an error reply means the data block is
    discarded, as memcached swallows it; -1 means it is read as commands.
    """
    command = tokens[0][1]
    n = len(tokens)
    if command == 110:  # 'n': mn takes nothing and always answers
        return MN, b"", -1, 0, None
    if n < 2:
        return (ERROR if command != 101 else BAD_FORMAT), b"", -1, 0, None
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        return BAD_FORMAT, b"", -1, 0, None
    if command == 101:  # 'e': me <key> [b], any other token ignored
        if n > 2 and tokens[2] == b"b":
            decoded = decode_key(key)
            if decoded is None:
                return BAD_FORMAT, b"", -1, 0, None
            key = decoded
        return None, key, -1, 0, None
    vlen = -1
    start = 2
    if command == 115:  # 's'
        if n == 2:
            return BAD_FORMAT, b"", -1, 0, None
        if n > _MAX_TOKENS:
            return _TOO_LONG, b"", -1, 0, None
        length = mc_strtol(tokens[2])
        if length is None or length < 0 or length > VLEN_MAX:
            return BAD_FORMAT, b"", -1, 0, None
        vlen = length
        start = 3
    elif n > _MAX_TOKENS:
        return (_GET_TOO_LONG if command == 103 else _TOO_LONG), b"", -1, 0, None
    error, key, quiet = _flags(tokens, start, key)
    if error is not None:
        if command == 100 or command == 97:  # md, ma
            error = _FLAG_ERROR
        return error, b"", vlen, 0, None
    if command == 115:
        error = _mode_error(tokens, start, _SET_MODES, _SET_MODE)
    elif command == 97:
        error = _mode_error(tokens, start, _ARITH_MODES, _ARITH_MODE)
    if error is None:
        error = _opaque_error(tokens)
    if error is not None:
        return error, b"", vlen, 0, None
    return None, key, vlen, quiet, _QUIET_FILTERS[command] if quiet else None


def _quiet_get(reply: bytes) -> bytes:
    return b"" if reply.startswith((b"EN\r\n", b"EN ")) else reply


def _quiet_change(reply: bytes) -> bytes:
    return b"" if reply.startswith((b"HD\r\n", b"HD ")) else reply


def _quiet_arithmetic(reply: bytes) -> bytes:
    return b"" if reply.startswith((b"HD\r\n", b"HD ", b"VA ")) else reply


_QUIET_FILTERS: dict[int, ReplyFilter] = {
    103: _quiet_get,  # mg
    115: _quiet_change,  # ms
    100: _quiet_change,  # md
    97: _quiet_arithmetic,  # ma
}


# The meta requests a pipelined multi-get is made of (mg, and md/ma alike),
# in their canonical form, with flags whose arguments are short enough that
# memcached's checks cannot fail: flags without an argument, an opaque of at
# most 32 bytes, TTLs and 64-bit numbers of few enough digits.  ``b`` and
# ``M`` are left to the general path.
_FAST_META = re.compile(
    rb"m[gda] ([^ \x00\r\n]{1,250})"
    rb"((?: [kvfstchluqIPL]| O[^ \x00\r\n]{0,31}| [NTR]-?\d{1,9}| F\d{1,9}| [CDJ]\d{1,19})*)\r\n"
)
_FAST_FLAGS_MAX = _MAX_TOKENS - 2


# What the fast path made of each flags string seen lately: the flags to
# forward (q removed) or _NOT_FAST.  A client sends the same few flag sets
# over and over (Dalli: " v f k q"), so checking them once instead of per
# request is most of the fast path's saving; a pure function's memo, bounded.
_NOT_FAST = b"!"
_FLAGS_SEEN: dict[bytes, bytes] = {}
_FLAGS_SEEN_MAX = 1024


def _forwarded_flags(flags: bytes) -> bytes:
    tokens = flags.split(b" ")
    count = len(tokens) - 1  # flags starts with a space
    if count > _FAST_FLAGS_MAX or len({t[:1] for t in tokens}) != count + 1:
        return _NOT_FAST  # too many flags, or one twice: the general path answers
    if b"q" in tokens:  # the pattern admits q alone, never a longer token
        tokens.remove(b"q")
        return b" ".join(tokens)
    return flags


def fast_meta(buf: bytes, pos: int) -> Msg | None:
    """The request at ``buf[pos:]`` when it is a canonical, complete ``mg``,
    ``md`` or ``ma`` line that :func:`judge` would accept; None otherwise,
    leaving the general path to decide (it decides the same on these)."""
    m = _FAST_META.match(buf, pos)
    if m is None:
        return None
    flags = m.group(2)
    forwarded = _FLAGS_SEEN.get(flags)
    if forwarded is None:
        if len(_FLAGS_SEEN) >= _FLAGS_SEEN_MAX:
            _FLAGS_SEEN.clear()
        forwarded = _FLAGS_SEEN[flags] = _forwarded_flags(flags)
    if forwarded is _NOT_FAST:
        return None
    end = m.end()
    if len(forwarded) == len(flags):  # no q: the line goes out as it came
        return Msg(buf[pos:end], end, m.group(1))
    msg = Msg(buf[pos : m.start(2)] + forwarded + b"\r\n", end, m.group(1))
    msg.reply_filter = _QUIET_FILTERS[buf[pos + 1]]
    return msg
