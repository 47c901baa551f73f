"""The proxy application: pools, listeners and the stats server on one loop."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING

import attrs

from corenet._plugins import Plugins
from corenet.conn import ProxyConn
from corenet.core import Loop
from corenet.event import select_backend
from corenet.pool import Pool
from corenet.stats import StatsServer

if TYPE_CHECKING:
    from corenet.config import PoolConfig

__all__ = ["Proxy", "ProxyOptions"]

logger = logging.getLogger("corenet.proxy")


@attrs.frozen
class ProxyOptions:
    """Process-wide settings from the command line."""

    stats_addr: str = "127.0.0.1"
    stats_port: int | None = 22222
    mbuf_size: int = 16384
    event_backend: str | None = None


class Proxy:
    """Everything one corenet-proxy process serves."""

    def __init__(
        self,
        pools: Mapping[str, PoolConfig],
        options: ProxyOptions | None = None,
        plugins: Plugins | None = None,
        version: str = "",
    ) -> None:
        self.options = options or ProxyOptions()
        self.plugins = plugins or Plugins()
        self.backend = select_backend(self.options.event_backend, self.plugins.event_backends)
        self.loop = Loop(self.backend)
        self.pools = [
            Pool(config, self.plugins, self.loop, read_size=self.options.mbuf_size) for config in pools.values()
        ]
        self.listeners: list[ProxyConn] = []
        self.stats_server: StatsServer | None = None
        self.version = version

    def start(self) -> None:
        """Bind every listener (and the stats port) and preconnect where asked.

        Raises:
            OSError: an address cannot be bound; nothing stays bound.
        """
        try:
            for pool in self.pools:
                listener = ProxyConn.listen(self.loop, pool)
                self.listeners.append(listener)
                logger.log(25, "pool %s listening on %s (%s, %d servers)", pool.name, pool.config.listen, pool.protocol.name, len(pool.servers))
            if self.options.stats_port:
                self.stats_server = StatsServer.listen(
                    self.loop, self.options.stats_addr, self.options.stats_port, self.pools, self.version
                )
        except OSError:
            self.close()
            raise
        for pool in self.pools:
            if pool.config.preconnect:
                pool.preconnect()

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM or :meth:`stop`."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.loop.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        logger.log(25, "signal %d received, exiting", signum)
        self.stop()

    def stop(self) -> None:
        self.loop.stop()

    def close(self) -> None:
        for listener in self.listeners:
            listener.close()
        self.listeners = []
        if self.stats_server is not None:
            self.stats_server.close()
            self.stats_server = None
        for pool in self.pools:
            pool.close()
        self.backend.close()
