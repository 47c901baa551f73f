"""Active health checks: a server that stops answering leaves before clients pay.

With ``health_check_interval`` set, every interval each server of the pool
gets the protocol's ``health_check`` request (Redis ``PING``, memcache
``version``) on a connection of its own, after the same set-up requests as
any server connection (AUTH, SELECT).  A check that fails to connect, or
gets no reply within ``health_check_timeout``, is a failure like any
other, so with ``auto_eject_hosts`` the server is ejected after
``server_failure_limit`` of them, as nutcracker's passive ejection does
with client requests.  A check answered while the server is ejected brings
it back at once, instead of after ``server_retry_timeout`` with client
traffic as the probe.  Checks are not counted in the nutcracker figures
(``requests``, ``responses``); their connection is one of
``server_connections`` and its failures count in ``server_err`` and
``server_timedout``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from corenet.msg import Msg
from corenet.proxy.counters import ServerStats
from corenet.proxy.server import ServerConn

if TYPE_CHECKING:
    from collections.abc import Iterable

    from corenet.loop import Loop
    from corenet.proxy.pool import Pool, Server
    from corenet.timers import TimerHandle

__all__ = ["HealthChecks", "start_checks"]

logger = logging.getLogger("corenet.health")


class HealthChecks:
    """The checks of one pool's servers."""

    def __init__(self, loop: Loop, pool: Pool) -> None:
        self.loop = loop
        self.pool = pool
        assert pool.config.health_check_interval is not None
        self.interval = pool.config.health_check_interval / 1000
        self.timeout = pool.config.health_check_timeout / 1000
        self.request: bytes = pool.protocol.health_check  # type: ignore[attr-defined]
        self._probes: dict[str, tuple[ServerConn, Msg]] = {}
        self._timer: TimerHandle | None = loop.timers.call_later(0, self._tick)

    def _tick(self) -> None:
        self._timer = self.loop.timers.call_later(self.interval, self._tick)
        servers = {server.name: server for server in self.pool.servers}
        for name in list(self._probes):
            if name not in servers:  # removed by a reload
                self._probes.pop(name)[0].close()
        for server in servers.values():
            self._check(server)

    def _check(self, server: Server) -> None:
        probe = self._probes.get(server.name)
        conn: ServerConn | None = None
        if probe is not None:
            conn, last = probe
            if last.done:
                if server.ejected:
                    self._returned(server)
            elif not conn.closed:
                return  # still waiting; the connection's timeout decides
        if conn is None or conn.closed or conn.server is not server or conn.retiring:
            if conn is not None:
                conn.close()
            conn = ServerConn.connect(
                self.loop, self.pool, server, self.pool.protocol.new_reply_parser()
            )
            conn.stats = ServerStats()  # keep the checks out of nutcracker's figures
            conn.timeout = self.timeout
        msg = Msg(self.request, len(self.request))
        conn.enqueue(msg)
        self._probes[server.name] = (conn, msg)

    def _returned(self, server: Server) -> None:
        logger.warning(
            "pool %s: server %s answers health checks again: back in the distribution",
            self.pool.name,
            server.name,
        )
        server.ejected = False
        server.failures = 0
        server.connect_after = 0.0
        self.pool.rebuild()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for conn, _ in self._probes.values():
            conn.close()
        self._probes.clear()


def start_checks(loop: Loop, pools: Iterable[Pool]) -> list[HealthChecks]:
    """Started checks for every pool that asks for them and whose protocol has one."""
    started = []
    for pool in pools:
        if pool.config.health_check_interval is None:
            continue
        if getattr(pool.protocol, "health_check", None) is None:
            logger.warning(
                "pool %s: protocol %s has no health check; health_check_interval ignored",
                pool.name,
                pool.protocol.name,
            )
            continue
        started.append(HealthChecks(loop, pool))
    return started
