"""RESP framing helpers shared by the Redis parsers: numbers and encoding.

Redis parses request lengths with ``string2ll``, which is stricter than
Python's ``int()``: no ``+``, no surrounding spaces, no ``_``, no leading
zeros, and a value that fits in a signed 64-bit integer.  Matching it exactly
is what makes the proxy cut a stream where the backend would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.protocols.redis import _accel

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["encode_command", "encode_error", "string2ll"]

_LLONG_MAX = 2**63 - 1
_LLONG_MIN = -(2**63)


def string2ll(field: bytes) -> int | None:
    """Return the integer Redis's ``string2ll`` reads from ``field``, or None."""
    if field.isdigit():
        if field[0] == 48 and len(field) > 1:  # leading zero
            return None
        value = int(field)
        return value if value <= _LLONG_MAX else None
    if len(field) > 1 and field[0] == 45 and field[1:].isdigit() and field[1] != 48:
        value = -int(field[1:])
        return value if value >= _LLONG_MIN else None
    return None


def _encode_command_pure(args: Iterable[bytes]) -> bytes:
    """Encode ``args`` as one RESP multibulk request.  The reference for
    ``_speedups.encode_command``, which :data:`encode_command` is when built."""
    args = list(args)
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n" % len(arg))
        parts.append(arg)
        parts.append(b"\r\n")
    return b"".join(parts)


encode_command: Callable[[Iterable[bytes]], bytes] = _accel.encode_command or _encode_command_pure
"""Encode ``args`` (bytes-like) as one RESP multibulk request."""


def encode_error(message: bytes | str) -> bytes:
    """Encode ``message`` (with its code, e.g. ``ERR ...``) as a RESP error line.

    Newlines are folded to spaces as Redis does, so an error can never
    split into two replies.
    """
    if isinstance(message, str):
        message = message.encode("utf-8", "surrogateescape")
    return b"-" + message.replace(b"\r", b" ").replace(b"\n", b" ") + b"\r\n"
