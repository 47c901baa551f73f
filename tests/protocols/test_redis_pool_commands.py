"""``redis_commands``: the command table extended per pool (protocols/redis/_pool_commands.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet.msg import ACTION_EVERY, ACTION_FANOUT, ACTION_FORWARD, ACTION_LOCAL, Msg
from corenet.protocol import PoolOptions
from corenet.protocols.redis._commands import COMMANDS, Route
from corenet.protocols.redis._local import Session
from corenet.protocols.redis._parser import RequestParser, _keyed_table, _scan_keyed_pure
from corenet.protocols.redis._pool_commands import commands_with, parse_commands
from corenet.protocols.redis._protocol import RedisProtocol
from corenet.protocols.redis._resp import encode_command

ENTRIES = {
    "fetch": "keyed",
    "json.get": {"first_key": 1},
    "lcsx": {"first_key": 1, "last_key": 2},
    "mod.stats": "every",
    "mod.version": {"route": "any", "arity": 1},
    "keys": "refused",
}


def _parse(parser: RequestParser, *args: bytes) -> Msg:
    msg = parser.parse(encode_command(list(args)), 0)
    assert msg is not None
    return msg


def test_entries_route_as_their_names_say() -> None:
    parser = RequestParser(Session(), commands=parse_commands(ENTRIES))
    fetch = _parse(parser, b"FETCH", b"k1")
    assert (fetch.action, fetch.key) == (ACTION_FORWARD, b"k1")
    assert _parse(parser, b"json.get", b"doc", b"$").key == b"doc"
    lcsx = _parse(parser, b"LCSX", b"a", b"b")
    assert (lcsx.action, lcsx.keys) == (ACTION_FANOUT, [b"a", b"b"])  # must co-locate
    assert _parse(parser, b"mod.stats").action == ACTION_EVERY
    assert _parse(parser, b"mod.version").key == b""  # one server
    assert _parse(parser, b"mod.version", b"x").reply == (
        b"-ERR wrong number of arguments for 'mod.version' command\r\n"
    )
    assert _parse(parser, b"KEYS", b"*").reply == (
        b"-ERR command 'keys' is not supported by the proxy\r\n"
    )
    # Without the entries: unknown, as before.
    plain = RequestParser(Session())
    assert _parse(plain, b"FETCH", b"k1").reply.startswith(b"-ERR unknown command 'FETCH'")
    assert _parse(plain, b"KEYS", b"*").action == ACTION_EVERY


def test_commands_not_named_keep_their_table_row() -> None:
    overrides = parse_commands(ENTRIES)
    table = commands_with(overrides)
    named = {name for name, _ in overrides}
    assert all(table[name] is cmd for name, cmd in COMMANDS.items() if name not in named)
    assert commands_with(()) is COMMANDS
    # The fast path's table is the plain one's but for the entries.
    plain, extended = _keyed_table(frozenset()), _keyed_table(frozenset(), overrides)
    assert extended.keys() - plain.keys() == {b"fetch", b"json.get"}
    assert all(extended[name] == row for name, row in plain.items())


def test_the_fast_path_takes_a_keyed_entry() -> None:
    table = _keyed_table(frozenset(), parse_commands(ENTRIES))
    wire = encode_command([b"fetch", b"key:1"])
    assert _scan_keyed_pure(wire, 0, 1 << 20, table) == (wire, len(wire), b"key:1", None)
    parser = RequestParser(Session(), commands=parse_commands(ENTRIES))
    if parser._scan_keyed is not None:  # the compiled scan agrees
        assert parser._scan_keyed(wire, 0, 1 << 20, table) == (wire, len(wire), b"key:1", None)


@given(
    first=st.integers(1, 6),
    span=st.integers(0, 5),
    step=st.integers(1, 3),
    from_end=st.booleans(),
    extra=st.integers(0, 8),
)
def test_key_positions_are_redis_first_last_step(
    first: int, span: int, step: int, from_end: bool, extra: int
) -> None:
    # Redis's legacy (first_key, last_key, step): last counted from the end
    # when negative.  The keys the parser finds are exactly those arguments.
    last = -1 - span if from_end else first + span
    (name, command), *_ = parse_commands(
        {"cmdx": {"first_key": first, "last_key": last, "step": step}}
    )
    argc = max(first, last) + 1 + extra if last >= 0 else first + span + 1 + extra
    assert argc >= -command.arity
    args = [b"cmdx", *(b"a%d" % i for i in range(1, argc))]
    end = last if last >= 0 else argc + last
    expected = [args[i] for i in range(first, end + 1, step)]
    msg = _parse(RequestParser(Session(), commands=((name, command),)), *args)
    assert expected  # the arity lets no request through without its keys
    assert ([msg.key] if msg.action == ACTION_FORWARD else msg.keys) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"multi": "keyed"}, "command multi: the proxy keeps its state per client (pin)"),
        ({"subscribe": "any"}, "command subscribe: the proxy keeps its state per client"),
        ({"auth": "refused"}, "command auth: the proxy keeps its state per client (local)"),
        ({"a b": "keyed"}, "'a b' is not a command name"),
        ({"x|y": "keyed"}, "'x|y' is not a command name"),
        ({"x": "sideways"}, "command x: route 'sideways' is not one of keyed, colocated"),
        ({"x": {"first_key": 0}}, "command x: first_key and step must be at least 1"),
        ({"x": {"first_key": True}}, "command x: first_key must be an integer, not True"),
        ({"x": {"first_key": 2, "arity": 2}}, "command x: arity 2 leaves no room for the keys"),
        ({"x": {"first_key": 2, "last_key": -2, "arity": 3}}, "arity 3 leaves no room"),
        ({"x": {"first_key": 3, "last_key": 2}}, "last_key must not be before first_key"),
        ({"x": {"route": "any", "first_key": 1}}, "route any takes no key positions"),
        ({"x": {"route": "keyed", "last_key": 3}}, "keyed names one key: use colocated"),
        ({"x": {"fist_key": 1}}, "command x: unknown field 'fist_key'"),
        ({"x": {"arity": 2}}, "command x: needs a route or first_key"),
        ({"x": {"route": "any", "arity": 0}}, "command x: arity must not be 0"),
        ({"x": 5}, "command x: must be a route (keyed, colocated, any, every, refused)"),
        (["x"], "redis_commands must be a mapping"),
    ],
)
def test_bad_entries_say_which_and_why(spec: object, message: str) -> None:
    with pytest.raises(ValueError, match="redis_commands") as info:
        parse_commands(spec)
    assert message in str(info.value)


def _options(**keys: object) -> PoolOptions:
    return PoolOptions({"redis_auth": None, "redis_db": 0, "deny_commands": (), **keys})


USERS = {"reader": "on >pw +@read", "granted": "on >pw +@read +fetch", "admin": "on >pw +@all"}


def test_acl_users_get_an_added_command_only_when_granted() -> None:
    options = _options(redis_commands={"fetch": "keyed"}, redis_users=USERS)
    protocol = RedisProtocol()
    for user, allowed in (("reader", False), ("granted", True), ("admin", True)):
        parser = protocol.new_request_parser(options)
        assert _parse(parser, b"AUTH", user.encode(), b"pw").reply == b"+OK\r\n"
        reply = _parse(parser, b"FETCH", b"k").reply
        assert (reply is None) is allowed, user
        if not allowed:
            assert reply == b"-NOPERM this user has no permissions to run the 'fetch' command\r\n"
    RedisProtocol.check_pool(options)
    with pytest.raises(ValueError, match="unknown command 'fetch'"):
        RedisProtocol.check_pool(_options(redis_users=USERS))


def test_a_reload_changes_the_table_of_connected_clients() -> None:
    protocol = RedisProtocol()
    parser = protocol.new_request_parser(_options())
    assert _parse(parser, b"FETCH", b"k").action == ACTION_LOCAL
    protocol.update_request_parser(parser, _options(redis_commands={"fetch": "keyed"}))
    assert _parse(parser, b"FETCH", b"k").key == b"k"
    assert parser.commands[b"fetch"].route is Route.KEY
