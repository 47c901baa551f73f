"""Reloading the configuration in a running proxy, without dropping a client.

:func:`plan` compares the running pools with a new configuration and
returns the changes, in the two-phase form of :mod:`corenet.switch`:
everything that can fail (building each pool, which resolves its plugins,
and binding new listeners) happens in ``prepare``; ``commit`` only swaps.
:meth:`corenet.proxy.app.Proxy.reload` validates the file exactly as ``-t``
does, then applies the plan in one loop turn, or changes nothing.

A pool present in both configurations with the same ``listen`` and
protocol keeps its listener, its clients and every server whose name and
address are unchanged (:meth:`corenet.proxy.pool.Pool.adopt`).  A new pool
starts listening.  A removed pool, or one whose ``listen`` or protocol
changed (its replacement binds the new address first), *retires*: its
listener closes at once, its clients get the replies to what they already
sent and are then closed, and after ``drain_timeout`` whatever is left is
closed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import attrs

from corenet.net import file_identity, unlink_if_ours
from corenet.proxy.pool import Pool, ServerChanges, bind_pool

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping

    from corenet.loop import Loop
    from corenet.net import ListenAddress, Listener
    from corenet.plugin import Plugins
    from corenet.proxy.config import PoolConfig
    from corenet.switch import Change

__all__ = ["ReloadReport", "ReloadState", "Retiring", "leaving_listens", "needs_listener", "plan"]

logger = logging.getLogger("corenet.reload")


@attrs.define
class ReloadState:
    """What stats and metrics say of reloads (top-level scalars)."""

    generation: int = 1
    """1 for the configuration the process started with, +1 per applied reload."""
    reloads: int = 0
    failures: int = 0
    last: int = 0
    """When the last reload was applied, unix seconds (0: never)."""
    last_error: str = ""

    def figures(self) -> dict[str, int]:
        return {
            "config_generation": self.generation,
            "reload_last": self.last,
            "reloads": self.reloads,
            "reload_failures": self.failures,
        }

    def applied(self) -> None:
        self.generation += 1
        self.reloads += 1
        self.last = int(time.time())
        self.last_error = ""

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason


@attrs.define
class ReloadReport:
    """What an applied reload changed."""

    generation: int = 0
    added: list[str] = attrs.field(factory=list)
    removed: list[str] = attrs.field(factory=list)
    changed: list[str] = attrs.field(factory=list)
    """Pools kept in place (listener and clients), whatever else changed."""
    replaced: list[str] = attrs.field(factory=list)
    """Pools whose ``listen`` or protocol changed: a new listener, old clients drained."""
    servers: dict[str, ServerChanges] = attrs.field(factory=dict)

    def summary(self) -> str:
        parts = [f"generation {self.generation}"]
        for label, names in (
            ("pools added", self.added),
            ("removed", self.removed),
            ("replaced", self.replaced),
            ("kept", self.changed),
        ):
            parts.append(f"{label}: {', '.join(names) or '-'}")
        for pool, s in self.servers.items():
            parts.append(
                f"pool {pool} servers +{len(s.added)} -{len(s.removed)} ={len(s.kept)}"
                + (f" (added {', '.join(s.added)})" if s.added else "")
                + (f" (removed {', '.join(s.removed)})" if s.removed else "")
            )
        return "; ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return attrs.asdict(self)


@attrs.define(eq=False)
class Retiring:
    """A pool that no longer serves new clients, until its clients are gone."""

    pool: Pool
    deadline: float

    def done(self, now: float) -> bool:
        """Close what is left once no client is, or at the deadline; True when closed."""
        if self.pool.clients and now < self.deadline:
            return False
        if self.pool.clients:
            logger.warning(
                "pool %s: %d clients still connected after the drain; closing them",
                self.pool.name,
                len(self.pool.clients),
            )
        self.pool.close()
        return True


@attrs.define(eq=False)
class _KeepPool:
    """Same name, listen and protocol: the running pool adopts the new settings."""

    old: Pool
    build: Callable[[], Pool]
    report: ReloadReport
    new: Pool | None = None

    def prepare(self) -> None:
        self.new = self.build()

    def commit(self) -> None:
        assert self.new is not None
        self.report.servers[self.old.name] = self.old.adopt(self.new)
        self.report.changed.append(self.old.name)

    def abort(self) -> None:
        self.new = None


@attrs.define(eq=False)
class _StartPool:
    """A pool to start listening: new, or replacing one whose ``listen`` changed."""

    config: PoolConfig
    build: Callable[[], Pool]
    started: Callable[[Pool, Listener], None]
    sock: socket.socket | None = None
    """Already bound by the caller (a worker's, from its supervisor)."""
    takeover: Pool | None = None
    """A retiring pool on the same address, whose listener this pool takes over."""
    pool: Pool | None = None
    _identity: tuple[int, int] | None = None

    def prepare(self) -> None:
        self.pool = self.build()
        if self.sock is None and self.takeover is None:
            self.sock = bind_pool(self.config)
            if self.config.listen.path is not None:
                self._identity = file_identity(self.config.listen.path)

    def commit(self) -> None:
        assert self.pool is not None
        old = self.takeover
        if old is not None and old.listener is not None:
            # The listening socket changes hands: no moment without one, and
            # connections already queued on it go to the new pool.
            listener = old.listener
            old.listener = None
            listener.on_accept = self.pool.accept
            listener.on_shed = self.pool.shed
            listener.name = f"pool {self.pool.name}"
            self.pool.listener = listener
        else:
            assert self.sock is not None
            listener = self.pool.listen(sock=self.sock, unix_identity=self._identity)
        self.started(self.pool, listener)

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.close()
            if self._identity is not None and self.config.listen.path is not None:
                unlink_if_ours(self.config.listen.path, self._identity)
        self.pool = self.sock = None


@attrs.define(eq=False)
class _RetirePool:
    pool: Pool
    retire: Callable[[Pool], None]

    def prepare(self) -> None:
        pass

    def commit(self) -> None:
        self.retire(self.pool)

    def abort(self) -> None:
        pass


def _kept_in_place(old: PoolConfig, new: PoolConfig) -> bool:
    # A pool that becomes (or stops being) a Redis Cluster's has other
    # servers altogether: it is replaced, like one whose protocol changed.
    return (
        old.listen == new.listen
        and old.protocol == new.protocol
        and old.redis_cluster == new.redis_cluster
    )


def leaving_listens(
    old: Mapping[str, PoolConfig], new: Mapping[str, PoolConfig]
) -> dict[ListenAddress, str]:
    """The listen addresses of the pools that retire, and which pool has each."""
    return {
        config.listen: name
        for name, config in old.items()
        if name not in new or not _kept_in_place(config, new[name])
    }


def needs_listener(old: Mapping[str, PoolConfig], new: Mapping[str, PoolConfig]) -> list[str]:
    """The pools of ``new`` that need a newly bound listening socket: new or
    moved pools, except those taking over a retiring pool's address."""
    leaving = leaving_listens(old, new)
    return [
        name
        for name, config in new.items()
        if (name not in old or not _kept_in_place(old[name], config))
        and config.listen not in leaving
    ]


def plan(
    running: list[Pool],
    configs: Mapping[str, PoolConfig],
    *,
    plugins: Plugins,
    loop: Loop,
    read_size: int,
    started: Callable[[Pool, Listener], None],
    retire: Callable[[Pool], None],
    listen_socks: Mapping[str, socket.socket] | None = None,
) -> tuple[list[Change], ReloadReport]:
    """The changes that turn ``running`` into the pools of ``configs``.

    ``started`` is told of each pool that starts listening, ``retire`` of each
    pool to drain; ``listen_socks`` gives bound sockets for new listeners.
    """
    report = ReloadReport()
    by_name = {pool.name: pool for pool in running}
    changes: list[Change] = []

    def builder(config: PoolConfig) -> Callable[[], Pool]:
        return lambda: Pool(config, plugins, loop, read_size=read_size)

    socks = listen_socks or {}
    leaving = {
        listen: by_name[name]
        for listen, name in leaving_listens({p.name: p.config for p in running}, configs).items()
    }
    for name, config in configs.items():
        old = by_name.pop(name, None)
        if old is not None and _kept_in_place(old.config, config):
            changes.append(_KeepPool(old, builder(config), report))
            continue
        takeover = leaving.get(config.listen)
        sock = None if takeover is not None else socks.get(name)
        changes.append(_StartPool(config, builder(config), started, sock, takeover))
        if old is None:
            report.added.append(name)
        else:
            report.replaced.append(name)
            changes.append(_RetirePool(old, retire))
    for old in by_name.values():
        report.removed.append(old.name)
        changes.append(_RetirePool(old, retire))
    return changes, report
