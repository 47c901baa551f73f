"""nutcracker-compatible stats: one JSON object per TCP connection.

The output is nutcracker 0.5.0's, byte for byte in layout, so existing
exporters and dashboards keep working (checked against Debian's
``nutcracker`` for the same config and workload):

* a header: ``service`` ("nutcracker"), ``source`` (the host name),
  ``version``, ``uptime`` and ``timestamp`` (whole seconds),
  ``total_connections`` and ``curr_connections``;
* one object per pool, pools ordered by name length, then name bytes (the
  order nutcracker's config validation sorts them in, whatever the file
  says), holding the six pool figures and then one object per server, in
  the pool's server order; a pool with TLS adds corenet's own figures after
  nutcracker's (``POOL_TLS_STATS`` after the six, ``SERVER_TLS_STATS`` after
  a server's 13), and so does a Redis Cluster pool (``POOL_CLUSTER_STATS``,
  and ``slots``/``replicas`` per master), so a plain pool's layout stays
  nutcracker's exactly;
* every value an integer except the three header strings; the separators
  are nutcracker's (``"key":value, ``, ``"name": {``, ``},"next"``), and
  the object ends with ``}`` and a newline.

``version`` is ``"0.5.0"``, the nutcracker release whose behaviour and
layout corenet reproduces: exporters parse it as nutcracker's version (some
gate features on it), so corenet's own version is reported elsewhere (``-V``,
the start-up log line, and ``corenet_build_info`` on ``/metrics``).

``total_connections`` and ``curr_connections`` count what nutcracker counts
(every ``struct conn`` it allocates, see ``_conn_get``/``conn_put`` in
nc_connection.c): pool listeners, client connections and server
connections (a server connection counts from the moment its connect
starts), but not the stats connections themselves.

As nutcracker serves a snapshot aggregated every ``-i`` ms, the stats port
serves prepared bytes: the snapshot is built when a reader connects and the
one served is older than ``-i`` (``StatsServer.interval``), so any number of
readers cost the data loop one build per interval, not one each (``-i 0``
builds one per reader).  The data path only bumps integer attributes; all
the summing (queue lengths, connection counts) happens at build time.
"""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING, Any

import attrs

from corenet.event import EV_READ
from corenet.net import ListenAddress, Listener
from corenet.proxy.naming import sort_key
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from corenet.loop import Loop
    from corenet.proxy.pool import Pool, Server

__all__ = [
    "HEADER_FIELDS",
    "NUTCRACKER_VERSION",
    "POOL_STATS",
    "POOL_CLUSTER_STATS",
    "POOL_TLS_STATS",
    "SERVER_STATS",
    "SERVER_TLS_STATS",
    "StatsServer",
    "connection_counts",
    "encode",
    "merge_snapshots",
    "pool_order",
    "server_figures",
    "snapshot",
]

BACKLOG = 4096
"""The stats port's listen backlog (nutcracker's), so bursts of readers queue."""

NUTCRACKER_VERSION = "0.5.0"
"""What the ``version`` header field says (see the module docstring)."""

HEADER_FIELDS = (
    "service",
    "source",
    "version",
    "uptime",
    "timestamp",
    "total_connections",
    "curr_connections",
)

# name -> (type, description), in nutcracker's order (nc_stats.h), for -D
# and the Prometheus help texts.
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

# corenet's own figures, reported only where TLS is on (after nutcracker's,
# so a plain pool's layout is nutcracker's exactly); not in -D, which is
# nutcracker's text.
POOL_TLS_STATS: dict[str, tuple[str, str]] = {
    "tls_handshake_failures": ("counter", "# failed TLS handshakes with clients"),
    "tls_connections": ("gauge", "# client connections with TLS established"),
}
POOL_CLUSTER_STATS: dict[str, tuple[str, str]] = {
    "cluster_moved": ("counter", "# MOVED redirections followed"),
    "cluster_ask": ("counter", "# ASK redirections followed"),
    "cluster_retries": (
        "counter",
        "# requests sent again (TRYAGAIN, CLUSTERDOWN, node unreachable)",
    ),
    "cluster_refreshes": ("counter", "# slot maps read from the cluster"),
    "cluster_refresh_errors": ("counter", "# slot map queries unanswered or refused"),
}
"""corenet's own figures of a Redis Cluster pool (after nutcracker's)."""
SERVER_TLS_STATS: dict[str, tuple[str, str]] = {
    "tls_handshake_failures": ("counter", "# failed TLS handshakes with the server"),
    "tls_connections": ("gauge", "# server connections with TLS established"),
}

_POOL_COUNTERS = tuple(POOL_STATS)
# Server figures kept on ServerStats; the four queue gauges are summed here.
_SERVER_COUNTERS = tuple(name for name in SERVER_STATS if "queue" not in name)


def pool_order(pools: Iterable[Pool]) -> list[Pool]:
    """``pools`` in nutcracker's order: by name length, then name bytes."""
    return sorted(pools, key=lambda pool: sort_key(pool.name))


