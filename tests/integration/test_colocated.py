"""Commands whose keys must share a server, through the proxy, against real redis-servers.

Each case runs its set-up and its command (keys ``A``, ``B``, ``C``) once
through a 3-server pool with ``hash_tag: "{}"`` and keys that share a tag,
and once on a redis-server directly: the reply bytes must be equal.  With
keys on different servers the multi-key command gets ``-CROSSSLOT``; a
one-server pool serves every case with untagged keys.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.servers import encode_command, pool_config, redis_raw, spread_keys

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.servers import CorenetProxy, RedisServer

    Tagged = tuple[CorenetProxy, list[RedisServer], RedisServer]

CROSSSLOT = b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"

# (set-up commands, the multi-key command, read-backs); words A B C are keys.
Case = tuple[list[str], str, list[str]]
_GEO = "GEOADD A 13.361389 38.115556 Palermo 15.087269 37.502669 Catania"
CASES: dict[str, Case] = {
    "rename": (["SET A v"], "RENAME A B", ["GET B", "EXISTS A"]),
    "renamenx": (["SET A v", "SET B w"], "RENAMENX A B", ["GET B"]),
    "copy": (["SET A v"], "COPY A B", ["GET B"]),
    "copy_replace": (["SET A v", "SET B w"], "COPY A B REPLACE", ["GET B"]),
    "smove": (["SADD A 1 2", "SADD B 3"], "SMOVE A B 1", ["SMEMBERS B"]),
    "lmove": (["RPUSH A 1 2 3"], "LMOVE A B LEFT RIGHT", ["LRANGE B 0 -1"]),
    "rpoplpush": (["RPUSH A 1 2 3"], "RPOPLPUSH A B", ["LRANGE B 0 -1"]),
    "sinterstore": (["SADD A 1 2 3", "SADD B 2 3 4"], "SINTERSTORE C A B", ["SMEMBERS C"]),
    "sunionstore": (["SADD A 1 2", "SADD B 3"], "SUNIONSTORE C A B", ["SMEMBERS C"]),
    "sdiffstore": (["SADD A 1 2", "SADD B 2"], "SDIFFSTORE C A B", ["SMEMBERS C"]),
    "sinter": (["SADD A 1 2 3", "SADD B 2 3 4"], "SINTER A B", []),
    "sunion": (["SADD A 1 2", "SADD B 3"], "SUNION A B", []),
    "sdiff": (["SADD A 1 2", "SADD B 2"], "SDIFF A B", []),
    "sintercard": (["SADD A 1 2 3", "SADD B 2 3 4"], "SINTERCARD 2 A B LIMIT 1", []),
    "zunionstore": (
        ["ZADD A 1 a 2 b", "ZADD B 3 b 4 c"],
        "ZUNIONSTORE C 2 A B WEIGHTS 1 2",
        ["ZRANGE C 0 -1 WITHSCORES"],
    ),
    "zinterstore": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZINTERSTORE C 2 A B", ["ZRANGE C 0 -1"]),
    "zdiffstore": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZDIFFSTORE C 2 A B", ["ZRANGE C 0 -1"]),
    "zrangestore": (["ZADD A 1 a 2 b"], "ZRANGESTORE B A 0 -1", ["ZRANGE B 0 -1"]),
    "zunion": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZUNION 2 A B WITHSCORES", []),
    "zinter": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZINTER 2 A B WITHSCORES", []),
    "zdiff": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZDIFF 2 A B", []),
    "zintercard": (["ZADD A 1 a 2 b", "ZADD B 3 b"], "ZINTERCARD 2 A B", []),
    "bitop": (["SET A foobar", "SET B abcdef"], "BITOP XOR C A B", ["GET C"]),
    "pfmerge": (["PFADD A a b", "PFADD B c"], "PFMERGE C A B", ["PFCOUNT C"]),
    "pfcount": (["PFADD A a b", "PFADD B b c"], "PFCOUNT A B", []),
    "geosearchstore": (
        [_GEO],
        "GEOSEARCHSTORE B A FROMLONLAT 15 37 BYRADIUS 200 km ASC",
        ["ZRANGE B 0 -1"],
    ),
    "georadius_store": ([_GEO], "GEORADIUS A 15 37 200 km STORE B", ["ZRANGE B 0 -1"]),
    "georadiusbymember_store": (
        [_GEO],
        "GEORADIUSBYMEMBER A Palermo 200 km STOREDIST B",
        ["ZRANGE B 0 -1"],
    ),
    "sort_store": (["RPUSH A 3 1 2"], "SORT A LIMIT 0 2 STORE B", ["LRANGE B 0 -1"]),
    "eval": (
        ["SET B w"],
        "EVAL redis.call('set',KEYS[1],ARGV[1])return(redis.call('get',KEYS[2])) 2 A B x",
        ["GET A"],
    ),
    "lcs": (["SET A ohmytext", "SET B mynewtext"], "LCS A B IDX WITHMATCHLEN", []),
    "lmpop": (["RPUSH B 1 2 3"], "LMPOP 2 A B LEFT COUNT 2", ["LRANGE B 0 -1"]),
    "zmpop": (["ZADD B 1 a 2 b"], "ZMPOP 2 A B MAX", []),
    "msetnx": ([], "MSETNX A 1 B 2", ["GET A", "GET B"]),
}


def _wire(line: str, keys: dict[str, str]) -> bytes:
    return encode_command(*[keys.get(word, word).encode() for word in line.split()])


def _run(address: str, case: Case, keys: dict[str, str]) -> bytes:
    setup, command, after = case
    lines = [*setup, command, *after]
    payload = b"".join(_wire(line, keys) for line in lines)
    return redis_raw(address, payload, expect_replies=len(lines))


@pytest.fixture
def tagged(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> Tagged:
    *servers, reference = redis_servers(4)
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [s.address for s in servers], hash_tag="{}")
    )
    return proxy, servers, reference


def _apart(proxy: CorenetProxy, servers: list[RedisServer]) -> tuple[str, str, str]:
    """Three keys that the pool puts on three different servers."""
    where: dict[int, str] = {}
    for key in spread_keys(200, "apart"):  # 3 servers: found within a few dozen keys
        redis_raw(proxy.address(), _wire(f"SET {key} 1", {}), expect_replies=1)
        for index, server in enumerate(servers):
            if redis_raw(server.address, _wire(f"EXISTS {key}", {}), expect_replies=1) == b":1\r\n":
                where.setdefault(index, key)
        if len(where) == 3:
            return where[0], where[1], where[2]
    raise AssertionError("no keys on three servers")


def _both(tagged: Tagged, case: Case, tag: str) -> tuple[bytes, bytes, dict[str, str]]:
    """``case`` through the proxy and on the reference server, keys ``{tag}a``..."""
    proxy, _, reference = tagged
    keys = {k: f"{{{tag}}}{k.lower()}" for k in "ABC"}
    return _run(proxy.address(), case, keys), _run(reference.address, case, keys), keys


@pytest.mark.parametrize("name", sorted(CASES))
def test_colocated_keys_answer_as_one_redis(tagged: Tagged, name: str) -> None:
    servers = tagged[1]
    through, direct, keys = _both(tagged, CASES[name], name)
    assert through == direct
    assert b"CROSSSLOT" not in through and b"unknown command" not in through
    # The keys live on the server that owns their tag, none elsewhere.
    exists = _wire("EXISTS A B C", keys)
    holders = [s for s in servers if redis_raw(s.address, exists, expect_replies=1) != b":0\r\n"]
    assert len(holders) <= 1


def test_keys_on_different_servers_get_crossslot(tagged: Tagged) -> None:
    proxy, servers, _ = tagged
    a, b, c = _apart(proxy, servers)
    keys = {"A": a, "B": b, "C": c}
    for name, (_, command, _) in sorted(CASES.items()):
        if command.split()[0] == "SORT":
            continue  # its destination is checked below, with STORE's arguments
        reply = redis_raw(proxy.address(), _wire(command, keys), expect_replies=1)
        assert reply == CROSSSLOT, name
    sort = redis_raw(proxy.address(), _wire("SORT A STORE B", keys), expect_replies=1)
    assert sort == CROSSSLOT
    # One key (the apart keys hold strings): forwarded, and its server answers.
    for line in ("PFCOUNT A", "SINTER A A"):
        reply = redis_raw(proxy.address(), _wire(line, keys), expect_replies=1)
        assert reply.startswith(b"-WRONGTYPE"), line
    # The refusal changed nothing and the client connection stays usable.
    payload = _wire("RENAME A B", keys) + _wire("GET A", keys)
    assert redis_raw(proxy.address(), payload, expect_replies=2) == CROSSSLOT + b"$1\r\n1\r\n"


def test_a_one_server_pool_accepts_every_multi_key_command(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    server, reference = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [server.address]))
    for name, case in sorted(CASES.items()):
        keys = {k: f"{name}:{k.lower()}" for k in "ABC"}
        assert _run(proxy.address(), case, keys) == _run(reference.address, case, keys), name


def test_copy_to_another_db_is_refused(tagged: Tagged) -> None:
    proxy, _, _ = tagged
    reply = redis_raw(proxy.address(), _wire("COPY {t}a {t}b DB 1", {}), expect_replies=1)
    assert reply == b"-ERR COPY with DB is not supported by the proxy\r\n"


def test_arguments_that_do_not_fit_the_key_specs_get_redis_own_error(tagged: Tagged) -> None:
    proxy, _, reference = tagged
    for line in ("ZUNIONSTORE d x a", "SINTERCARD 5 a b", "LMPOP -1 a LEFT", "ZINTER 0 a"):
        payload = _wire(line, {})
        through = redis_raw(proxy.address(), payload, expect_replies=1)
        assert through == redis_raw(reference.address, payload, expect_replies=1), line
        assert through[:1] == b"-"


def test_functions_load_everywhere_and_fcall_needs_co_located_keys(tagged: Tagged) -> None:
    proxy, servers, _ = tagged
    library = (
        "#!lua name=lib\n"
        "redis.register_function('two', function(keys, args) "
        "return redis.call('mget', keys[1], keys[2]) end)"
    )
    load = encode_command(b"FUNCTION", b"LOAD", library.encode())
    assert redis_raw(proxy.address(), load, expect_replies=1) == b"$3\r\nlib\r\n"
    listing = _wire("FUNCTION LIST", {})
    for server in servers:  # loaded on every server
        assert redis_raw(server.address, listing, expect_replies=1).count(b"two") == 1
    assert redis_raw(proxy.address(), listing, expect_replies=1) == redis_raw(
        servers[0].address, listing, expect_replies=1
    )
    keys = {"A": "{f}a", "B": "{f}b"}
    payload = _wire("MSET A 1 B 2", keys) + _wire("FCALL two 2 A B", keys)
    assert redis_raw(proxy.address(), payload, expect_replies=2) == (
        b"+OK\r\n*2\r\n$1\r\n1\r\n$1\r\n2\r\n"
    )
    a, b, _ = _apart(proxy, servers)
    reply = redis_raw(proxy.address(), _wire(f"FCALL two 2 {a} {b}", {}), expect_replies=1)
    assert reply == CROSSSLOT
    refused = redis_raw(proxy.address(), _wire("FUNCTION DUMP", {}), expect_replies=1)
    assert refused == b"-ERR FUNCTION DUMP is not supported by the proxy\r\n"
    deleted = redis_raw(proxy.address(), _wire("FUNCTION DELETE lib", {}), expect_replies=1)
    assert deleted == b"+OK\r\n"
    for server in servers:
        assert redis_raw(server.address, listing, expect_replies=1) == b"*0\r\n"


NEWER = [  # Redis 7.4 hash field expiry, Redis 8 HGETDEL/HGETEX/HSETEX: one key each
    ("7.4", "HEXPIRE A 100 FIELDS 1 f"),
    ("7.4", "HPEXPIRE A 100000 FIELDS 1 f"),
    ("7.4", "HEXPIREAT A 4000000000 FIELDS 1 f"),
    ("7.4", "HPEXPIREAT A 4000000000000 FIELDS 1 f"),
    ("7.4", "HTTL A FIELDS 1 f"),
    ("7.4", "HPTTL A FIELDS 1 f"),
    ("7.4", "HEXPIRETIME A FIELDS 1 f"),
    ("7.4", "HPEXPIRETIME A FIELDS 1 f"),
    ("7.4", "HPERSIST A FIELDS 1 f"),
    ("8.0", "HGETDEL A FIELDS 1 f"),
    ("8.0", "HGETEX A EX 100 FIELDS 1 f"),
    ("8.0", "HSETEX A EX 100 FIELDS 1 f v"),
]


def _version(server: RedisServer) -> tuple[int, ...]:
    info = redis_raw(server.address, _wire("INFO server", {}), expect_replies=1).decode()
    line = next(x for x in info.splitlines() if x.startswith("redis_version:"))
    return tuple(int(p) for p in line.split(":", 1)[1].split(".")[:2])


def _served(server: RedisServer, name: str) -> int:
    """How many requests named ``name`` ``server`` saw: its calls if it
    knows the command, else its error replies (an unknown command is one)."""
    info = redis_raw(server.address, _wire("INFO all", {}), expect_replies=1).decode()
    fields = dict(x.split(":", 1) for x in info.splitlines() if ":" in x)
    if f"cmdstat_{name}" in fields:
        return int(fields[f"cmdstat_{name}"].split(",")[0].split("=")[1])
    return int(fields["total_error_replies"])


def _owner(proxy: CorenetProxy, servers: list[RedisServer], keys: dict[str, str]) -> RedisServer:
    setup = _wire("HSET A f 1", keys)
    assert redis_raw(proxy.address(), setup, expect_replies=1) == b":1\r\n"
    exists = _wire("EXISTS A", keys)
    return next(s for s in servers if redis_raw(s.address, exists, expect_replies=1) == b":1\r\n")


_IDS = [line.split()[0] for _, line in NEWER]


@pytest.mark.parametrize(("since", "line"), NEWER, ids=_IDS)
def test_newer_hash_commands_are_routed_by_their_key(tagged: Tagged, since: str, line: str) -> None:
    proxy, servers, _ = tagged
    keys = {"A": "{h}a"}
    owner = _owner(proxy, servers, keys)
    name = line.split()[0].lower()
    before = {s.address: _served(s, name) for s in servers}
    redis_raw(proxy.address(), _wire(line, keys), expect_replies=1)
    assert {s.address: _served(s, name) - before[s.address] for s in servers} == {
        s.address: int(s is owner) for s in servers
    }


@pytest.mark.parametrize(("since", "line"), NEWER, ids=_IDS)
def test_newer_hash_commands_answer_as_one_redis(tagged: Tagged, since: str, line: str) -> None:
    proxy, servers, reference = tagged
    if _version(reference) < tuple(int(p) for p in since.split(".")):
        pytest.skip(f"the installed redis-server predates {since}, which added {line.split()[0]}")
    keys = {"A": "{h}a"}
    _owner(proxy, servers, keys)
    redis_raw(reference.address, _wire("HSET A f 1", keys), expect_replies=1)
    through = redis_raw(proxy.address(), _wire(line, keys), expect_replies=1)
    assert through == redis_raw(reference.address, _wire(line, keys), expect_replies=1)


SUBCASES: dict[str, Case] = {
    "object": (["SET A 12345", "RPUSH B x"], "OBJECT ENCODING A", ["OBJECT ENCODING B"]),
    "object_refcount": (["SET A v"], "OBJECT REFCOUNT A", ["OBJECT FREQ A"]),
    "memory_usage": (["SET A value"], "MEMORY USAGE A SAMPLES 0", []),
    "xgroup": (
        ["XGROUP CREATE A g $ MKSTREAM"],
        "XGROUP CREATECONSUMER A g c",
        ["XINFO GROUPS A", "XINFO CONSUMERS A g", "XGROUP DESTROY A g"],
    ),
    "refused": ([], "MEMORY STATS", ["OBJECT HELP", "OBJECT NOPE A", "OBJECT ENCODING"]),
}


def _no_clock(replies: bytes) -> bytes:
    """``replies`` with XINFO's milliseconds-since fields (``idle``, ``inactive``)
    set to 0: the two servers are asked a millisecond apart."""
    return re.sub(rb"(\$(?:4\r\nidle|8\r\ninactive)\r\n):-?\d+\r\n", rb"\1:0\r\n", replies)


@pytest.mark.parametrize("name", sorted(SUBCASES))
def test_subcommands_about_a_key_are_routed_by_it(tagged: Tagged, name: str) -> None:
    through, direct, keys = _both(tagged, SUBCASES[name], name)
    if name != "refused":
        assert _no_clock(through) == _no_clock(direct)
        return
    assert through == (
        b"-ERR MEMORY STATS is not supported by the proxy\r\n"
        b"-ERR OBJECT HELP is not supported by the proxy\r\n"
        b"-ERR unknown subcommand 'NOPE'. Try OBJECT HELP.\r\n"
        b"-ERR wrong number of arguments for 'object|encoding' command\r\n"
    )
    # The last two in Redis's own words.
    direct = _run(tagged[2].address, ([], "OBJECT NOPE A", ["OBJECT ENCODING"]), keys)
    assert through.endswith(direct)
