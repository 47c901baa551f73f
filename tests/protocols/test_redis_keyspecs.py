"""Key positions from Redis's key specs, against a live redis-server's own answers.

* The generated table (protocols/redis/_command_info.py) is what
  scripts/gen_command_table.py makes from the installed redis-server now.
* On random argument vectors, :func:`key_positions` (and the hand-written
  finders) name the keys ``COMMAND GETKEYS`` names.
* On any argument vector it never raises and never points past the end.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corenet.msg import ACTION_FANOUT, ACTION_FORWARD, Msg
from corenet.protocols.redis import RequestParser, encode_command
from corenet.protocols.redis._acl_table import CATEGORIES
from corenet.protocols.redis._command_info import COMMAND_INFO, REDIS_VERSION
from corenet.protocols.redis._commands import COMMANDS, SUBCOMMANDS, Route
from corenet.protocols.redis._fanout import CROSSSLOT, fragment
from corenet.protocols.redis._keyspecs import FINDERS, UNKNOWN, key_positions

if TYPE_CHECKING:
    from collections.abc import Sequence

    import redis

    from tests.servers import RedisServer

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "gen_command_table", ROOT / "scripts" / "gen_command_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_command_table", module)
    spec.loader.exec_module(module)
    return module


def _positions(name: bytes, args: Sequence[bytes]) -> list[int] | None:
    finder = FINDERS.get(name)
    return finder(args) if finder is not None else key_positions(COMMAND_INFO[name].specs, args)


# Commands whose keys the specs alone name (no ``unknown`` spec, which Redis
# replaces by C code), plus those with a finder; top-level commands only.
# MIGRATE's KEYS spec is flagged incomplete (Redis uses C code for it too),
# and the proxy refuses MIGRATE.
_CHECKED = sorted(
    name
    for name, info in COMMAND_INFO.items()
    if b"|" not in name
    and name != b"migrate"
    and info.specs
    and (name in FINDERS or all(s.begin != UNKNOWN and s.find != UNKNOWN for s in info.specs))
)
_COLOCATED = sorted(
    name for name, cmd in COMMANDS.items() if cmd.route in (Route.COLOCATED, Route.EVAL)
)
_WORDS = [
    b"0", b"1", b"2", b"3", b"-1", b"x", b"k1", b"k2", b"k3",
    b"STORE", b"store", b"STOREDIST", b"KEYS", b"LIMIT", b"GET", b"BY", b"WEIGHTS",
    b"STREAMS", b"FIELDS", b"LEFT", b"MIN",
]  # fmt: skip


def _arguments(names: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    # ASCII: redis-py decodes what COMMAND GETKEYS answers.
    words = st.one_of(st.sampled_from(_WORDS), st.from_regex(rb"[a-z0-9-]{1,3}", fullmatch=True))
    return st.builds(
        lambda name, rest: [name, *rest], st.sampled_from(names), st.lists(words, max_size=9)
    )


def test_every_colocated_command_has_key_specs() -> None:
    for name in _COLOCATED:
        assert name in COMMAND_INFO, name
        assert COMMANDS[name].route is Route.EVAL or COMMANDS[name].specs, name


def test_the_generated_table_is_the_installed_servers(redis_server: RedisServer) -> None:
    generator = _generator()
    port = int(redis_server.address.rsplit(":", 1)[1])
    if generator.server_version(port) != REDIS_VERSION:
        pytest.skip(f"the table is from redis-server {REDIS_VERSION}; regenerate it for this one")
    info_source, acl_source = generator.generate(port)
    namespace: dict[str, Any] = {}
    exec(compile(info_source, "<generated>", "exec"), namespace)  # noqa: S102
    assert namespace["COMMAND_INFO"] == COMMAND_INFO
    acl: dict[str, Any] = {}
    exec(compile(acl_source, "<generated acl>", "exec"), acl)  # noqa: S102
    assert acl["CATEGORIES"] == CATEGORIES


def _getkeys(client: redis.Redis, args: list[bytes]) -> list[bytes]:
    import redis as redis_py

    try:
        keys: list[str | bytes] = client.command_getkeys(*args)
    except redis_py.ResponseError:  # "Invalid arguments" (no keys) and the like
        return []
    return [k.encode() if isinstance(k, str) else k for k in keys]  # redis-py decodes them


def _fits_arity(args: list[bytes]) -> bool:
    arity = COMMAND_INFO[args[0]].arity
    return len(args) == arity if arity > 0 else len(args) >= -arity


@pytest.fixture
def live(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.one_of(_arguments(_CHECKED), _arguments(_COLOCATED)))
def test_keys_are_those_command_getkeys_names(live: redis.Redis, args: list[bytes]) -> None:
    if not _fits_arity(args):
        return  # the parser answers these itself: wrong number of arguments
    positions = _positions(args[0], args)
    if positions is None:
        # Arguments the specs reject (a key count that is no integer...):
        # the command fails on any server, so the proxy sends it to any.
        # GETKEYS then falls back on C code that reads counts with atoi()
        # and may name keys the command itself never reaches.
        return
    assert [args[i] for i in positions] == _getkeys(live, args)


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(SUBCOMMANDS)),
    rest=st.lists(st.sampled_from([b"k1", b"k2", b"0", b"$", b"x"]), max_size=5),
)
def test_subcommand_keys_are_those_command_getkeys_names(
    live: redis.Redis, name: bytes, rest: list[bytes]
) -> None:
    args = [*name.split(b"|"), *rest]
    arity, specs = SUBCOMMANDS[name]
    if len(args) != arity if arity > 0 else len(args) < -arity:
        return
    positions = key_positions(specs, args)
    assert positions is not None
    assert [args[i] for i in positions] == _getkeys(live, args)


@example(args=[b"sort"])
@given(args=_arguments(sorted(COMMAND_INFO)))
def test_key_positions_never_raise_and_stay_in_range(args: list[bytes]) -> None:
    positions = _positions(args[0], args)
    assert positions is None or all(0 < i < len(args) for i in positions)


# Rows that follow a newer Redis than the generated table's (7.2 added
# ZRANK ... WITHSCORE) or that it lacks (7.4's hash field expiry, 8's
# HGETDEL/HGETEX/HSETEX, 7.2's WAITAOF).
_NEWER = frozenset([b"zrank", b"zrevrank"])


def test_the_routing_table_agrees_with_the_generated_arity() -> None:
    for name, cmd in COMMANDS.items():
        info = COMMAND_INFO.get(name)
        if info is None or cmd.route is Route.REFUSED or name in _NEWER:
            continue
        assert cmd.arity == info.arity, name


def _parse(*args: bytes) -> Msg:
    msg = RequestParser().parse(encode_command(list(args)), 0)
    assert msg is not None
    return msg


def test_colocated_commands_carry_every_key_and_one_key_is_forwarded() -> None:
    msg = _parse(b"ZUNIONSTORE", b"{t}d", b"2", b"{t}a", b"{t}b", b"WEIGHTS", b"1", b"2")
    assert msg.action == ACTION_FANOUT and msg.keys == [b"{t}d", b"{t}a", b"{t}b"]
    msg = _parse(b"SORT", b"k", b"BY", b"store", b"LIMIT", b"0", b"1", b"STORE", b"dest")
    assert msg.keys == [b"k", b"dest"]
    about = _parse(b"OBJECT", b"ENCODING", b"k")
    assert about.action == ACTION_FORWARD and about.key == b"k"
    single = _parse(b"PFCOUNT", b"h")
    assert single.action == ACTION_FORWARD and single.key == b"h"
    evalsha = _parse(b"EVALSHA", b"0" * 40, b"2", b"a", b"b", b"arg")
    assert evalsha.action == ACTION_FANOUT and evalsha.keys == [b"a", b"b"]


@given(st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=2, max_size=6))
def test_crossslot_unless_every_key_is_on_one_server(keys: list[bytes]) -> None:
    msg = _parse(b"SUNIONSTORE", *keys)
    server = {b"a": 0, b"b": 0, b"c": 1}
    frags = fragment(msg, server.__getitem__)
    if len({server[k] for k in keys}) == 1:
        assert frags == [(server[keys[0]], msg)]
    else:
        assert not frags and msg.reply == CROSSSLOT
