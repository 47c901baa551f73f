"""What memcached's text protocol parsers share: numbers, lines and limits.

Requests for the classic commands (:mod:`._parser`) and the meta commands
(:mod:`._meta`) are judged with the same tools: memcached's own number
readers, its line as it tokenizes it, and the two ways a request ends up
(answered here, or forwarded).
"""

from __future__ import annotations

from corenet.msg import ACTION_LOCAL, Msg

__all__ = [
    "BAD_CHUNK",
    "BAD_FORMAT",
    "C_BLANKS",
    "ERROR",
    "INT32_MAX",
    "INT64_MAX",
    "KEY_MAX_LENGTH",
    "TOO_LARGE",
    "UINT32_MAX",
    "UINT64_MAX",
    "VLEN_MAX",
    "Line",
    "c_strto",
    "forward",
    "local",
    "mc_strtol",
    "mc_strtoul",
    "mc_strtoull",
    "plain",
]

KEY_MAX_LENGTH = 250  # memcached's KEY_MAX_LENGTH
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
VLEN_MAX = INT32_MAX - 2  # memcached: vlen > INT_MAX - 2 is a bad command line

ERROR = b"ERROR\r\n"
BAD_FORMAT = b"CLIENT_ERROR bad command line format\r\n"
BAD_CHUNK = b"CLIENT_ERROR bad data chunk\r\n"
TOO_LARGE = b"SERVER_ERROR object too large for cache\r\n"

# glibc isspace() minus the space itself, which never survives tokenizing.
C_BLANKS = b"\t\n\v\f\r"


# -- numbers, as memcached's safe_strto* read them on 64-bit glibc ---------------


def c_strto(token: bytes, limit: int) -> int | None:
    """glibc ``strto[u]l[l]`` base 10 over a whole token, as memcached checks it.

    Returns the value (negative for a leading '-') or None when memcached's
    check fails: no digits, a character after the digits that is not a blank,
    or a magnitude over ``limit`` (ERANGE).
    """
    i = 0
    n = len(token)
    while i < n and token[i] in C_BLANKS:
        i += 1
    negative = False
    if i < n and token[i] in b"+-":
        negative = token[i] == 45
        i += 1
    start = i
    while i < n and 48 <= token[i] <= 57:
        i += 1
    if i == start or (i < n and token[i] not in C_BLANKS):
        return None
    digits = token[start:i].lstrip(b"0")
    if len(digits) > 20:
        return None  # over 2**64: ERANGE (and too long for int() to be cheap)
    value = int(digits) if digits else 0
    if negative:
        # strtol's range is asymmetric: -2**63 is fine, 2**63 is not.
        if value > limit + (1 if limit == INT64_MAX else 0):
            return None
        return -value
    if value > limit:
        return None
    return value


def mc_strtoul(token: bytes) -> bool:
    """memcached ``safe_strtoul`` (flags): accepted?"""
    value = c_strto(token, UINT64_MAX)
    if value is None:
        return False
    unsigned = value % 2**64
    return not (unsigned > INT64_MAX and b"-" in token)


def mc_strtol(token: bytes) -> int | None:
    """memcached ``safe_strtol`` (exptime, length): the int32 it stores, or None."""
    value = c_strto(token, INT64_MAX)
    if value is None:
        return None
    value &= 0xFFFFFFFF
    return value - 2**32 if value > INT32_MAX else value


def mc_strtoull(token: bytes) -> bool:
    """memcached ``safe_strtoull`` (cas unique, delta): accepted?"""
    return mc_strtoul(token)


def plain(token: bytes, limit: int) -> bool:
    """A canonical unsigned decimal: 1-20 ASCII digits, at most ``limit``."""
    return 0 < len(token) <= 20 and token.isdigit() and int(token) <= limit


# -- lines and their outcomes ------------------------------------------------------


def local(data: bytes, end: int, reply: bytes) -> Msg:
    return Msg(data, end, None, ACTION_LOCAL, reply)


class Line:
    """One command line as memcached sees it, and whether it is canonical."""

    __slots__ = ("canonical", "clean", "end", "start", "tokens")

    def __init__(
        self, tokens: list[bytes], start: int, end: int, clean: bool, canonical: bool
    ) -> None:
        self.tokens = tokens
        self.start = start  # offset of the line in the buffer
        self.end = end  # offset after its "\n"
        self.clean = clean  # no NUL and no "\r" inside the line
        self.canonical = canonical  # clean, single spaces, CRLF: forward as is

    def rebuilt(self) -> bytes:
        return b" ".join(self.tokens) + b"\r\n"


def forward(data: bytes, end: int, key: bytes, noreply: bool) -> Msg:
    return unanswered(data, end, key) if noreply else Msg(data, end, key)


def unanswered(data: bytes, end: int, key: bytes) -> Msg:
    """A request with ``noreply``: the server will not answer, so it is done
    (with no reply) as soon as it is forwarded."""
    msg = Msg(data, end, key, reply=b"")
    msg.expect_reply = False
    return msg
