"""Requests that need a server connection of the client's own (``ACTION_PIN``).

A transaction (``MULTI`` ... ``EXEC``), a watch (``WATCH`` ... ``EXEC`` or
``UNWATCH``) and a blocked read (``BLPOP``, ``XREAD BLOCK`` ...) live in the
state of one server connection, so they cannot share the multiplexed ones.
This module turns such requests into ``ACTION_PIN`` messages and keeps the
client's side of the state Redis keeps per connection (``Session.multi``,
``Session.watching``, ``Session.dirty``); the proxy (corenet.proxy.pinning)
does the pinning.  The rules, as docs/redis.md states them:

* the first request with a key (or ``WATCH``) decides the server; ``MULTI``
  and keyless commands before it are answered ``+OK``/``+QUEUED`` at once and
  sent ahead of it;
* every key of every request while pinned must live on the pinned server,
  else ``-CROSSSLOT`` (Redis Cluster's wording), and the transaction fails
  at ``EXEC`` with Redis's ``-EXECABORT``, as after any refused command;
* the client stays pinned while it is in a transaction or watches keys; a
  blocking command pins it only until it is answered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.msg import ACTION_LOCAL, ACTION_PIN, Msg, PinStep
from corenet.protocols.redis._commands import (
    FANOUT_ROUTES,
    SUBCOMMANDS,
    Route,
    subcommand_refusal,
)
from corenet.protocols.redis._keyspecs import FINDERS, key_positions
from corenet.protocols.redis._resp import encode_command, encode_error, string2ll

if TYPE_CHECKING:
    from corenet.protocols.redis._commands import Command
    from corenet.protocols.redis._local import Session

__all__ = ["CROSSSLOT", "blocking_keys", "pin_request"]

CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"
_OK = b"+OK\r\n"
_QUEUED = b"+QUEUED\r\n"
_DISCARD = encode_command([b"DISCARD"])

# Commands a transaction cannot carry through the proxy: they describe the
# client's session with the proxy, not with the pinned server.
_NOT_IN_MULTI = frozenset([b"auth", b"hello", b"select", b"client"])
_TRANSACTION = frozenset([b"multi", b"exec", b"discard", b"watch", b"unwatch"])


def blocking_keys(cmd: Command, args: list[bytes]) -> tuple[list[bytes], float] | bytes:
    """The keys of a blocking command and how long it may block (seconds, 0:
    for ever), or the error reply for arguments the keys cannot be found in.

    ``XREAD``/``XREADGROUP`` without ``BLOCK`` come here too (their streams
    must share a server as well) and block for no time at all.
    """
    name = cmd.name
    if name in (b"blpop", b"brpop", b"bzpopmin", b"bzpopmax"):
        return args[1:-1], _seconds(args[-1])
    if name == b"brpoplpush":
        return args[1:3], _seconds(args[3])
    if name == b"blmove":
        return args[1:3], _seconds(args[5])
    if name in (b"blmpop", b"bzmpop"):
        numkeys = string2ll(args[2])
        if numkeys is None or numkeys <= 0 or 3 + numkeys > len(args):
            return b"-ERR numkeys should be greater than 0\r\n"
        return args[3 : 3 + numkeys], _seconds(args[1])
    # XREAD [COUNT n] [BLOCK ms] STREAMS key... id...; XREADGROUP GROUP g c ...
    lowered = [a.lower() for a in args]
    if b"streams" not in lowered:
        return b"-ERR syntax error\r\n"
    at = lowered.index(b"streams") + 1
    rest = args[at:]
    if not rest or len(rest) % 2:
        return (
            b"-ERR Unbalanced '%s' list of streams: for each stream key an ID or '$' "
            b"must be specified.\r\n" % name
        )
    wait = 0.0
    if b"block" in lowered[:at]:
        block = lowered.index(b"block")
        ms = string2ll(args[block + 1]) if block + 1 < at else None
        wait = ms / 1000 if ms is not None and ms > 0 else 0.0
    return rest[: len(rest) // 2], wait


def pin_request(session: Session, cmd: Command, args: list[bytes], data: bytes, end: int) -> Msg:
    """The message for ``cmd`` when it is a transaction or blocking command,
    or any command while the client is in ``MULTI``."""
    name = cmd.name
    if session.multi:
        return _in_multi(session, cmd, args, data, end)
    if name == b"multi":
        session.multi = True
        session.dirty = False
        return _pin(data, end, None, PinStep(True, parked_reply=_OK))
    if name in (b"exec", b"discard"):
        return _local(data, end, encode_error(b"ERR %s without MULTI" % name.upper()))
    if name == b"watch":
        session.watching = True
        return _pin(data, end, args[1], PinStep(True, args[1:]))
    if name == b"unwatch":
        if not session.watching:
            return _local(data, end, _OK)
        session.watching = False
        return _pin(data, end, None, PinStep(False))
    found = blocking_keys(cmd, args)
    if isinstance(found, bytes):
        return _local(data, end, found)
    keys, wait = found
    blocking = name[:1] == b"b" or wait > 0 or b"block" in (a.lower() for a in args)
    step = PinStep(session.watching, keys, blocking=blocking, wait=wait)
    return _pin(data, end, keys[0], step)


def _in_multi(session: Session, cmd: Command, args: list[bytes], data: bytes, end: int) -> Msg:
    name = cmd.name
    if name == b"multi":
        return _local(data, end, b"-ERR MULTI calls can not be nested\r\n")
    if name == b"watch":
        return _local(data, end, b"-ERR WATCH inside MULTI is not allowed\r\n")
    if name in (b"exec", b"discard"):
        session.multi = session.watching = False
        step = PinStep(False, abort=(_DISCARD, EXECABORT) if name == b"exec" else None)
        if name == b"exec" and session.dirty:
            # Refused while queuing: the server only needs to leave MULTI.
            msg = _pin(_DISCARD, end, None, step)
            msg.reply_filter = _execabort
            return msg
        return _pin(data, end, None, step)
    keys = None if name in _NOT_IN_MULTI else transaction_keys(cmd, args)
    if keys is None:
        session.dirty = True
        return _local(
            data,
            end,
            encode_error(b"ERR %s inside MULTI is not supported by the proxy" % name.upper()),
        )
    if not keys:
        return _pin(data, end, None, PinStep(True, parked_reply=_QUEUED))
    return _pin(data, end, keys[0], PinStep(True, keys))


def transaction_keys(cmd: Command, args: list[bytes]) -> list[bytes] | None:
    """Every key of a command queued in a transaction ([]: keyless), or None
    for a command a transaction cannot carry (the whole keyspace's)."""
    route = cmd.route
    if route is Route.KEY:
        return [args[cmd.first_key]]
    if route in FANOUT_ROUTES:
        step = 2 if route is Route.MSET else 1
        return args[1::step]
    if route is Route.EVAL:
        numkeys = string2ll(args[2])
        return args[3 : 3 + numkeys] if numkeys is not None and numkeys >= 0 else []
    if route is Route.PIN:
        if cmd.name in _TRANSACTION:
            return []
        found = blocking_keys(cmd, args)
        return [] if isinstance(found, bytes) else found[0]
    if route is Route.COLOCATED or route is Route.SUBCOMMAND:
        specs = cmd.specs
        if route is Route.SUBCOMMAND:
            if subcommand_refusal(cmd, args) is not None:
                return None
            specs = SUBCOMMANDS[cmd.name + b"|" + args[1].lower()][1]
        finder = FINDERS.get(cmd.name)
        positions = finder(args) if finder is not None else key_positions(specs, args)
        return [args[i] for i in positions or ()]
    if route is Route.ANY or route is Route.LOCAL:
        return []
    return None


def _execabort(reply: bytes) -> bytes:
    return EXECABORT


def _pin(data: bytes, end: int, key: bytes | None, step: PinStep) -> Msg:
    msg = Msg(data, end, key, ACTION_PIN)
    msg.info = step
    return msg


def _local(data: bytes, end: int, reply: bytes) -> Msg:
    return Msg(data, end, None, ACTION_LOCAL, reply)


def _seconds(value: bytes) -> float:
    # Redis refuses a bad timeout itself; the proxy then waits no longer than usual.
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return seconds if seconds > 0 else 0.0
