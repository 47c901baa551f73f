"""``redis_commands``: a pool's own additions to the command table.

A newer redis-server (or a module: RedisJSON, RedisBloom...) has commands
the built-in table (:mod:`._commands`) does not know, which the proxy
answers ``-ERR unknown command``.  A pool may route them without a corenet
release::

    redis_commands:
      json.get: keyed                       # the key is argument 1
      bf.madd: {first_key: 1}               # the same, spelled out
      delifeq: {first_key: 1, arity: 3}
      lcsx: {first_key: 1, last_key: 2}     # two keys, co-located
      mylock.release: {first_key: 2, last_key: -1, step: 1}
      module.stats: every                   # every live server, the same answer
      module.version: any                   # keyless: one server
      keys: refused                         # a known command, overridden

An entry is a route name or a mapping.  Route names:

``keyed``
    routed by its key, argument 1 (as ``GET``);
``colocated``
    every argument from 1 on is a key, and they must share a server, else
    ``-CROSSSLOT`` (as ``SINTER``);
``any``
    keyless: sent to one live server (as ``TIME``);
``every``
    sent to every live server; the answer is theirs when they all answer
    the same, the first error if one fails, else ``-ERR Protocol error``
    (a command the table already sends to every server keeps its merge);
``refused``
    answered ``-ERR command 'x' is not supported by the proxy``.

A mapping gives key positions the way Redis's ``COMMAND`` does:
``first_key`` (at least 1), ``last_key`` (default ``first_key``; negative
counts from the end, -1 being the last argument) and ``step`` (default 1);
one key routes as ``keyed``, several as ``colocated``.  ``route`` may be
given too (``keyed``, ``colocated``; or ``any``, ``every``, ``refused``
without key positions), and ``arity`` in Redis's convention (``n`` exactly
n arguments with the name, ``-n`` at least n); by default the built-in
table's, else the generated ``COMMAND INFO``'s, else just enough for the
first key.

A command the table knows keeps everything it does unless the pool names
it.  The commands whose state the proxy keeps per client (``AUTH``,
``SELECT``, ``MULTI``, ``SUBSCRIBE``...: routes ``local``, ``pin`` and
``pubsub``) cannot be rerouted.  :func:`parse_commands` checks an entry at
load time (``-t``) and says which entry is wrong.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from corenet.protocols.redis._command_info import COMMAND_INFO
from corenet.protocols.redis._commands import COMMANDS, Command, Route
from corenet.protocols.redis._keyspecs import KeySpec

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["NAMED_ROUTES", "Overrides", "commands_with", "overrides_of", "parse_commands"]

Overrides = tuple[tuple[bytes, Command], ...]
"""A pool's entries, sorted by name: hashable, so tables built from them are shared."""

NAMED_ROUTES: dict[str, Route] = {
    "keyed": Route.KEY,
    "colocated": Route.COLOCATED,
    "any": Route.ANY,
    "every": Route.EVERY,
    "refused": Route.REFUSED,
}
"""The routes an entry may name."""

_KEYED_ROUTES = frozenset([Route.KEY, Route.COLOCATED])
_FIXED_ROUTES = frozenset([Route.LOCAL, Route.PIN, Route.PUBSUB])
_FIELDS = frozenset(["route", "first_key", "last_key", "step", "arity"])
# Module commands have dots (json.get, ft.search); '|' names subcommands.
_NAME = re.compile(r"[a-z0-9_.:\-]{1,64}")


def _integer(entry: Mapping[str, object], field: str, default: int) -> int:
    value = entry.get(field, default)
    if type(value) is not int:  # YAML's true is an int to Python: refuse it too
        raise ValueError(f"{field} must be an integer, not {value!r}")
    return value


def _default_arity(name: bytes, first_key: int, last_key: int) -> int:
    known = COMMANDS.get(name) or COMMAND_INFO.get(name)
    if known is not None:
        return known.arity
    return -(max(first_key, last_key) + 1) if first_key else -1


