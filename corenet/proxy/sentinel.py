"""Following Redis Sentinel: each server of a pool is a master Sentinel watches.

A pool with ``sentinels:`` asks them where each of its servers' masters is
(``SENTINEL get-master-addr-by-name``): once at start, before accepting
clients (:func:`ask_masters`, blocking, a second per sentinel at most), then
every ``ASK_EVERY`` seconds on the loop, so a missed message is repaired.
Between those, :class:`SentinelWatch` stays subscribed to ``+switch-master``
on one sentinel at a time, moving on to the next when that one goes away
(with back-off).  On a switch the pool moves the server to the new address
under the same name, so its place on the ring, and the placement of every
key, never changes (:meth:`corenet.proxy.pool.Pool.move_server`).

Replies are read with hiredis; a sentinel is only ever sent a handful of
fixed commands.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING, Any

import hiredis

from corenet.net import Connection, ListenAddress, make_socket
from corenet.proxy.control import read_replies, redis_command

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from corenet.loop import Loop
    from corenet.proxy.config import PoolConfig
    from corenet.proxy.pool import Pool
    from corenet.timers import TimerHandle

__all__ = [
    "ASK_EVERY",
    "SentinelWatch",
    "ask_masters",
    "master_names",
    "resolve_at_start",
    "watches",
]

logger = logging.getLogger("corenet.sentinel")

ASK_EVERY = 5.0
"""Seconds between two rounds of asking where every master is."""
RECONNECT_MIN = 0.1
RECONNECT_MAX = 2.0
SWITCH_CHANNEL = b"+switch-master"


def master_names(config: PoolConfig) -> dict[str, str]:
    """Server name -> the master name Sentinel knows (``sentinel_masters``, else the name)."""
    return {s.name: config.sentinel_masters.get(s.name, s.name) for s in config.servers}


def _queries(config: PoolConfig, masters: Iterable[str]) -> list[bytes]:
    requests = []
    if config.sentinel_auth is not None:
        requests.append(redis_command(b"AUTH", config.sentinel_auth.encode()))
    requests.extend(
        redis_command(b"SENTINEL", b"get-master-addr-by-name", master.encode())
        for master in masters
    )
    return requests


def _address(reply: Any) -> ListenAddress | None:
    """A ``get-master-addr-by-name`` reply as an address (None: unknown master)."""
    if isinstance(reply, list) and len(reply) == 2:
        try:
            return ListenAddress(host=reply[0].decode(), port=int(reply[1]))
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def ask_masters(config: PoolConfig, timeout: float = 1.0) -> dict[str, ListenAddress] | None:
    """Where each master of ``config`` is, from the first sentinel that answers.

    Blocking (used before the loop runs, and by ``--explain``).  None when
    no sentinel answered; a master a sentinel does not know is left out.
    """
    names = master_names(config)
    masters = sorted(set(names.values()))
    requests = _queries(config, masters)
    for sentinel in config.sentinels:
        try:
            with socket.create_connection((sentinel.host, sentinel.port), timeout=timeout) as sock:
                sock.sendall(b"".join(requests))
                replies = read_replies(sock, len(requests))
        except OSError as exc:
            logger.warning("pool %s: sentinel %s: %s", config.name, sentinel, exc)
            continue
        if config.sentinel_auth is not None:
            auth, replies = replies[0], replies[1:]
            if isinstance(auth, hiredis.ReplyError):
                logger.warning("pool %s: sentinel %s refused AUTH", config.name, sentinel)
                continue
        where = dict(zip(masters, map(_address, replies), strict=True))
        return {server: addr for server, m in names.items() if (addr := where[m]) is not None}
    return None


def _replica_addresses(reply: Any) -> list[ListenAddress]:
    """The usable replicas in a ``SENTINEL replicas`` reply, in Sentinel's order."""
    found: list[ListenAddress] = []
    if not isinstance(reply, list):
        return found
    for entry in reply:
        if not isinstance(entry, list):
            continue
        fields = dict(zip(entry[::2], entry[1::2], strict=False))
        flags = set(fields.get(b"flags", b"").split(b","))
        if flags & {b"s_down", b"o_down", b"disconnected"}:
            continue
        if fields.get(b"master-link-status", b"ok") != b"ok":
            continue
        try:
            found.append(ListenAddress(host=fields[b"ip"].decode(), port=int(fields[b"port"])))
        except (KeyError, ValueError, UnicodeDecodeError):
            continue
    return found


class _SentinelConn(Connection):
    """One non-blocking connection to a sentinel; each reply goes to ``on_reply``."""

    kind = "sentinel"

    def __init__(
        self,
        loop: Loop,
        address: ListenAddress,
        requests: Sequence[bytes],
        on_reply: Callable[[Any], None],
        on_close: Callable[[_SentinelConn], None],
    ) -> None:
        super().__init__(loop, make_socket(address))
        self.address = address
        self.on_reply = on_reply
        self.on_close = on_close
        self._reader = hiredis.Reader()
        self._requests = b"".join(requests)
        if self.connect_to(address) not in (0, errno.EINPROGRESS, errno.EAGAIN):
            loop.timers.call_later(0, self.close)

    def connection_ready(self) -> None:
        self.send_bytes(self._requests)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while not self.closed and (reply := self._reader.gets()) is not False:
            self.on_reply(reply)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        self.on_close(self)