def server_figures(server: Server) -> dict[str, int | str]:
    """The 13 nutcracker figures of one server, in nutcracker's order, then
    the ``SERVER_TLS_STATS`` if its pool has ``server_tls``; a server that
    Sentinel places also says where it is and how often it moved."""
    stats = server.stats
    figures = {name: int(getattr(stats, name)) for name in _SERVER_COUNTERS}
    iq, iqb, oq, oqb = server.queues()
    figures.update(in_queue=iq, in_queue_bytes=iqb, out_queue=oq, out_queue_bytes=oqb)
    out: dict[str, int | str] = {name: figures[name] for name in SERVER_STATS}
    if server.pool.tls.connect is not None:
        out.update({name: int(getattr(stats, name)) for name in SERVER_TLS_STATS})
    if server.pool.config.redis_cluster:
        out["slots"] = server.slots
        out["replicas"] = ",".join(str(r.config.address) for r in server.replicas)
    if server.pool.config.sentinels:
        out["address"] = str(server.config.address)
        out["sentinel_switches"] = server.switches
        out["replicas"] = ",".join(str(r.config.address) for r in server.replicas)
    return out


def connection_counts(pools: Iterable[Pool], listeners: int) -> tuple[int, int]:
    """``(total_connections, curr_connections)`` as nutcracker counts them.

    Args:
        pools: every pool of the process.
        listeners: how many pool listeners are open (each counts as one
            connection in nutcracker, from start-up on).
    """
    total = curr = listeners
    for pool in pools:
        total += pool.total_clients
        curr += len(pool.clients)
        for server in pool.servers:
            total += server.total_connections
            curr += len(server.conns)
    return total, curr


