"""The supervisor's listening sockets, one table per worker slot.

With ``reuseport`` every TCP pool has one ``SO_REUSEPORT`` socket per slot;
otherwise (and for unix sockets, always) one socket serves every slot.  The
supervisor keeps its copy of each socket open for the workers it starts
later, and owns the unix socket files it bound.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

from corenet.net import file_identity, unlink_if_ours
from corenet.proxy.pool import bind_pool
from corenet.proxy.reload import leaving_listens

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from corenet.proxy.config import PoolConfig

__all__ = ["SlotSockets"]


class SlotSockets:
    """``slots[i]`` maps pool names to the sockets worker ``i`` adopts."""

    def __init__(self, count: int, *, reuseport: bool) -> None:
        self.count = count
        self.reuseport = reuseport
        self.slots: list[dict[str, socket.socket]] = [{} for _ in range(count)]
        self.all: list[socket.socket] = []
        self._unix_bound: dict[str, tuple[int, int]] = {}  # path -> identity of our file

    def bind_all(self, pools: Iterable[PoolConfig]) -> None:
        for config in pools:
            for slot, sock in enumerate(self.bind(config)):
                self.slots[slot][config.name] = sock

    def bind(self, config: PoolConfig) -> list[socket.socket]:
        """One listening socket per slot (reuseport), or one for all of them.

        Raises:
            OSError: the address cannot be bound (what was bound stays in ``all``).
        """
        address = config.listen
        per_slot = self.reuseport and address.path is None
        socks: list[socket.socket] = []
        for _ in range(self.count):
            if per_slot or not socks:
                sock = bind_pool(config, reuseport=per_slot)
                self.all.append(sock)
                if address.path is not None:
                    self._unix_bound[address.path] = file_identity(address.path)
                socks.append(sock)
            else:
                socks.append(socks[0])
        return socks

    def adopt(
        self,
        old: Mapping[str, PoolConfig],
        new: Mapping[str, PoolConfig],
        fresh: Mapping[str, list[socket.socket]],
    ) -> None:
        """After a reload from ``old`` to ``new``: each pool's sockets are the
        ``fresh`` ones, a retiring pool's it took over, or its own; the rest close."""
        leaving = leaving_listens(old, new)
        for slot in range(self.count):
            before = self.slots[slot]
            table: dict[str, socket.socket] = {}
            for name, config in new.items():
                if name in fresh:
                    table[name] = fresh[name][slot]
                elif config.listen in leaving:
                    table[name] = before[leaving[config.listen]]
                else:
                    table[name] = before[name]
            self.slots[slot] = table
        used = {id(sock) for table in self.slots for sock in table.values()}
        self.close([sock for sock in self.all if id(sock) not in used])

    def close(self, socks: list[socket.socket] | None = None) -> None:
        """Close our copies of ``socks`` (default: all), removing our unix socket files."""
        if socks is None:
            socks = list(self.all)
        gone = {id(sock) for sock in socks}
        for sock in socks:
            if sock.family == socket.AF_UNIX:
                with contextlib.suppress(OSError):
                    path = sock.getsockname()
                    identity = self._unix_bound.pop(path, None)
                    if identity is not None:
                        unlink_if_ours(path, identity)
            sock.close()
        self.all = [sock for sock in self.all if id(sock) not in gone]
