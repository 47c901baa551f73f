"""Keyless commands about the whole keyspace, over every server of a pool.

* ``DBSIZE``: the sum over the servers.
* ``KEYS pattern``: every server's keys, one array (servers in pool order).
* ``RANDOMKEY``: the first server's key that is not nil, else nil.
* ``SCRIPT LOAD``: loaded on every server (so ``EVALSHA`` works for keys on
  any of them); the SHA1, which every server computes alike.
  ``SCRIPT EXISTS``: 1 for a script only if every server has it.
  ``SCRIPT FLUSH``: on every server.
* ``FUNCTION LOAD``, ``DELETE``, ``FLUSH``: on every server (so ``FCALL``
  works for keys on any of them); ``LOAD`` answers the library name, which
  every server answers alike.  ``FUNCTION LIST``: the servers' list when
  they all answer the same, else ``-ERR Protocol error`` (libraries were
  loaded on some servers directly).
* ``INFO [section ...]``: one reply, as one Redis, with the proxy's own
  process, client and counter fields from ``msg.client.facts()`` (see
  ``_info``).
* ``FLUSHDB`` / ``FLUSHALL`` ``[ASYNC|SYNC]``: on every server; ``+OK``
  when every server said so (``deny_commands`` refuses them, like any
  command, before they reach here).
* A command the pool's ``redis_commands`` routes ``every``: the servers'
  answer when they all give the same one, else ``-ERR Protocol error``.
* ``SCAN cursor [MATCH p] [COUNT n] [TYPE t]``: one server at a time.  The
  proxy's cursor is ``server_cursor * servers + index``: it names the server
  (``index``, 0 first) and that server's own cursor.  When a server's scan
  ends (its cursor 0) the next cursor starts the next server; after the last
  server it is 0, so iterating to 0 visits every live server once, and
  Redis's guarantees hold per server (every key present for the whole scan
  is returned at least once).  While servers are ejected or a reload changes
  them, the cursor may name another server: a scan then can skip or repeat
  keys, like a Redis scan across a resize cannot.

A server that fails (an error reply, refused connection, timeout) fails the
whole command with its error, in server order, never a partial answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.msg import Msg
from corenet.protocols.redis._fanout import _failed, _merge_ok, _merge_sum, _split_array
from corenet.protocols.redis._info import merge_info
from corenet.protocols.redis._resp import encode_command

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.protocols.redis._commands import Command

__all__ = ["fragment_every", "next_cursor", "split_cursor"]


def split_cursor(cursor: int, servers: int) -> tuple[int, int]:
    """``(server index, that server's cursor)`` of a proxy cursor."""
    return cursor % servers, cursor // servers


def next_cursor(index: int, server_cursor: int, servers: int) -> int:
    """The proxy cursor after server ``index`` answered ``server_cursor``."""
    if server_cursor:
        return server_cursor * servers + index
    return index + 1 if index + 1 < servers else 0


def fragment_every(msg: Msg, servers: int) -> Sequence[tuple[int, Msg]]:
    cmd, args = msg.info
    if cmd.name == b"scan":
        index, server_cursor = split_cursor(int(args[1]), servers)
        frag = Msg(encode_command([args[0], b"%d" % server_cursor, *args[2:]]), 0)
        frag.info = (index, servers)
        return msg.split_into([(index, frag)], _merge_scan)
    return msg.split_into(
        [(index, Msg(msg.data, 0)) for index in range(servers)], _merge_for(cmd, args)
    )


def _merge_for(cmd: Command, args: list[bytes]) -> Callable[[Msg], bytes]:
    merge = _MERGES.get(cmd.name)
    if merge is not None:
        return merge
    if cmd.name in (b"pubsub", b"script", b"function"):
        sub = args[1].lower()
        if cmd.name == b"pubsub":
            return _PUBSUB_MERGES[sub]
        if sub in (b"load", b"list"):
            return _merge_same
        if sub == b"exists":
            return _merge_all_have
        return _merge_ok  # flush, delete
    # A command the pool's redis_commands sends to every server: one
    # answer only when every server gives it.
    return _merge_same


def _replies(msg: Msg) -> list[bytes]:
    assert msg.frags is not None
    return [frag.reply or b"" for frag in msg.frags]


def _merge_info(msg: Msg) -> bytes:
    # The application's pool facts (corenet.protocol.POOL_FACTS), taken now,
    # once per INFO: nothing on the data path.
    facts = getattr(msg.client, "facts", None)
    return merge_info(_replies(msg), facts() if facts is not None else None)


def _merge_concat(msg: Msg) -> bytes:
    elements: list[bytes] = []
    for reply in _replies(msg):
        part = _split_array(reply)
        if part is None:
            return _failed(reply)
        elements += part
    return b"*%d\r\n" % len(elements) + b"".join(elements)


def _merge_first_key(msg: Msg) -> bytes:
    replies = _replies(msg)
    for reply in replies:
        if reply[:1] in (b"-", b"!"):
            return reply
    for reply in replies:
        if reply[:1] == b"$" and reply != b"$-1\r\n":
            return reply
    return replies[0]  # nil, as this client's protocol says it ($-1 or _)


def _merge_same(msg: Msg) -> bytes:
    replies = _replies(msg)
    for reply in replies:
        if reply[:1] in (b"-", b"!"):
            return reply
    return replies[0] if all(r == replies[0] for r in replies) else _failed(b"")


def _merge_all_have(msg: Msg) -> bytes:
    answers: list[list[bytes]] = []
    for reply in _replies(msg):
        part = _split_array(reply)
        if part is None:
            return _failed(reply)
        answers.append(part)
    if len({len(a) for a in answers}) != 1:
        return _failed(b"")
    have = [
        b":1\r\n" if all(a[i] == b":1\r\n" for a in answers) else b":0\r\n"
        for i in range(len(answers[0]))
    ]
    return b"*%d\r\n" % len(have) + b"".join(have)


def _merge_most(msg: Msg) -> bytes:
    # PUBSUB NUMPAT: every server holds every pattern the proxy subscribed.
    most = 0
    for reply in _replies(msg):
        if reply[:1] != b":":
            return _failed(reply)
        most = max(most, int(reply[1:-2]))
    return b":%d\r\n" % most


def _merge_counts(msg: Msg) -> bytes:
    # PUBSUB NUMSUB ch...: a channel's subscribers are on the server it lives
    # on, the others count 0 for it; the sum is one Redis's figure.
    totals: list[int] = []
    names: list[bytes] = []
    for reply in _replies(msg):
        part = _split_array(reply)
        if part is None or len(part) % 2:
            return _failed(reply)
        counts = [int(c[1:-2]) for c in part[1::2]]
        if not names:
            names, totals = part[0::2], counts
        elif len(counts) != len(totals):
            return _failed(reply)
        else:
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
    pairs = b"".join(name + b":%d\r\n" % total for name, total in zip(names, totals, strict=True))
    return b"*%d\r\n" % (2 * len(names)) + pairs


_MERGES: dict[bytes, Callable[[Msg], bytes]] = {
    b"dbsize": _merge_sum,
    b"keys": _merge_concat,
    b"randomkey": _merge_first_key,
    b"info": _merge_info,
    b"flushdb": _merge_ok,
    b"flushall": _merge_ok,
}
_PUBSUB_MERGES: dict[bytes, Callable[[Msg], bytes]] = {
    b"channels": _merge_concat,  # a channel lives on one server: no duplicates
    b"shardchannels": _merge_concat,
    b"numpat": _merge_most,
    b"numsub": _merge_counts,
    b"shardnumsub": _merge_counts,
}


def _merge_scan(msg: Msg) -> bytes:
    assert msg.frags is not None
    (frag,) = msg.frags
    reply = frag.reply or b""
    index, servers = frag.info
    parts = _split_array(reply)
    if parts is None or len(parts) != 2 or parts[0][:1] != b"$":
        return _failed(reply)
    cursor_text = parts[0].split(b"\r\n")[1]
    if not cursor_text.isdigit():
        return _failed(reply)
    cursor = b"%d" % next_cursor(index, int(cursor_text), servers)
    return b"*2\r\n$%d\r\n%s\r\n" % (len(cursor), cursor) + parts[1]