class SentinelWatch:
    """Keeps ``pool``'s servers on the addresses its sentinels say."""

    def __init__(self, loop: Loop, pool: Pool) -> None:
        self.loop = loop
        self.pool = pool
        config = pool.config
        self.sentinels = list(config.sentinels)
        self.server_of = {master: server for server, master in master_names(config).items()}
        self._next = 0
        self._backoff = 0.0
        self._sub: _SentinelConn | None = None
        self._ask: _SentinelConn | None = None
        self._timer: TimerHandle | None = None
        self._ask_timer: TimerHandle | None = None
        self.closed = False

    def start(self) -> None:
        self._subscribe()
        # At once when replicas are read: the start-up answer named masters only.
        first = 0.0 if self.pool.config.read_from != "master" else ASK_EVERY
        self._ask_timer = self.loop.timers.call_later(first, self._ask_round)

    def _sentinel(self) -> ListenAddress:
        address = self.sentinels[self._next % len(self.sentinels)]
        return address

    # -- +switch-master ----------------------------------------------------------

    def _subscribe(self) -> None:
        self._timer = None
        if self.closed:
            return
        config = self.pool.config
        requests = []
        if config.sentinel_auth is not None:
            requests.append(redis_command(b"AUTH", config.sentinel_auth.encode()))
        requests.append(redis_command(b"SUBSCRIBE", SWITCH_CHANNEL))
        try:
            self._sub = _SentinelConn(
                self.loop, self._sentinel(), requests, self._on_message, self._sub_closed
            )
        except OSError as exc:
            logger.warning("pool %s: sentinel %s: %s", self.pool.name, self._sentinel(), exc)
            self._retry()

    def _on_message(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            logger.warning("pool %s: sentinel %s: %s", self.pool.name, self._sentinel(), reply)
            return
        if isinstance(reply, list) and reply[:1] == [b"subscribe"]:
            self._backoff = 0.0  # a working subscription
            logger.info("pool %s: following sentinel %s", self.pool.name, self._sentinel())
            return
        if not (
            isinstance(reply, list)
            and len(reply) == 3
            and reply[:2] == [b"message", SWITCH_CHANNEL]
        ):
            return
        # "<master name> <old ip> <old port> <new ip> <new port>"
        fields = reply[2].split()
        if len(fields) != 5 or not fields[4].isdigit():
            return
        server = self.server_of.get(fields[0].decode("utf-8", "replace"))
        if server is not None:
            self._moved(server, ListenAddress(host=fields[3].decode(), port=int(fields[4])))

    def _sub_closed(self, conn: _SentinelConn) -> None:
        if conn is not self._sub:
            return
        self._sub = None
        if not self.closed:
            logger.warning(
                "pool %s: lost sentinel %s; trying the next", self.pool.name, conn.address
            )
            self._next += 1
            self._retry()

    def _retry(self) -> None:
        self._backoff = min(max(self._backoff * 2, RECONNECT_MIN), RECONNECT_MAX)
        self._timer = self.loop.timers.call_later(self._backoff, self._subscribe)

    # -- asking now and then ---------------------------------------------------------

    def _ask_round(self) -> None:
        self._ask_timer = self.loop.timers.call_later(ASK_EVERY, self._ask_round)
        if self.closed or self._ask is not None:
            return
        config = self.pool.config
        masters = sorted(self.server_of)
        requests = _queries(config, masters)
        reads = config.read_from != "master"
        if reads:
            requests.extend(redis_command(b"SENTINEL", b"replicas", m.encode()) for m in masters)
        replies: list[Any] = []

        def on_reply(reply: Any) -> None:
            replies.append(reply)
            if len(replies) < len(requests):
                return
            answers = replies[1:] if config.sentinel_auth is not None else replies
            for master, answer in zip(masters, answers, strict=False):
                address = _address(answer)
                if address is not None:
                    self._moved(self.server_of[master], address)
            if reads:
                for master, answer in zip(masters, answers[len(masters) :], strict=True):
                    self.pool.set_replicas(self.server_of[master], _replica_addresses(answer))
            if self._ask is not None:
                self._ask.close()

        def on_close(conn: _SentinelConn) -> None:
            self._ask = None

        try:
            self._ask = _SentinelConn(self.loop, self._sentinel(), requests, on_reply, on_close)
        except OSError:
            self._ask = None

    def _moved(self, server_name: str, address: ListenAddress) -> None:
        self.pool.move_server(server_name, address)

    def close(self) -> None:
        self.closed = True
        for timer in (self._timer, self._ask_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._ask_timer = None
        for conn in (self._sub, self._ask):
            if conn is not None:
                conn.close()
        self._sub = self._ask = None


def resolve_at_start(pools: Iterable[Pool]) -> None:
    """Move every sentinel pool's servers to where its sentinels say, before serving."""
    for pool in pools:
        if not pool.config.sentinels:
            continue
        found = ask_masters(pool.config)
        if found is None:
            logger.error(
                "pool %s: no sentinel answered (%s); serving the configured addresses "
                "until one does",
                pool.name,
                ", ".join(str(s) for s in pool.config.sentinels),
            )
            continue
        for server, address in found.items():
            pool.move_server(server, address, switch=False)


def watches(loop: Loop, pools: Iterable[Pool]) -> list[SentinelWatch]:
    """A started watch for every pool that has sentinels."""
    started = []
    for pool in pools:
        if pool.config.sentinels:
            watch = SentinelWatch(loop, pool)
            watch.start()
            started.append(watch)
    return started
