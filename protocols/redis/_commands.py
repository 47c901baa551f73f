"""The Redis command table: one row per command the proxy knows.

Each row gives the command's arity as Redis 7 defines it (``n`` exactly n
arguments including the name, ``-n`` at least n), the argument index of its
first key, and how the proxy routes it:

``key``
    forwarded whole to the server owning its (only) key;
``colocated``
    several keys (``RENAME``, ``SINTERSTORE``, ``ZUNIONSTORE``...) that
    must all live on one server, which hash tags arrange: the request is
    forwarded whole to it, and answered ``-CROSSSLOT`` (Redis Cluster's
    words) when they do not.  Which arguments are keys comes from Redis's
    own key specs (:mod:`._command_info`, generated; :mod:`._keyspecs`);
``mget`` / ``sum`` / ``mset``
    split per key (``mset``: per key/value pair) across servers and merged
    back: an array in request order, a summed integer, or ``+OK``;
``eval``
    ``EVAL``/``EVALSHA``/``FCALL``: the keys after ``numkeys``, which must
    be at least 1, co-located as for ``colocated``;
``subcommand``
    ``OBJECT ENCODING key``, ``MEMORY USAGE key``, ``XINFO STREAM key``,
    ``XGROUP CREATE key ...``: routed by the key its subcommand's key spec
    names; subcommands without a key (``MEMORY STATS``) are refused;
``local``
    answered by the proxy itself;
``any``
    keyless and side-effect free: sent to the first live server;
``every``
    about the whole keyspace (``DBSIZE``, ``KEYS``, ``SCAN``, ``RANDOMKEY``,
    ``SCRIPT LOAD/EXISTS/FLUSH``, ``FUNCTION LOAD/DELETE/FLUSH/LIST``,
    ``INFO``, ``FLUSHDB``, ``FLUSHALL``): sent
    to every live server (``SCAN``: to the one its cursor names) and merged
    (see ``_every``);
``pin``
    transactions (``MULTI``, ``EXEC``, ``DISCARD``, ``WATCH``, ``UNWATCH``)
    and blocking reads (``BLPOP``... and ``XREAD``/``XREADGROUP``): sent on a
    server connection of the client's own (see ``_pin``);
``pubsub``
    (un)subscriptions, on the client's subscriber connections (see ``_pubsub``);
``refused``
    known to Redis but meaningless through a sharding proxy (cluster and
    admin commands, ``WAIT``, ``MOVE``...): answered with an error, never
    forwarded.

Commands missing from the table get Redis's own "unknown command" error,
unless the pool's ``redis_commands`` routes them (see ``_pool_commands``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs

from corenet.protocols.redis._command_info import COMMAND_INFO

if TYPE_CHECKING:
    from corenet.protocols.redis._keyspecs import KeySpec

__all__ = [
    "COMMANDS",
    "FANOUT_ROUTES",
    "PUBSUB_SUBCOMMANDS",
    "READ_ONLY",
    "ALLOWED_SUBCOMMANDS",
    "SUBCOMMANDS",
    "Command",
    "Route",
    "every_refusal",
    "subcommand_refusal",
]


class Route(enum.IntEnum):
    KEY = 0
    MGET = 1
    SUM = 2
    MSET = 3
    EVAL = 4
    LOCAL = 5
    ANY = 6
    REFUSED = 7
    EVERY = 8
    COLOCATED = 9
    SUBCOMMAND = 10
    PIN = 11
    PUBSUB = 12


@attrs.frozen
class Command:
    name: bytes
    arity: int  # as Redis: n means exactly n arguments (name included), -n at least n
    first_key: int
    route: Route
    specs: tuple[KeySpec, ...] = ()
    """Redis's key specs, for the ``colocated`` commands (the others need none)."""


