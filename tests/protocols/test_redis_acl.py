"""``redis_users`` rules: a model of Redis's ACL evaluation, the checked-in
category table against a live redis-server, and what a parser lets through."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet.protocols.redis import RequestParser, encode_command
from corenet.protocols.redis._acl import ALL_COMMANDS, parse_users
from corenet.protocols.redis._acl_table import CATEGORIES
from corenet.protocols.redis._local import Session
from corenet.testing import drive_requests

if TYPE_CHECKING:
    from tests.servers import RedisServer

NAMES = sorted(CATEGORIES)
CATS = sorted({c for cats in CATEGORIES.values() for c in cats})
RULES = st.one_of(
    st.sampled_from(["on", "off", ">pw1", ">pw2", "nopass", "~*", "allcommands", "nocommands"]),
    st.sampled_from(CATS).flatmap(
        lambda c: st.sampled_from([f"+@{c.decode()}", f"-@{c.decode()}"])
    ),
    st.sampled_from(NAMES).flatmap(lambda n: st.sampled_from([f"+{n.decode()}", f"-{n.decode()}"])),
)


def _model(rules: list[str]) -> tuple[bool, frozenset[bytes]]:
    """Redis's evaluation, written out plainly: (enabled, allowed commands)."""
    enabled = False
    allowed: set[bytes] = set()
    for rule in rules:
        if rule in ("on", "off"):
            enabled = rule == "on"
        elif rule == "allcommands":
            allowed = set(ALL_COMMANDS)
        elif rule == "nocommands":
            allowed = set()
        elif rule[:2] in ("+@", "-@"):
            cat = rule[2:].encode()
            members = {n for n, cats in CATEGORIES.items() if cat in cats}
            allowed = allowed | members if rule[0] == "+" else allowed - members
        elif rule[0] in "+-":
            name = rule[1:].encode()
            allowed = allowed | {name} if rule[0] == "+" else allowed - {name}
    return enabled, frozenset(allowed)


@given(st.lists(RULES, max_size=12))
def test_rules_evaluate_in_order_as_redis_does(rules: list[str]) -> None:
    (user,) = parse_users({"u": " ".join(rules)}).values()
    enabled, allowed = _model(rules)
    assert user.enabled == enabled
    assert user.denied == ALL_COMMANDS - allowed
    assert user.accepts(b"pw1") == (enabled and ("nopass" in rules or ">pw1" in rules))


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("on +@nonsense", "unknown ACL category '@nonsense'"),
        ("on +nosuchcommand", "unknown command 'nosuchcommand'"),
        ("on ~user:*", "unsupported ACL rule '~user:*'"),
        ("on +config|get", "unsupported ACL rule '+config|get'"),
        ("on <secretpw", "unsupported ACL rule a password rule"),
    ],
)
def test_bad_rules_are_refused_without_their_password(rules: str, message: str) -> None:
    with pytest.raises(ValueError, match="user eve") as info:
        parse_users({"eve": rules})
    assert message in str(info.value)
    assert "secretpw" not in str(info.value)


def test_a_user_may_only_run_its_commands_even_on_the_fast_path() -> None:
    users = parse_users({"reader": "on >pw +@read"})
    parser = RequestParser(Session(password=None, users=users))
    wire = b"".join(
        encode_command(args)
        for args in (
            [b"AUTH", b"reader", b"pw"],
            [b"GET", b"k"],
            [b"SET", b"k", b"v"],
            [b"MGET", b"a", b"b"],
            [b"DEL", b"a"],
            [b"AUTH", b"reader", b"bad"],
        )
    )
    msgs, err, _ = drive_requests(parser, [wire])
    assert err is None
    replies = [m.reply for m in msgs]
    assert replies[0] == b"+OK\r\n"
    assert replies[1] is None and replies[3] is None  # forwarded: reads
    assert replies[2] == b"-NOPERM this user has no permissions to run the 'set' command\r\n"
    assert replies[4] == b"-NOPERM this user has no permissions to run the 'del' command\r\n"
    assert replies[5].startswith(b"-WRONGPASS")


def test_the_category_table_is_the_running_servers(redis_server: RedisServer) -> None:
    with redis_server.client(decode_responses=True) as client:
        live = {
            name.encode(): frozenset(c.lstrip("@").encode() for c in info["acl_categories"])
            for name, info in client.command().items()
        }
    assert live == CATEGORIES
