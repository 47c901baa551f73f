"""Where a Redis command's keys are: Redis 7's key specs, interpreted.

Redis 7 describes the key arguments of every command with *key specs*
(``COMMAND INFO``): each spec first finds where its keys begin
(``begin_search``: at a fixed index, or after a keyword found by scanning
from a given argument), then which arguments from there are keys
(``find_keys``: a range, or a count read from an argument).  The proxy's
table of them (:mod:`._command_info`) is generated from a real
redis-server by ``scripts/gen_command_table.py``; :func:`key_positions`
applies one command's specs to one request exactly as Redis's
``getKeysUsingKeySpecs`` does, so the proxy finds the same keys as
``COMMAND GETKEYS`` (a test compares them on random argument vectors).

A spec Redis marks ``unknown`` (``SORT``'s ``STORE`` and ``BY``/``GET``)
cannot be interpreted: such commands have a hand-written finder
(:data:`FINDERS`), which follows the C function Redis itself falls back on.

Pure functions of the argument list; nothing here runs for commands routed
by one key (``GET``, ``SET``): only the commands whose keys must share a
server, on the general parse path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from corenet.protocols.redis._resp import string2ll

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["FINDERS", "CommandInfo", "KeySpec", "key_positions"]

# begin_search and find_keys types, as COMMAND INFO names them.
INDEX, KEYWORD, UNKNOWN = "index", "keyword", "unknown"
RANGE, KEYNUM = "range", "keynum"


@attrs.frozen
class KeySpec:
    """One key spec.  ``begin``: ``index`` (keys begin at argument ``start``)
    or ``keyword`` (after ``keyword``, searched from argument ``start``,
    backwards from the end when negative) or ``unknown``.  ``find``:
    ``range`` (``a, b, c`` = lastkey, keystep, limit) or ``keynum`` (``a, b,
    c`` = keynumidx, firstkey, keystep) or ``unknown``."""

    begin: str
    start: int
    keyword: bytes
    find: str
    a: int
    b: int
    c: int


@attrs.frozen
class CommandInfo:
    """What the generated table keeps of one command's ``COMMAND INFO``."""

    arity: int
    flags: tuple[str, ...]
    specs: tuple[KeySpec, ...]


def _begin(spec: KeySpec, args: Sequence[bytes]) -> int | None:
    """The index of the spec's first key, 0 when its keyword is absent
    (the spec then has no keys), None when it cannot be interpreted."""
    argc = len(args)
    if spec.begin == INDEX:
        return spec.start
    if spec.begin != KEYWORD:
        return None
    start = spec.start if spec.start > 0 else argc + spec.start
    stop = argc - 1 if spec.start > 0 else 0
    step = 1 if start <= stop else -1
    # Redis's loop stops *at* ``stop`` without looking at it: a keyword as
    # the last argument has no key after it.  Bounded by argc either way.
    for i in range(start, stop, step):
        if i >= argc or i < 1:
            break
        if args[i].lower() == spec.keyword:
            return i + 1
    return 0


def key_positions(specs: Sequence[KeySpec], args: Sequence[bytes]) -> list[int] | None:
    """The indexes in ``args`` (the command name at 0) of the keys that
    ``specs`` name, in spec order; None when the request does not fit them
    (a key count that is no integer or points past the end...), where
    Redis's command would answer a syntax or argument error itself.

    Every index returned is below ``len(args)``."""
    argc = len(args)
    positions: list[int] = []
    for spec in specs:
        first = _begin(spec, args)
        if first is None:
            return None
        if first == 0:
            continue
        if spec.find == RANGE:
            lastkey, step, limit = spec.a, spec.b, spec.c
            if lastkey >= 0:
                last = first + lastkey
            elif not limit:
                last = argc + lastkey
            else:
                last = first + ((argc - first) // limit + lastkey)
        elif spec.find == KEYNUM:
            if first + spec.a >= argc:
                return None
            numkeys = string2ll(args[first + spec.a])
            if numkeys is None or numkeys < 0:
                return None
            first += spec.b
            last = first + numkeys - 1
            step = spec.c
        else:
            return None
        if last >= argc or last < first or first >= argc or step <= 0:
            return None
        positions.extend(range(first, last + 1, step))
    return positions


def _sort_keys(args: Sequence[bytes]) -> list[int] | None:
    """``SORT key [BY p] [LIMIT o c] [GET p ...] [STORE dest]``: the key and
    the last ``STORE`` destination, skipping the arguments of ``LIMIT``,
    ``BY`` and ``GET`` as Redis's ``sortGetKeys`` does.  (The keys that
    ``BY`` and ``GET`` patterns name are read on the server that sorts, as
    with nutcracker.)"""
    if len(args) < 2:
        return None  # no key at all (the parser refuses the arity first)
    skips = {b"limit": 2, b"get": 1, b"by": 1}
    dest = 0
    i = 2
    while i < len(args):  # i only grows: at most len(args) turns
        word = args[i].lower()
        if word in skips:
            i += skips[word]
        elif word == b"store" and i + 1 < len(args):
            dest = i + 1
        i += 1
    return [1, dest] if dest else [1]


FINDERS: dict[bytes, Callable[[Sequence[bytes]], list[int] | None]] = {b"sort": _sort_keys}
"""Commands whose keys :func:`key_positions` cannot find from their specs."""