def snapshot(
    pools: Iterable[Pool],
    *,
    started: float,
    version: str = NUTCRACKER_VERSION,
    counters: Mapping[str, int],
    now: float | None = None,
    extra: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Return the stats object nutcracker would print, with live figures.

    Args:
        pools: every pool of the process (any order).
        started: the process start, in ``time.time()`` seconds.
        version: the ``version`` header value.
        counters: ``total_connections`` and ``curr_connections``.
        now: the current ``time.time()`` (default: now).
        extra: corenet's own top-level figures (the reload counters), after
            nutcracker's header: scalars, so consumers that take every
            object-valued key for a pool see nothing new.

    Returns:
        An ordered dict: the header, then each pool in nutcracker's order.
    """
    now = time.time() if now is None else now
    out: dict[str, Any] = {
        "service": "nutcracker",
        "source": socket.gethostname(),
        "version": version,
        # nutcracker subtracts whole seconds: time(NULL) - start_ts.
        "uptime": int(now) - int(started),
        "timestamp": int(now),
        "total_connections": int(counters.get("total_connections", 0)),
        "curr_connections": int(counters.get("curr_connections", 0)),
    }
    if extra:
        out.update(extra)
    for pool in pool_order(pools):
        stats = pool.stats
        entry: dict[str, Any] = {name: int(getattr(stats, name)) for name in _POOL_COUNTERS}
        if pool.tls.accept is not None:
            entry.update({name: int(getattr(stats, name)) for name in POOL_TLS_STATS})
        if pool.cluster is not None:
            entry.update({name: int(getattr(stats, name)) for name in POOL_CLUSTER_STATS})
        for server in pool.servers:
            entry[server.name] = server_figures(server)
        out[pool.name] = entry
    return out


_HEADER_TEXT = ("service", "source", "version")
# Server figures combined by taking the largest value instead of the sum.
# (Each worker follows Sentinel itself: its switches are the same switches.)
# (and each follows the cluster's map: its slots are the same slots.)
_MAX_FIGURES = frozenset({"server_ejected_at", "sentinel_switches", "slots"})


def _merge_into(out: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            inner = out.get(key)
            if not isinstance(inner, dict):
                inner = out[key] = {}
            _merge_into(inner, value)
        elif isinstance(value, str):
            out.setdefault(key, value)
        elif key in _MAX_FIGURES:
            out[key] = max(int(out.get(key, 0)), int(value))
        else:
            out[key] = int(out.get(key, 0)) + int(value)


def merge_snapshots(
    snapshots: Iterable[Mapping[str, Any]],
    *,
    started: float | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Combine the :func:`snapshot` of several worker processes into one.

    Counters and gauges (``client_connections``, ``server_connections``,
    the queues, ``total_connections``, ``curr_connections``) are summed;
    ``server_ejected_at`` is the latest of the workers'; the header strings
    come from the first snapshot.  Keys keep their first-seen order, so
    snapshots of the same configuration merge into nutcracker's layout.

    Args:
        snapshots: the workers' stats objects.
        started: the supervisor's start, ``time.time()`` seconds; when given,
            ``uptime`` and ``timestamp`` are the supervisor's (else the
            largest of the workers').
        now: the current ``time.time()`` (default: now), with ``started``.

    Returns:
        One stats object, with the header fields first.
    """
    parts = list(snapshots)
    out: dict[str, Any] = {}
    for name in HEADER_FIELDS:
        if name in _HEADER_TEXT:
            default = {"service": "nutcracker", "version": NUTCRACKER_VERSION}.get(name)
            found = next((str(p[name]) for p in parts if name in p), None)
            out[name] = found if found is not None else (default or socket.gethostname())
        elif name in ("uptime", "timestamp"):
            out[name] = max((int(p.get(name, 0)) for p in parts), default=0)
        else:
            out[name] = sum(int(p.get(name, 0)) for p in parts)
    if started is not None:
        when = time.time() if now is None else now
        out["uptime"] = int(when) - int(started)
        out["timestamp"] = int(when)
    for part in parts:
        _merge_into(out, {k: v for k, v in part.items() if k not in HEADER_FIELDS})
    return out


def _key(name: str) -> str:
    # nutcracker writes names unescaped; escaping keeps odd names valid JSON
    # and is byte-identical for every ordinary name.
    return json.dumps(name, ensure_ascii=False)


def encode(stats: Mapping[str, Any]) -> bytes:
    """Serialise a :func:`snapshot` exactly as nutcracker lays it out.

    nutcracker appends ``"key":value, `` per figure and ``"name": {`` per
    nesting level, then closes a level by turning the trailing ``, `` into
    ``},`` (or ``},`` into ``}},``) and the whole object by turning the
    last byte into ``}`` plus a newline.  The same steps run here.
    """
    buf = bytearray(b"{")

    def add(key: str, value: Any) -> None:
        text = _key(value) if isinstance(value, str) else str(int(value))
        buf.extend(f"{_key(key)}:{text}, ".encode())

    def end_nesting() -> None:
        if buf[-2:] == b", ":
            buf[-2:] = b"},"
        else:  # "}," after a nested object
            buf[-1:] = b"},"

    def add_object(name: str, body: Mapping[str, Any]) -> None:
        buf.extend(f"{_key(name)}: {{".encode())
        for key, value in body.items():
            if isinstance(value, dict):
                add_object(key, value)
            else:
                add(key, value)
        end_nesting()

    for key, value in stats.items():
        if isinstance(value, dict):
            add_object(key, value)
        else:
            add(key, value)
    buf[-1:] = b"}\n"
    return bytes(buf)


class _StatsClient(Stream):
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


@attrs.define(eq=False)
class StatsServer:
    """Answers every connection with one JSON stats object, then closes it.

    Args:
        loop: the loop to serve on.
        pools: the pools to report.
        started: the process start, in ``time.time()`` seconds.
        version: the ``version`` header value.
        listeners: returns how many pool listeners are open (nutcracker
            counts them as connections); default: one per pool.
        reloads: returns the reload figures shown at the top level.
        interval: the longest a built snapshot is served, in seconds (``-i``).
    """

    loop: Loop
    pools: list[Pool]
    started: float
    version: str = NUTCRACKER_VERSION
    _listeners: Callable[[], int] | None = None
    _reloads: Callable[[], Mapping[str, int]] | None = None
    interval: float = 0.0
    listener: Listener | None = attrs.field(default=None, init=False)
    _prepared: bytes = attrs.field(default=b"", init=False)
    _prepared_at: float = attrs.field(default=0.0, init=False)

    @classmethod
    def listen(
        cls,
        loop: Loop,
        host: str,
        port: int,
        pools: list[Pool],
        version: str = NUTCRACKER_VERSION,
        *,
        started: float | None = None,
        listeners: Callable[[], int] | None = None,
        reloads: Callable[[], Mapping[str, int]] | None = None,
        interval: float = 0.0,
    ) -> StatsServer:
        """Bind ``host:port`` and serve stats on ``loop``.

        Raises:
            OSError: the address cannot be bound.
        """
        server = cls(
            loop,
            pools,
            time.time() if started is None else started,
            version,
            listeners,
            reloads,
            interval,
        )
        address = ListenAddress(host=host, port=port)
        try:
            server.listener = Listener.listen(
                loop, address, server.accept, backlog=BACKLOG, name="stats"
            )
        except OSError as exc:
            raise OSError(
                exc.errno, f"stats: cannot listen on {address}: {exc.strerror or exc}"
            ) from exc
        return server

    def counters(self) -> dict[str, int]:
        listeners = len(self.pools) if self._listeners is None else self._listeners()
        total, curr = connection_counts(self.pools, listeners)
        return {"total_connections": total, "curr_connections": curr}

    def render(self) -> bytes:
        """The stats object as sent to a client."""
        stats = snapshot(
            self.pools,
            started=self.started,
            version=self.version,
            counters=self.counters(),
            extra=self._reloads() if self._reloads is not None else None,
        )
        return encode(stats)

    def prepared(self) -> bytes:
        """The snapshot to serve: :meth:`render`'s bytes, built again only
        once they are older than :attr:`interval`."""
        now = self.loop.now
        if not self._prepared or now - self._prepared_at >= self.interval:
            self._prepared = self.render()
            self._prepared_at = now
        return self._prepared

    def accept(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        client = _StatsClient(self.loop, sock)
        client.register(EV_READ)
        client.send_bytes(self.prepared())
        if not client.writing:
            client.close()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
