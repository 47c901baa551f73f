"""Prometheus metrics: the nutcracker figures, labelled, plus latency histograms.

``corenet-proxy --metrics-port N`` serves ``GET /metrics`` in the Prometheus
text format (or OpenMetrics, if the scraper asks for it) from the proxy's
own loop (:mod:`corenet._http`).  Nothing here runs on the data path except
:meth:`LatencyHistogram.observe`:

* the counters and gauges are the very integers the stats port reports
  (``PoolStats``/``ServerStats`` attributes the data path already bumps,
  and queue lengths summed at scrape time); :class:`ProxyCollector` reads
  them when Prometheus scrapes, and ``prometheus_client`` only formats them;
* a request's latency is recorded once, when its reply completes, into a
  per-pool :class:`LatencyHistogram`: one ``bisect`` over fixed bucket
  bounds, one list-item increment and one float addition, with no
  allocation and no call into ``prometheus_client``.

Metric names (``pool`` and ``server`` labels; ``server`` is the name the
stats port uses):

========================================  =====================================
nutcracker figure                         Prometheus metric
========================================  =====================================
pool ``X`` (counter)                      ``corenet_pool_X_total{pool}``
``client_connections``                    ``corenet_pool_client_connections{pool}``
server ``server_X`` (counter)             ``corenet_server_X_total{pool,server}``
server ``requests`` etc. (counter)        ``corenet_server_requests_total{...}``
server gauges (``in_queue``...)           ``corenet_server_in_queue{pool,server}``
``server_connections``                    ``corenet_server_connections{...}``
``server_ejected_at`` (usec)              ``corenet_server_ejected_at_seconds{...}``
``total_connections``                     ``corenet_connections_opened_total``
``curr_connections``                      ``corenet_connections``
========================================  =====================================

plus, for pools with TLS, ``corenet_pool_tls_handshake_failures_total{pool}``
and ``corenet_pool_tls_connections{pool}`` (clients, ``tls_cert``),
``corenet_server_tls_handshake_failures_total{pool,server}`` and
``corenet_server_tls_connections{pool,server}`` (servers, ``server_tls``);
``corenet_server_ejected{pool,server}`` (1 while ejected),
``corenet_pool_pinned_connections{pool}`` (dedicated server connections:
transactions, blocking commands, Pub/Sub; docs/redis.md),
for Redis Cluster pools ``corenet_pool_cluster_moved_total{pool}``,
``..._ask_total``, ``..._retries_total``, ``..._refreshes_total``,
``..._refresh_errors_total`` and ``corenet_server_cluster_slots{pool,server}``
(docs/cluster.md),
``corenet_build_info{version,nutcracker_version}``,
``corenet_start_time_seconds``, the ``process_*`` metrics, and
``corenet_pool_request_duration_seconds{pool}``: the time from the loop turn
that read a request to the loop turn that completed its reply, local
replies (``PING``) excluded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from corenet.proxy.http import HttpRequest, HttpResponse, HttpServer
from corenet.proxy.latency import LATENCY_BUCKETS, LatencyHistogram
from corenet.proxy.stats import (
    NUTCRACKER_VERSION,
    POOL_CLUSTER_STATS,
    POOL_STATS,
    POOL_TLS_STATS,
    SERVER_STATS,
    SERVER_TLS_STATS,
    connection_counts,
    pool_order,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    ReloadEndpoint = Callable[[], tuple[bool, bytes]]
    """Reloads the configuration; returns whether it was applied, and a JSON body."""

    from prometheus_client.metrics_core import Metric

    from corenet.loop import Loop
    from corenet.proxy.pool import Pool, Server

__all__ = [
    "LATENCY_BUCKETS",
    "LatencyHistogram",
    "ProxyCollector",
    "build_registry",
    "metrics_handler",
    "serve_metrics",
]


def _help(desc: str) -> str:
    # nutcracker's "#" means "number of".
    return "number of " + desc[2:] if desc.startswith("# ") else desc


def _prom_name(figure: str, *, server: bool) -> str:
    if server:
        return "corenet_server_" + figure.removeprefix("server_")
    return "corenet_pool_" + figure


def _family(
    figure: str, kind: str, desc: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    """The metric family of a counter or gauge figure (``pool`` or ``pool, server`` labels)."""
    name = _prom_name(figure, server=len(labels) > 1)
    if kind == "counter":
        return CounterMetricFamily(name, _help(desc), labels=labels)
    return GaugeMetricFamily(name, _help(desc), labels=labels)


class ProxyCollector(Collector):
    """Reads the live stats objects of every pool when Prometheus scrapes.

    Args:
        pools: the process's pools.
        started: process start, ``time.time()`` seconds.
        version: corenet's version, for ``corenet_build_info``.
        listeners: returns how many pool listeners are open (counted as
            connections, as nutcracker does); default one per pool.
    """

    def __init__(
        self,
        pools: Sequence[Pool],
        *,
        started: float | None = None,
        version: str = "",
        listeners: Callable[[], int] | None = None,
        reloads: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.reloads = reloads
        self.pools = pools  # the proxy's own list: a reload changes it in place
        self.started = time.time() if started is None else started
        self.version = version
        self.listeners = listeners

    def collect(self) -> Iterator[Metric]:
        pools = pool_order(self.pools)
        info = GaugeMetricFamily(
            "corenet_build_info",
            "corenet version, and the nutcracker release whose behaviour it reproduces",
            labels=["version", "nutcracker_version"],
        )
        info.add_metric([self.version, NUTCRACKER_VERSION], 1)
        yield info
        yield GaugeMetricFamily(
            "corenet_start_time_seconds",
            "start time of the process since unix epoch in seconds",
            value=self.started,
        )
        listeners = len(self.pools) if self.listeners is None else self.listeners()
        total, curr = connection_counts(pools, listeners)
        yield CounterMetricFamily(
            "corenet_connections_opened",
            "connections opened since start: listeners, clients, servers "
            "(nutcracker's total_connections)",
            value=total,
        )
        yield GaugeMetricFamily(
            "corenet_connections",
            "open connections: listeners, clients, servers (nutcracker's curr_connections)",
            value=curr,
        )
        if self.reloads is not None:
            yield from self._reload_metrics(self.reloads())
        yield from self._pool_metrics(pools)
        yield from self._server_metrics(pools)
        yield from self._latency_metrics(pools)

    @staticmethod
    def _reload_metrics(figures: Mapping[str, int]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "corenet_config_generation",
            "configuration generation: 1 at start, +1 per applied reload",
            value=figures["config_generation"],
        )
        yield GaugeMetricFamily(
            "corenet_reload_last_seconds",
            "when the last reload was applied, unix seconds (0: never)",
            value=figures["reload_last"],
        )
        yield CounterMetricFamily(
            "corenet_reloads", "configuration reloads applied", value=figures["reloads"]
        )
        yield CounterMetricFamily(
            "corenet_reload_failures",
            "configuration reloads refused (invalid file, address in use)",
            value=figures["reload_failures"],
        )

    def _pool_metrics(self, pools: list[Pool]) -> Iterator[Metric]:
        tls_pools = [pool for pool in pools if pool.tls.accept is not None]
        cluster_pools = [pool for pool in pools if pool.cluster is not None]
        for figures, members in (
            (POOL_STATS, pools),
            (POOL_TLS_STATS, tls_pools),
            (POOL_CLUSTER_STATS, cluster_pools),
        ):
            for figure, (kind, desc) in figures.items():
                family = _family(figure, kind, desc, ["pool"])
                for pool in members:
                    family.add_metric([pool.name], getattr(pool.stats, figure))
                yield family
        pinned = GaugeMetricFamily(
            "corenet_pool_pinned_connections",
            "Dedicated server connections open (transactions, blocking commands, Pub/Sub)",
            labels=["pool"],
        )
        for pool in pools:
            pinned.add_metric([pool.name], pool.pinned)
        yield pinned

    def _server_metrics(self, pools: list[Pool]) -> Iterator[Metric]:
        rows = []
        for pool in pools:
            for server in pool.servers:
                iq, iqb, oq, oqb = server.queues()
                figures = {
                    "in_queue": iq,
                    "in_queue_bytes": iqb,
                    "out_queue": oq,
                    "out_queue_bytes": oqb,
                }
                rows.append(([pool.name, server.name], server, figures))
        labels = ["pool", "server"]
        for figure, (kind, desc) in SERVER_STATS.items():
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "timestamp":
                family = GaugeMetricFamily(
                    _prom_name(figure, server=True) + "_seconds",
                    "when the server was last ejected, seconds since epoch (0: never)",
                    labels=labels,
                )
            else:
                family = _family(figure, kind, desc, labels)
            for label_values, server, queues in rows:
                if figure in queues:
                    value: float = queues[figure]
                elif kind == "timestamp":
                    value = server.stats.server_ejected_at / 1_000_000
                else:
                    value = getattr(server.stats, figure)
                family.add_metric(label_values, value)
            yield family
        yield from self._server_tls_metrics([(values, server) for values, server, _ in rows])
        yield from self._server_cluster_metrics([(values, server) for values, server, _ in rows])
        ejected = GaugeMetricFamily(
            "corenet_server_ejected", "1 while the server is ejected from its pool", labels=labels
        )
        for label_values, server, _ in rows:
            ejected.add_metric(label_values, 1 if server.ejected else 0)
        yield ejected
        followed = [row for row in rows if row[1].pool.config.sentinels]
        if followed:
            where = GaugeMetricFamily(
                "corenet_server_master_info",
                "1, labelled with where Sentinel says the server's master is now",
                labels=[*labels, "address"],
            )
            switches = CounterMetricFamily(
                "corenet_server_sentinel_switches",
                "times Sentinel moved the server to another address",
                labels=labels,
            )
            replicas = GaugeMetricFamily(
                "corenet_server_replicas", "replicas known for the server", labels=labels
            )
            for label_values, server, _ in followed:
                where.add_metric([*label_values, str(server.config.address)], 1)
                switches.add_metric(label_values, server.switches)
                replicas.add_metric(label_values, len(server.replicas))
            yield where
            yield switches
            yield replicas

    def _server_cluster_metrics(self, rows: list[tuple[list[str], Server]]) -> Iterator[Metric]:
        slots = GaugeMetricFamily(
            "corenet_server_cluster_slots",
            "Redis Cluster slots the master serves, as the pool's map says",
            labels=["pool", "server"],
        )
        for label_values, server in rows:
            if server.pool.config.redis_cluster:
                slots.add_metric(label_values, server.slots)
        yield slots

    def _server_tls_metrics(self, rows: list[tuple[list[str], Server]]) -> Iterator[Metric]:
        labels = ["pool", "server"]
        tls_rows = [(values, server) for values, server in rows if server.pool.tls.connect]
        for figure, (kind, desc) in SERVER_TLS_STATS.items():
            family = _family(figure, kind, desc, labels)
            for label_values, server in tls_rows:
                family.add_metric(label_values, getattr(server.stats, figure))
            yield family

    def _latency_metrics(self, pools: list[Pool]) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "corenet_pool_request_duration_seconds",
            "time from reading a request to completing its reply (loop-turn resolution)",
            labels=["pool"],
        )
        for pool in pools:
            histogram = pool.latency  # None until the proxy turns metrics on
            if histogram is not None:
                family.add_metric([pool.name], histogram.cumulative(), histogram.sum)
        yield family


def build_registry(collector: Collector, *, process_metrics: bool = True) -> CollectorRegistry:
    """A registry holding ``collector`` (and the ``process_*`` metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)
    return registry


