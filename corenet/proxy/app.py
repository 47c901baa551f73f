"""The proxy application: pools, listeners, stats and metrics on one loop.

Signals
-------

The handlers only record the signal and wake the loop (``backend.wakeup()``
writes one byte to the backend's self-pipe); the work happens in the loop,
after the turn that woke up, never inside a handler.  The actions are
nutcracker's (nc_signal.c), except SIGTERM, which nutcracker leaves at its
default (die at once):

=========  ==================================================================
SIGHUP     reopen the log file (``-o``), for logrotate
SIGTTIN    one more level of verbosity (``-v``), up to 11, and log the level
SIGTTOU    one less, down to 0
SIGUSR1    reload the configuration file (``-c``), see :meth:`Proxy.reload`
SIGUSR2    logged, nothing else (its default action would kill us)
SIGINT     exit at once, status 1 (as nutcracker); the pid file is removed
SIGTERM    drain: close every listener (pools, stats, metrics), stop reading
           from clients, let the requests already read complete and their
           replies be written, closing each client once it has nothing left;
           exit 0 when no client is left or ``drain_timeout`` has passed.
           A second SIGTERM (or a SIGINT) ends the drain at once.
SIGPIPE    ignored (a write to a closed peer is an ``EPIPE`` error instead)
=========  ==================================================================
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Protocol

import attrs

from corenet.errors import CorenetError
from corenet.event import select_backend
from corenet.loop import Loop
from corenet.proxy.cluster import cluster_watches
from corenet.proxy.config import load_config
from corenet.proxy.health import start_checks
from corenet.proxy.plugins import load_plugins
from corenet.proxy.pool import Pool
from corenet.proxy.reload import ReloadReport, ReloadState, Retiring, plan
from corenet.proxy.sentinel import resolve_at_start, watches
from corenet.proxy.stats import NUTCRACKER_VERSION, StatsServer
from corenet.proxy.validate import check_pools
from corenet.switch import apply_all
from corenet.watch import FileWatcher

if TYPE_CHECKING:
    import socket
    from collections.abc import Mapping
    from types import FrameType

    from corenet.net import Listener
    from corenet.plugin import Plugins
    from corenet.proxy.config import PoolConfig
    from corenet.proxy.http import HttpServer
    from corenet.timers import TimerHandle

__all__ = ["NOTICE", "LogControl", "Proxy", "ProxyOptions"]

logger = logging.getLogger("corenet.proxy")

NOTICE = 25  # nutcracker's LOG_NOTICE, between WARNING and INFO
logging.addLevelName(NOTICE, "NOTICE")

EXIT_OK = 0
EXIT_INTERRUPTED = 1  # nutcracker's status after SIGINT

_HANDLED = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
_ACTIONS: dict[int, str] = {
    signal.SIGHUP: ", reopening log file",
    signal.SIGTTIN: ", up logging level",
    signal.SIGTTOU: ", down logging level",
    signal.SIGINT: ", exiting",
    signal.SIGTERM: ", draining",
    signal.SIGUSR1: ", reloading configuration",
}


@attrs.frozen
class ProxyOptions:
    """Process-wide settings from the command line.

    Attributes:
        stats_addr: address of the nutcracker stats port.
        stats_port: its port; None turns it off.
        stats_interval: how long one stats snapshot is served, seconds (``-i``).
        mbuf_size: read size for client connections (``-m``).
        event_backend: event backend name (None: $CORENET_EVENT_BACKEND or auto).
        metrics_addr: address of the Prometheus ``/metrics`` endpoint.
        metrics_port: its port; None (the default) turns it off.
        drain_timeout: how long SIGTERM waits for in-flight requests, seconds;
            also how long a pool a reload removed drains its clients.
        config_file: the file SIGUSR1 (and ``POST /-/reload``) reloads.
        watch_config: reload when ``config_file``'s content changes.
    """

    stats_addr: str = "127.0.0.1"
    stats_port: int | None = 22222
    stats_interval: float = 30.0
    mbuf_size: int = 16384
    event_backend: str | None = None
    metrics_addr: str = "127.0.0.1"
    metrics_port: int | None = None
    drain_timeout: float = 5.0
    config_file: str | None = None
    watch_config: bool = False


class Closeable(Protocol):
    def close(self) -> None: ...


class LogControl(Protocol):
    """What the signals change in the logging set-up (see corenet.cli)."""

    def reopen(self) -> None:
        """Reopen the log file (a no-op when logging to stderr)."""

    def more_verbose(self) -> int | None:
        """Raise the verbosity one level; return the new ``-v``, None if at 11."""
        ...

    def less_verbose(self) -> int | None:
        """Lower the verbosity one level; return the new ``-v``, None if at 0."""
        ...


def apply_log_signal(log: LogControl | None, signum: int) -> bool:
    """Act on SIGHUP (reopen), SIGTTIN/SIGTTOU (verbosity); False for other signals."""
    if signum == signal.SIGHUP:
        if log is not None:
            log.reopen()
        return True
    if signum in (signal.SIGTTIN, signal.SIGTTOU):
        if log is not None:
            up = signum == signal.SIGTTIN
            level = log.more_verbose() if up else log.less_verbose()
            if level is not None:
                log_always("%s log level to %d", "up" if up else "down", level)
        return True
    return False


def log_always(message: str, *args: object) -> None:
    """Log at NOTICE whatever the level, as nutcracker's ``log_safe`` does.

    Used for the lines an operator must see after sending a signal (the new
    verbosity after SIGTTOU, notably), whatever the verbosity is.
    """
    record = logger.makeRecord(logger.name, NOTICE, __file__, 0, message, args, None)
    logger.handle(record)


class Proxy:
    """Everything one corenet-proxy process serves.

    Args:
        pools: the pools, as loaded by :func:`corenet.proxy.config.load_config`.
        options: process-wide settings.
        plugins: the plugin registries (default: a fresh :class:`Plugins`).
        version: corenet's version, for the start-up line and metrics.
        log: what SIGHUP/SIGTTIN/SIGTTOU act on; None ignores them.
        listen_socks: pool name -> an already bound, listening socket for
            that pool to adopt instead of binding (a worker of
            ``--workers``, see corenet.workers); other pools bind as usual.
    """

    def __init__(
        self,
        pools: Mapping[str, PoolConfig],
        options: ProxyOptions | None = None,
        plugins: Plugins | None = None,
        version: str = "",
        log: LogControl | None = None,
        listen_socks: Mapping[str, socket.socket] | None = None,
    ) -> None:
        self.listen_socks = dict(listen_socks or {})
        self.options = options or ProxyOptions()
        self.plugins = plugins or load_plugins()
        self.backend = select_backend(self.options.event_backend, self.plugins.event_backends)
        self.loop = Loop(self.backend)
        self.pools = [
            Pool(config, self.plugins, self.loop, read_size=self.options.mbuf_size)
            for config in pools.values()
        ]
        self.listeners: list[Listener] = []
        self.stats_server: StatsServer | None = None
        self.metrics_server: HttpServer | None = None
        self.version = version
        self.log = log
        self.started = time.time()
        self.draining = False
        self.exit_status = EXIT_OK
        self._signals: list[int] = []
        self._drain_timer: TimerHandle | None = None
        self.reload_state = ReloadState()
        self.retiring: list[Retiring] = []
        self._watcher: FileWatcher | None = None
        self.watchers: list[Closeable] = []
        """What follows the backends: Sentinel watches, health checks."""
        for pool in self.pools:
            self._measure(pool)

    def _measure(self, pool: Pool) -> None:
        if self.options.metrics_port:
            from corenet.proxy.metrics import LatencyHistogram

            # Read by the data path when a reply completes; stays None
            # (one attribute test per request) while metrics are off.
            pool.latency = LatencyHistogram()

    # -- start / stop ------------------------------------------------------

    def start(self) -> None:
        """Bind every listener (stats and metrics too) and preconnect where asked.

        Raises:
            OSError: an address cannot be bound; nothing stays bound.
        """
        # Where Sentinel says the masters are, before the first client.
        resolve_at_start(self.pools)
        try:
            for pool in self.pools:
                listener = pool.listen(sock=self.listen_socks.get(pool.name))
                self.listeners.append(listener)
                logger.log(
                    NOTICE,
                    "pool %s listening on %s (%s, %d servers)",
                    pool.name,
                    pool.config.listen,
                    pool.protocol.name,
                    len(pool.servers),
                )
            if self.options.stats_port:
                self.stats_server = StatsServer.listen(
                    self.loop,
                    self.options.stats_addr,
                    self.options.stats_port,
                    self.pools,
                    NUTCRACKER_VERSION,
                    started=self.started,
                    listeners=self.listener_count,
                    reloads=self.reload_state.figures,
                    interval=self.options.stats_interval,
                )
            if self.options.metrics_port:
                self.metrics_server = self._serve_metrics()
        except OSError:
            self.close()
            raise
        for pool in self.pools:
            if pool.config.preconnect:
                pool.preconnect()
        if self.options.watch_config and self.options.config_file:
            self._watcher = FileWatcher(self.loop, self.options.config_file, self._reload_logged)
        self._watch_backends()

    def _serve_metrics(self) -> HttpServer:
        from corenet.proxy.metrics import ProxyCollector, build_registry, serve_metrics

        assert self.options.metrics_port is not None
        collector = ProxyCollector(
            self.pools,
            started=self.started,
            version=self.version,
            listeners=self.listener_count,
            reloads=self.reload_state.figures,
        )
        server = serve_metrics(
            self.loop,
            self.options.metrics_addr,
            self.options.metrics_port,
            build_registry(collector),
            reload=self._reload_endpoint,
        )
        logger.log(
            NOTICE, "metrics on http://%s:%d/metrics", self.options.metrics_addr, server.port
        )
        return server

    def listener_count(self) -> int:
        """Open pool listeners (nutcracker counts them as connections)."""
        return len(self.listeners)

    def run(self) -> int:
        """Serve until a signal (or :meth:`stop`) ends it; return the exit status."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            # Only the main thread may install handlers; an embedding
            # application running us elsewhere keeps its own.
            previous = {sig: signal.signal(sig, self._on_signal) for sig in _HANDLED}
            previous[signal.SIGPIPE] = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        loop = self.loop
        loop.running = True
        try:
            while loop.running:
                loop.run_once()
                if self._signals:
                    self._handle_signals()
                if self.retiring:
                    self._retire_step()
                if self.draining and loop.running:
                    self._drain_step()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
        return self.exit_status

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread, possibly in the
        # middle of the loop's bookkeeping: record and wake up, nothing more.
        self._signals.append(signum)
        self.backend.wakeup()

    def _handle_signals(self) -> None:
        pending, self._signals = self._signals, []
        for signum in pending:
            name = signal.Signals(signum).name
            log_always("signal %d (%s) received%s", signum, name, _ACTIONS.get(signum, ""))
            if apply_log_signal(self.log, signum):
                pass
            elif signum == signal.SIGINT:
                self.exit_status = EXIT_INTERRUPTED
                self.loop.running = False
            elif signum == signal.SIGUSR1:
                self._reload_logged()
            elif signum == signal.SIGTERM:
                if self.draining:
                    log_always("second SIGTERM: exiting without waiting for the drain")
                    self.loop.running = False
                else:
                    self.drain()

    def stop(self) -> None:
        """End :meth:`run` after the current loop turn (no drain)."""
        self.loop.stop()

    # -- reload --------------------------------------------------------------

    def reload(
        self,
        configs: Mapping[str, PoolConfig] | None = None,
        *,
        listen_socks: Mapping[str, socket.socket] | None = None,
    ) -> ReloadReport:
        """Switch to ``configs`` (default: the ``config_file`` read again), or change nothing.

        The pools are checked as ``-t`` checks them, every new pool is built
        and every new listener bound before anything changes; then, in this
        loop turn, kept pools adopt their new settings (see
        :mod:`corenet.proxy.reload`), new ones start listening and removed
        ones drain.  ``listen_socks`` gives bound sockets for new pools (a
        worker's, bound by its supervisor).

        Raises:
            CorenetError: the file is invalid (with file, line, pool, key), or
                a plugin refused it; nothing changed, the failure is counted.
            OSError: a new listener cannot be bound; nothing changed, counted.
        """
        try:
            if configs is None:
                if not self.options.config_file:
                    raise CorenetError("no configuration file to reload (-c)")
                configs = load_config(self.options.config_file)
            check_pools(configs, self.plugins)
            started: dict[str, Pool] = {}
            changes, report = plan(
                self.pools,
                configs,
                plugins=self.plugins,
                loop=self.loop,
                read_size=self.options.mbuf_size,
                started=lambda pool, listener: started.__setitem__(pool.name, pool),
                retire=self._retire,
                listen_socks=listen_socks,
            )
            apply_all(changes)
        except (CorenetError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.reload_state.failed(reason)
            logger.error("reload failed, configuration unchanged: %s", reason)
            raise
        running = {pool.name: pool for pool in self.pools}
        pools = [started.get(name) or running[name] for name in configs]
        self.pools[:] = pools  # in place: stats and metrics hold this list
        self.listeners = [pool.listener for pool in pools if pool.listener is not None]
        for pool in pools:
            if pool.name in started:
                self._measure(pool)
            if pool.config.preconnect:
                pool.preconnect()
        # Sentinel and health settings may have changed with the pools.
        self._stop_watchers()
        resolve_at_start(started.values())
        self._watch_backends()
        self.reload_state.applied()
        report.generation = self.reload_state.generation
        if self._watcher is not None:
            self._watcher.accept_current()
        log_always("configuration reloaded: %s", report.summary())
        return report

    def _watch_backends(self) -> None:
        self.watchers = [
            *watches(self.loop, self.pools),
            *start_checks(self.loop, self.pools),
            *cluster_watches(self.pools),
        ]

    def _stop_watchers(self) -> None:
        for watcher in self.watchers:
            watcher.close()
        self.watchers = []

    def _reload_logged(self) -> ReloadReport | None:
        # SIGUSR1 and --watch-config: the outcome is in the log and the stats.
        try:
            return self.reload()
        except (CorenetError, OSError):
            return None

    def _reload_endpoint(self) -> tuple[bool, bytes]:
        try:
            report = self.reload()
        except (CorenetError, OSError):
            body = {"applied": False, "error": self.reload_state.last_error}
            return False, json.dumps(body).encode() + b"\n"
        return True, json.dumps({"applied": True, **report.as_dict()}).encode() + b"\n"

    def _retire(self, pool: Pool) -> None:
        listener = pool.listener
        if listener is not None:
            listener.close()
            pool.listener = None
        for client in list(pool.clients):
            client.close_when_done()
        deadline = self.loop.now + self.options.drain_timeout
        self.retiring.append(Retiring(pool, deadline))
        # Wakes the loop at the deadline even if nothing else happens.
        self.loop.timers.call_at(deadline, lambda: None)
        logger.log(
            NOTICE,
            "pool %s retired: draining %d clients for at most %.1f s",
            pool.name,
            len(pool.clients),
            self.options.drain_timeout,
        )

    def _retire_step(self) -> None:
        now = self.loop.now
        self.retiring = [r for r in self.retiring if not r.done(now)]

    # -- graceful shutdown ---------------------------------------------------

    def drain(self, timeout: float | None = None) -> None:
        """Stop accepting, finish the requests already read, then end :meth:`run`.

        Every listener closes at once, so a new process can bind the same
        addresses.  Clients are no longer read from (requests not read yet
        are not in flight: the client sees its connection close after its
        last reply, and retries elsewhere), and each client is closed as
        soon as all its replies are written, the way ``QUIT`` closes one.
        :meth:`run` returns when no client is left, or ``timeout`` seconds
        (default: the ``drain_timeout`` option) later, whichever is first.
        """
        if self.draining:
            return
        self.draining = True
        timeout = self.options.drain_timeout if timeout is None else timeout
        self._close_listeners()
        inflight = clients = 0
        for pool in self.pools:
            for client in list(pool.clients):
                clients += 1
                inflight += len(client.out_q)
                client.close_when_done()
        log_always(
            "draining %d requests of %d clients for at most %.1f s", inflight, clients, timeout
        )
        self._drain_timer = self.loop.timers.call_later(timeout, self._drain_expired)
        self.loop.flush_dirty()
        self._drain_step()

    def _drain_step(self) -> None:
        if not any(pool.clients for pool in self.pools):
            log_always("drained, exiting")
            self.loop.running = False

    def _drain_expired(self) -> None:
        self._drain_timer = None
        outstanding = sum(
            1
            for pool in self.pools
            for client in pool.clients
            for msg in client.out_q
            if not msg.done
        )
        logger.warning(
            "drain timed out with %d requests outstanding; closing their clients", outstanding
        )
        self.loop.running = False

    def _close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        for server in (self.stats_server, self.metrics_server):
            if server is not None:
                server.close()
        self.stats_server = self.metrics_server = None

    def close(self) -> None:
        """Close every listener and connection and the event backend."""
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if self._watcher is not None:
            self.watchers.append(self._watcher)  # closed with the others
            self._watcher = None
        self._stop_watchers()
        self._close_listeners()
        for pool in self.pools:
            pool.close()
        for retired in self.retiring:
            retired.pool.close()
        self.retiring = []
        self.backend.close()