_K, _MGET, _SUM, _MSET, _EVAL = Route.KEY, Route.MGET, Route.SUM, Route.MSET, Route.EVAL
FANOUT_ROUTES = frozenset([_MGET, _SUM, _MSET])
"""The routes whose commands are split by key across servers (see _fanout)."""
_LOCAL, _ANY, _REFUSED, _EVERY = Route.LOCAL, Route.ANY, Route.REFUSED, Route.EVERY
_CO, _SUB = Route.COLOCATED, Route.SUBCOMMAND
_PIN, _PUBSUB = Route.PIN, Route.PUBSUB

# name, arity, first key index, route
_TABLE: tuple[tuple[str, int, int, Route], ...] = (
    # keys
    ("copy", -3, 1, _CO),
    ("del", -2, 1, _SUM),
    ("unlink", -2, 1, _SUM),
    ("exists", -2, 1, _SUM),
    ("touch", -2, 1, _SUM),
    ("dump", 2, 1, _K),
    ("expire", -3, 1, _K),
    ("expireat", -3, 1, _K),
    ("expiretime", 2, 1, _K),
    ("pexpire", -3, 1, _K),
    ("pexpireat", -3, 1, _K),
    ("pexpiretime", 2, 1, _K),
    ("persist", 2, 1, _K),
    ("pttl", 2, 1, _K),
    ("rename", 3, 1, _CO),
    ("renamenx", 3, 1, _CO),
    ("restore", -4, 1, _K),
    ("sort", -2, 1, _CO),
    ("sort_ro", -2, 1, _K),
    ("ttl", 2, 1, _K),
    ("type", 2, 1, _K),
    # strings and bitmaps
    ("append", 3, 1, _K),
    ("bitcount", -2, 1, _K),
    ("bitfield", -2, 1, _K),
    ("bitfield_ro", -2, 1, _K),
    ("bitop", -4, 2, _CO),
    ("bitpos", -3, 1, _K),
    ("decr", 2, 1, _K),
    ("decrby", 3, 1, _K),
    ("get", 2, 1, _K),
    ("getbit", 3, 1, _K),
    ("getdel", 2, 1, _K),
    ("getex", -2, 1, _K),
    ("getrange", 4, 1, _K),
    ("getset", 3, 1, _K),
    ("incr", 2, 1, _K),
    ("incrby", 3, 1, _K),
    ("incrbyfloat", 3, 1, _K),
    ("lcs", -3, 1, _CO),
    ("mget", -2, 1, _MGET),
    ("mset", -3, 1, _MSET),
    ("msetnx", -3, 1, _CO),
    ("psetex", 4, 1, _K),
    ("set", -3, 1, _K),
    ("setbit", 4, 1, _K),
    ("setex", 4, 1, _K),
    ("setnx", 3, 1, _K),
    ("setrange", 4, 1, _K),
    ("strlen", 2, 1, _K),
    ("substr", 4, 1, _K),
    # hashes
    ("hdel", -3, 1, _K),
    ("hexists", 3, 1, _K),
    ("hget", 3, 1, _K),
    ("hgetall", 2, 1, _K),
    ("hincrby", 4, 1, _K),
    ("hincrbyfloat", 4, 1, _K),
    ("hkeys", 2, 1, _K),
    ("hlen", 2, 1, _K),
    ("hmget", -3, 1, _K),
    ("hmset", -4, 1, _K),
    ("hrandfield", -2, 1, _K),
    ("hscan", -3, 1, _K),
    ("hset", -4, 1, _K),
    ("hsetnx", 4, 1, _K),
    ("hstrlen", 3, 1, _K),
    ("hvals", 2, 1, _K),
    # hash field expiry (Redis 7.4) and HGETDEL/HGETEX/HSETEX (Redis 8): one key
    ("hexpire", -6, 1, _K),
    ("hexpireat", -6, 1, _K),
    ("hexpiretime", -5, 1, _K),
    ("hgetdel", -5, 1, _K),
    ("hgetex", -5, 1, _K),
    ("hpersist", -5, 1, _K),
    ("hpexpire", -6, 1, _K),
    ("hpexpireat", -6, 1, _K),
    ("hpexpiretime", -5, 1, _K),
    ("hpttl", -5, 1, _K),
    ("hsetex", -6, 1, _K),
    ("httl", -5, 1, _K),
    # lists
    ("lindex", 3, 1, _K),
    ("linsert", 5, 1, _K),
    ("llen", 2, 1, _K),
    ("lmove", 5, 1, _CO),
    ("lpop", -2, 1, _K),
    ("lpos", -3, 1, _K),
    ("lpush", -3, 1, _K),
    ("lpushx", -3, 1, _K),
    ("lrange", 4, 1, _K),
    ("lrem", 4, 1, _K),
    ("lmpop", -4, 2, _CO),
    ("lset", 4, 1, _K),
    ("ltrim", 4, 1, _K),
    ("rpop", -2, 1, _K),
    ("rpoplpush", 3, 1, _CO),
    ("rpush", -3, 1, _K),
    ("rpushx", -3, 1, _K),
    # sets
    ("sadd", -3, 1, _K),
    ("scard", 2, 1, _K),
    ("sdiff", -2, 1, _CO),
    ("sdiffstore", -3, 1, _CO),
    ("sinter", -2, 1, _CO),
    ("sintercard", -3, 2, _CO),
    ("sinterstore", -3, 1, _CO),
    ("sismember", 3, 1, _K),
    ("smembers", 2, 1, _K),
    ("smismember", -3, 1, _K),
    ("smove", 4, 1, _CO),
    ("spop", -2, 1, _K),
    ("srandmember", -2, 1, _K),
    ("srem", -3, 1, _K),
    ("sscan", -3, 1, _K),
    ("sunion", -2, 1, _CO),
    ("sunionstore", -3, 1, _CO),
    # sorted sets
    ("zadd", -4, 1, _K),
    ("zcard", 2, 1, _K),
    ("zcount", 4, 1, _K),
    ("zdiff", -3, 2, _CO),
    ("zdiffstore", -4, 1, _CO),
    ("zincrby", 4, 1, _K),
    ("zinter", -3, 2, _CO),
    ("zintercard", -3, 2, _CO),
    ("zinterstore", -4, 1, _CO),
    ("zlexcount", 4, 1, _K),
    ("zmpop", -4, 2, _CO),
    ("zmscore", -3, 1, _K),
    ("zpopmax", -2, 1, _K),
    ("zpopmin", -2, 1, _K),
    ("zrandmember", -2, 1, _K),
    ("zrange", -4, 1, _K),
    ("zrangebylex", -4, 1, _K),
    ("zrangebyscore", -4, 1, _K),
    ("zrangestore", -5, 1, _CO),
    ("zrank", -3, 1, _K),
    ("zrem", -3, 1, _K),
    ("zremrangebylex", 4, 1, _K),
    ("zremrangebyrank", 4, 1, _K),
    ("zremrangebyscore", 4, 1, _K),
    ("zrevrange", -4, 1, _K),
    ("zrevrangebylex", -4, 1, _K),
    ("zrevrangebyscore", -4, 1, _K),
    ("zrevrank", -3, 1, _K),
    ("zscan", -3, 1, _K),
    ("zscore", 3, 1, _K),
    ("zunion", -3, 2, _CO),
    ("zunionstore", -4, 1, _CO),
    # streams (single-key forms only)
    ("xack", -4, 1, _K),
    ("xadd", -5, 1, _K),
    ("xautoclaim", -6, 1, _K),
    ("xclaim", -6, 1, _K),
    ("xdel", -3, 1, _K),
    ("xlen", 2, 1, _K),
    ("xpending", -3, 1, _K),
    ("xrange", -4, 1, _K),
    ("xrevrange", -4, 1, _K),
    ("xsetid", -3, 1, _K),
    ("xtrim", -4, 1, _K),
    ("xgroup", -2, 2, _SUB),
    ("xinfo", -2, 2, _SUB),
    # hyperloglog
    ("pfadd", -2, 1, _K),
    ("pfcount", -2, 1, _CO),
    ("pfmerge", -2, 1, _CO),
    # geo
    ("geoadd", -5, 1, _K),
    ("geodist", -4, 1, _K),
    ("geohash", -2, 1, _K),
    ("geopos", -2, 1, _K),
    ("georadius", -6, 1, _CO),
    ("georadius_ro", -6, 1, _K),
    ("georadiusbymember", -5, 1, _CO),
    ("georadiusbymember_ro", -5, 1, _K),
    ("geosearch", -7, 1, _K),
    ("geosearchstore", -8, 1, _CO),
    # scripting
    ("eval", -3, 3, _EVAL),
    ("evalsha", -3, 3, _EVAL),
    ("eval_ro", -3, 3, _EVAL),
    ("evalsha_ro", -3, 3, _EVAL),
    ("fcall", -3, 3, _EVAL),
    ("fcall_ro", -3, 3, _EVAL),
    # answered by the proxy
    ("ping", -1, 0, _LOCAL),
    ("echo", 2, 0, _LOCAL),
    ("quit", -1, 0, _LOCAL),
    ("auth", -2, 0, _LOCAL),
    ("hello", -1, 0, _LOCAL),
    ("select", 2, 0, _LOCAL),
    ("client", -2, 0, _LOCAL),
    # keyless, harmless
    ("command", -1, 0, _ANY),
    ("lolwut", -1, 0, _ANY),
    ("time", 1, 0, _ANY),
    # the whole keyspace, over every server
    ("dbsize", 1, 0, _EVERY),
    ("keys", 2, 0, _EVERY),
    ("scan", -2, 0, _EVERY),
    ("randomkey", 1, 0, _EVERY),
    ("script", -2, 0, _EVERY),
    ("function", -2, 0, _EVERY),
    # subcommands about one key
    ("memory", -2, 2, _SUB),
    ("object", -2, 2, _SUB),
    ("info", -1, 0, _EVERY),
    ("flushdb", -1, 0, _EVERY),
    ("flushall", -1, 0, _EVERY),
    ("pubsub", -2, 0, _EVERY),
    # on a server connection of the client's own
    ("multi", 1, 0, _PIN),
    ("exec", 1, 0, _PIN),
    ("discard", 1, 0, _PIN),
    ("watch", -2, 1, _PIN),
    ("unwatch", 1, 0, _PIN),
    ("blpop", -3, 1, _PIN),
    ("brpop", -3, 1, _PIN),
    ("brpoplpush", 4, 1, _PIN),
    ("blmove", 6, 1, _PIN),
    ("blmpop", -5, 3, _PIN),
    ("bzpopmin", -3, 1, _PIN),
    ("bzpopmax", -3, 1, _PIN),
    ("bzmpop", -5, 3, _PIN),
    ("xread", -4, 0, _PIN),
    ("xreadgroup", -7, 0, _PIN),
    # Pub/Sub: channels placed like keys, patterns on every server (see _pubsub)
    ("subscribe", -2, 0, _PUBSUB),
    ("unsubscribe", -1, 0, _PUBSUB),
    ("psubscribe", -2, 0, _PUBSUB),
    ("punsubscribe", -1, 0, _PUBSUB),
    ("ssubscribe", -2, 0, _PUBSUB),
    ("sunsubscribe", -1, 0, _PUBSUB),
    ("publish", 3, 1, _K),
    ("spublish", 3, 1, _K),
    # known to Redis, not served through a sharding proxy
    *(
        (name, -1, 0, _REFUSED)
        for name in (
            "acl bgrewriteaof bgsave cluster config debug failover lastsave "
            "latency migrate module monitor move psync readonly readwrite "
            "replconf replicaof reset role save shutdown slaveof slowlog swapdb "
            "sync wait waitaof"
        ).split()
    ),
)