def metrics_handler(
    registry: CollectorRegistry, reload: ReloadEndpoint | None = None
) -> Callable[[HttpRequest], HttpResponse]:
    """The HTTP handler: ``GET /metrics`` renders ``registry``; ``POST /-/reload``
    (Prometheus's own convention) reloads the configuration and answers 200
    with what changed, or 400 with why nothing did; else 404/405."""

    def handle(request: HttpRequest) -> HttpResponse:
        if reload is not None and request.path == "/-/reload":
            if request.method != "POST":
                return HttpResponse(405, b"only POST\n", headers=(("Allow", "POST"),))
            applied, body = reload()
            return HttpResponse(200 if applied else 400, body, "application/json")
        if request.method not in ("GET", "HEAD"):
            return HttpResponse(405, b"only GET and HEAD\n", headers=(("Allow", "GET, HEAD"),))
        if request.path == "/metrics":
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            return HttpResponse(200, encoder(registry), content_type)
        if request.path == "/":
            return HttpResponse(200, b"corenet-proxy: metrics at /metrics\n")
        return HttpResponse(404, b"not found; try /metrics\n")

    return handle


def serve_metrics(
    loop: Loop,
    host: str,
    port: int,
    registry: CollectorRegistry,
    reload: ReloadEndpoint | None = None,
) -> HttpServer:
    """Listen on ``host:port`` and answer scrapes of ``registry`` (and reload
    requests, given ``reload``) on ``loop``.

    Raises:
        OSError: the address cannot be bound.
    """
    return HttpServer.listen(loop, host, port, metrics_handler(registry, reload))