def _entry(name: bytes, entry: object) -> Command:
    if isinstance(entry, str):
        entry = {"route": entry}
    if not isinstance(entry, dict):
        raise ValueError(f"must be a route ({', '.join(NAMED_ROUTES)}) or a mapping")
    unknown = sorted(str(field) for field in entry if field not in _FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} (known: {', '.join(sorted(_FIELDS))})")
    route_name = entry.get("route")
    if route_name is None and "first_key" not in entry:
        raise ValueError("needs a route or first_key")
    # Key positions without a route: one key is keyed, several colocated.
    route = NAMED_ROUTES.get(route_name) if isinstance(route_name, str) else Route.KEY
    if route is None or (route_name is not None and not isinstance(route_name, str)):
        raise ValueError(f"route {route_name!r} is not one of {', '.join(NAMED_ROUTES)}")
    if route not in _KEYED_ROUTES:
        if entry.keys() - {"route", "arity"}:
            raise ValueError(f"route {route_name} takes no key positions")
        first_key = last_key = step = 0
    else:
        first_key = _integer(entry, "first_key", 1)
        last_key = _integer(entry, "last_key", first_key if route is Route.KEY else -1)
        step = _integer(entry, "step", 1)
        if first_key < 1 or step < 1:
            raise ValueError("first_key and step must be at least 1")
        if 0 <= last_key < first_key:
            raise ValueError("last_key must not be before first_key")
        if route_name == "keyed" and last_key != first_key:
            raise ValueError("keyed names one key: use colocated for several")
        route = Route.KEY if last_key == first_key else Route.COLOCATED
    arity = _integer(entry, "arity", _default_arity(name, first_key, last_key))
    if arity == 0:
        raise ValueError("arity must not be 0")
    if abs(arity) <= max(first_key, last_key) or 0 < arity < first_key - last_key:
        # The first key (and a fixed last one) must be in every request the
        # arity lets through, else routing would look past the arguments.
        raise ValueError(f"arity {arity} leaves no room for the keys")
    specs: tuple[KeySpec, ...] = ()
    if route is Route.COLOCATED:
        # Redis's legacy (first, last, step) as a key spec: last relative to first.
        relative = last_key - first_key if last_key >= 0 else last_key
        specs = (KeySpec("index", first_key, b"", "range", relative, step, 0),)
    return Command(name, arity, first_key, route, specs)


def parse_commands(spec: object) -> Overrides:
    """``redis_commands`` (command name -> route or key positions) resolved.

    Raises:
        ValueError: the message names the entry and says what is wrong.
    """
    if not isinstance(spec, dict):
        raise ValueError("redis_commands must be a mapping of command name to route")
    entries: dict[bytes, Command] = {}
    for raw, entry in spec.items():
        name = raw.lower() if isinstance(raw, str) else ""
        if not _NAME.fullmatch(name):
            raise ValueError(f"redis_commands: {raw!r} is not a command name")
        known = COMMANDS.get(name.encode())
        if known is not None and known.route in _FIXED_ROUTES:
            raise ValueError(
                f"redis_commands: command {name}: the proxy keeps its state per client "
                f"({known.route.name.lower()}); it cannot be rerouted"
            )
        try:
            entries[name.encode()] = _entry(name.encode(), entry)
        except ValueError as exc:
            raise ValueError(f"redis_commands: command {name}: {exc}") from None
    return tuple(sorted(entries.items()))


def overrides_of(options: Mapping[str, object]) -> Overrides:
    """The pool's ``redis_commands`` entries (none without the key)."""
    spec = options.get("redis_commands")
    return () if spec is None else parse_commands(spec)


@functools.cache
def commands_with(overrides: Overrides) -> dict[bytes, Command]:
    """The command table with ``overrides`` applied: one per distinct set of
    entries, shared by every client of the pools that give it."""
    return {**COMMANDS, **dict(overrides)} if overrides else COMMANDS
