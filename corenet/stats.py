"""nutcracker-compatible stats: one JSON object per TCP connection.

The layout is nutcracker's, key for key, so existing exporters and
dashboards keep working: a header, then one object per pool holding the
pool's counters and one object per server (by server name).  Unlike
nutcracker, whose figures are a snapshot aggregated every ``-i`` ms, the
numbers are read live when a client connects.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

import attrs

from corenet.conn import Conn, make_socket
from corenet.config import ListenAddress
from corenet.event import EV_READ

if TYPE_CHECKING:
    from corenet.core import Loop
    from corenet.pool import Pool

__all__ = ["POOL_STATS", "SERVER_STATS", "StatsServer", "snapshot"]

# name -> (type, description), in nutcracker's order, for -D.
POOL_STATS: dict[str, tuple[str, str]] = {
    "client_eof": ("counter", "# eof on client connections"),
    "client_err": ("counter", "# errors on client connections"),
    "client_connections": ("gauge", "# active client connections"),
    "server_ejects": ("counter", "# times backend server was ejected"),
    "forward_error": ("counter", "# times we encountered a forwarding error"),
    "fragments": ("counter", "# fragments created from a multi-vector request"),
}
SERVER_STATS: dict[str, tuple[str, str]] = {
    "server_eof": ("counter", "# eof on server connections"),
    "server_err": ("counter", "# errors on server connections"),
    "server_timedout": ("counter", "# timeouts on server connections"),
    "server_connections": ("gauge", "# active server connections"),
    "server_ejected_at": ("timestamp", "timestamp when server was ejected in usec since epoch"),
    "requests": ("counter", "# requests"),
    "request_bytes": ("counter", "total request bytes"),
    "responses": ("counter", "# responses"),
    "response_bytes": ("counter", "total response bytes"),
    "in_queue": ("gauge", "# requests in incoming queue"),
    "in_queue_bytes": ("gauge", "current request bytes in incoming queue"),
    "out_queue": ("gauge", "# requests in outgoing queue"),
    "out_queue_bytes": ("gauge", "current request bytes in outgoing queue"),
}


def snapshot(pools: list[Pool], *, started: float, version: str, counters: dict[str, int]) -> dict[str, Any]:
    """Return the stats object nutcracker would print, with live figures."""
    now = time.time()
    out: dict[str, Any] = {
        "service": "nutcracker",
        "source": socket.gethostname(),
        "version": version,
        "uptime": int(now - started),
        "timestamp": int(now),
        "total_connections": counters.get("total_connections", 0),
        "curr_connections": counters.get("curr_connections", 0),
    }
    for pool in pools:
        entry: dict[str, Any] = attrs.asdict(pool.stats)
        for server in pool.servers:
            figures: dict[str, Any] = attrs.asdict(server.stats)
            iq, iqb, oq, oqb = server.queues()
            figures.update(in_queue=iq, in_queue_bytes=iqb, out_queue=oq, out_queue_bytes=oqb)
            entry[server.name] = figures
        out[pool.name] = entry
    return out


class _StatsClient(Conn):
    kind = "stats"

    def handle_read(self) -> None:
        try:
            if not self.sock.recv(4096):
                self.close()
        except BlockingIOError:
            pass
        except OSError:
            self.close()

    def output_drained(self) -> None:
        self.close()


class StatsServer(Conn):
    """Answers every connection with one JSON stats object, then closes it."""

    kind = "stats-listener"

    def __init__(self, loop: Loop, sock: socket.socket, pools: list[Pool], started: float, version: str) -> None:
        super().__init__(loop, sock)
        self.pools = pools
        self.started = started
        self.version = version

    @classmethod
    def listen(cls, loop: Loop, host: str, port: int, pools: list[Pool], version: str) -> StatsServer:
        sock = make_socket(ListenAddress(host=host, port=port))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        server = cls(loop, sock, pools, time.time(), version)
        loop.add(server.fd, server, EV_READ)
        server._mask = EV_READ
        return server

    def counters(self) -> dict[str, int]:
        clients = sum(len(p.clients) for p in self.pools)
        servers = sum(s.stats.server_connections for p in self.pools for s in p.servers)
        total = sum(p.total_clients for p in self.pools) + sum(
            s.total_connections for p in self.pools for s in p.servers
        )
        return {"curr_connections": clients + servers + len(self.pools), "total_connections": total}

    def handle_read(self) -> None:
        for _ in range(16):
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            body = json.dumps(
                snapshot(self.pools, started=self.started, version=self.version, counters=self.counters()),
                separators=(", ", ":"),
            ).encode()
            client = _StatsClient(self.loop, sock)
            self.loop.add(client.fd, client, EV_READ)
            client._mask = EV_READ
            client.send_bytes(body + b"\n")
            if client._unsent is None:
                client.close()