COMMANDS: dict[bytes, Command] = {
    name.encode(): Command(
        name.encode(),
        arity,
        first_key,
        route,
        COMMAND_INFO[name.encode()].specs if route is _CO else (),
    )
    for name, arity, first_key, route in _TABLE
}


READ_ONLY: frozenset[bytes] = frozenset(
    (
        b"get mget strlen getrange substr getbit bitcount bitpos bitfield_ro lcs exists type "
        b"ttl pttl expiretime pexpiretime dump hget hmget hgetall hkeys hvals hlen hexists "
        b"hstrlen hrandfield hscan lrange lindex llen lpos scard smembers sismember smismember "
        b"srandmember sinter sunion sdiff sintercard sscan zcard zcount zlexcount zrange "
        b"zrangebyscore zrangebylex zrevrange zrevrangebyscore zrevrangebylex zrank zrevrank "
        b"zscore zmscore zrandmember zscan zinter zunion zdiff zintercard pfcount geodist "
        b"geohash geopos georadius_ro georadiusbymember_ro geosearch xrange xrevrange xlen "
        b"sort_ro eval_ro evalsha_ro fcall_ro"
    ).split()
)
"""Commands Redis 7 flags ``readonly`` that the table routes by key: what
``read_from: replica`` may send to a replica (lower-case names)."""


