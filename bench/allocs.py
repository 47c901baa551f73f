"""Objects a request costs on the proxy's data path, counted without servers.

    .venv/bin/python -m bench.allocs

For each workload a pipeline of requests is framed as a client connection
frames a read (``corenet.framing.Framer`` around the protocol's parser), the
multi-key ones are split as the pool splits them, their replies are framed
as a server connection frames a read and each request is completed with its
reply (``corenet.proxy.client.complete``, and the merge for split ones).
``sys.getallocatedblocks()`` is read before and after each step while its
results are held, so the figures are the Python objects (and buffers) a
request holds while it is in flight, per request; what a step frees again
before it returns is not counted.  The connections' own bookkeeping (queues,
stats counters) allocates nothing per request.
"""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from corenet.framing import Framer
from corenet.plugins.distribution import build_modula
from corenet.plugins.hashing import HASH_FUNCTIONS
from corenet.protocols import memcache, redis
from corenet.protocols.memcache._protocol import MemcacheProtocol
from corenet.protocols.redis._protocol import RedisProtocol
from corenet.proxy.client import complete
from corenet.routing import Router

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.msg import Msg


@dataclass
class Workload:
    name: str
    protocol: Any
    requests: bytes
    reply: Callable[[Msg], bytes]  # what a server answers to one request or fragment
    depth: int


PROTOCOLS: dict[Any, Any] = {redis: RedisProtocol(), memcache: MemcacheProtocol()}


def _router() -> Router:
    # modula over two servers: a 10-key request is split in two, as evenly as keys hash
    router = Router(HASH_FUNCTIONS["fnv1a_64"], build_modula, None, 2)
    router.rebuild([("a", 1), ("b", 1)])
    return router


def _keys(n: int, start: int) -> list[bytes]:
    return [b"key:%012d" % (start + i) for i in range(n)]


def _redis_values(msg: Msg) -> bytes:
    """A GET's value, or an MGET fragment's array of its keys' values."""
    if msg.parent is None and msg.keys is None:
        return b"$3\r\nxxx\r\n"
    keys = len(msg.info) if msg.parent is not None else len(msg.keys or ())
    return b"*%d\r\n" % keys + b"$3\r\nxxx\r\n" * keys


def _memcache_value(msg: Msg) -> bytes:
    return b"VALUE %s 0 3\r\nxxx\r\nEND\r\n" % msg.key


def workloads(depth: int) -> list[Workload]:
    enc = redis.encode_command
    get = b"".join(enc([b"GET", k]) for k in _keys(depth, 0))
    set_ = b"".join(enc([b"SET", k, b"xxx"]) for k in _keys(depth, 0))
    mget = b"".join(enc([b"MGET", *_keys(10, 10 * i)]) for i in range(depth))
    mc_get = b"".join(b"get %s\r\n" % k for k in _keys(depth, 0))
    mc_set = b"".join(b"set %s 0 0 3\r\nxxx\r\n" % k for k in _keys(depth, 0))
    return [
        Workload(f"redis get@{depth}", redis, get, _redis_values, depth),
        Workload(f"redis set@{depth}", redis, set_, lambda msg: b"+OK\r\n", depth),
        Workload(f"redis mget10@{depth}", redis, mget, _redis_values, depth),
        Workload(f"memcache get@{depth}", memcache, mc_get, _memcache_value, depth),
        Workload(f"memcache set@{depth}", memcache, mc_set, lambda msg: b"STORED\r\n", depth),
    ]


def measure(work: Workload, router: Router) -> dict[str, float]:
    """Blocks per request: framed, split (multi-key), replies framed, and all
    the request holds once completed (its record, bytes and reply)."""
    protocol = work.protocol
    splitter = PROTOCOLS[protocol]
    requests_framer: Framer[Any] = Framer(protocol.RequestParser())
    reply_framer: Framer[bytes] = Framer(protocol.ReplyParser(), replies=True)
    n = work.depth
    gc.collect()
    gc.disable()
    try:
        start = sys.getallocatedblocks()
        msgs = requests_framer.feed(work.requests)
        framed = sys.getallocatedblocks()
        assert len(msgs) == n, (work.name, len(msgs))
        sent = [
            frag
            for msg in msgs
            for frag in (
                [f for _, f in splitter.fragment(msg, router.index_of)] if msg.keys else [msg]
            )
        ]
        split = sys.getallocatedblocks()
        wire = b"".join(map(work.reply, sent))
        before_replies = sys.getallocatedblocks()
        replies = reply_framer.feed(wire)
        replied = sys.getallocatedblocks()
        assert len(replies) == len(sent), (work.name, len(replies), len(sent))
        for msg, reply in zip(sent, replies, strict=True):
            complete(msg, reply)
        assert all(m.done for m in msgs)
        del sent, replies, wire
        completed = sys.getallocatedblocks()
    finally:
        gc.enable()
    return {
        "framed": (framed - start) / n,
        "split": (split - framed) / n,
        "replies": (replied - before_replies) / n,
        "completed": (completed - start) / n,
    }


def main() -> int:
    router = _router()
    print("live blocks per request (sys.getallocatedblocks), pure-Python paths where no C:")
    print(f"{'workload':<20} {'framed':>7} {'split':>6} {'replies':>8} {'in all':>7}")
    for depth in (1, 16):
        for work in workloads(depth):
            measure(work, router)  # warm caches (interned names, method caches)
            f = measure(work, router)
            print(
                f"{work.name:<20} {f['framed']:>7.1f} {f['split']:>6.1f} "
                f"{f['replies']:>8.1f} {f['completed']:>7.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