_KEYED_PARENTS = (b"memory", b"object", b"xgroup", b"xinfo")
SUBCOMMANDS: dict[bytes, tuple[int, tuple[KeySpec, ...]]] = {
    name: (info.arity, info.specs)
    for name, info in COMMAND_INFO.items()
    if info.specs and name.split(b"|")[0] in _KEYED_PARENTS
}
"""``command|subcommand`` -> (arity, key specs) of the subcommands routed by key."""

PUBSUB_SUBCOMMANDS = frozenset(
    [b"channels", b"shardchannels", b"numpat", b"numsub", b"shardnumsub"]
)
"""What ``PUBSUB`` may ask through the proxy: every server's answers merged."""

ALLOWED_SUBCOMMANDS: dict[bytes, frozenset[bytes]] = {
    # The same on every server, or merged over them, so sent to all (see _every).
    b"pubsub": PUBSUB_SUBCOMMANDS,
    b"script": frozenset([b"load", b"exists", b"flush"]),
    b"function": frozenset([b"load", b"delete", b"flush", b"list"]),
    # About one key (route ``subcommand``).
    **{
        parent: frozenset(n.split(b"|")[1] for n in SUBCOMMANDS if n.startswith(parent + b"|"))
        for parent in _KEYED_PARENTS
    },
}
"""What the proxy serves of each command with subcommands."""


def subcommand_refusal(cmd: Command, args: list[bytes]) -> bytes | None:
    """The error for a subcommand the proxy does not serve (see
    :data:`ALLOWED_SUBCOMMANDS`), an unknown one or a wrong argument count
    (in Redis's words, the arity from the generated table), or None."""
    sub = args[1].lower()
    info = COMMAND_INFO.get(cmd.name + b"|" + sub)
    if info is None:
        return b"-ERR unknown subcommand '%s'. Try %s HELP.\r\n" % (
            args[1][:128],
            cmd.name.upper(),
        )
    if sub not in ALLOWED_SUBCOMMANDS[cmd.name]:
        return b"-ERR %s %s is not supported by the proxy\r\n" % (cmd.name.upper(), sub.upper())
    arity = info.arity
    if len(args) != arity if arity > 0 else len(args) < -arity:
        return b"-ERR wrong number of arguments for '%s|%s' command\r\n" % (cmd.name, sub)
    return None


def every_refusal(cmd: Command, args: list[bytes]) -> bytes | None:
    """The error for an ``every``-routed request the proxy cannot serve, or None.

    ``SCAN`` needs a cursor the proxy made (decimal digits, as Redis parses
    it); ``SCRIPT`` and ``FUNCTION`` only their subcommands that mean the
    same on every server.
    """
    if cmd.name == b"scan" and not (args[1].isdigit() and args[1].isascii()):
        return b"-ERR invalid cursor\r\n"
    if cmd.name in ALLOWED_SUBCOMMANDS:
        return subcommand_refusal(cmd, args)
    return None
