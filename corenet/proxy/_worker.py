"""The worker side of ``--workers``: a :class:`~corenet.proxy.app.Proxy`
answering its supervisor over a socketpair (see :mod:`corenet.proxy.workers`).

The supervisor writes one request per line: a number (answered
``<number> <stats json>``) or ``reload <seq> <json>`` with the new pools'
listening sockets attached (SCM_RIGHTS), answered ``reload <seq> ok
<generation>`` or ``reload <seq> fail <why>``.  EOF means the supervisor is
gone: the worker drains and exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from typing import TYPE_CHECKING, Any

from corenet.errors import CorenetError
from corenet.event import EV_READ
from corenet.proxy.app import Proxy
from corenet.proxy.config import parse_config
from corenet.proxy.stats import connection_counts, snapshot
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.loop import Loop
    from corenet.proxy.app import LogControl, ProxyOptions
    from corenet.proxy.config import PoolConfig

__all__ = ["WorkerTag", "worker_main"]

logger = logging.getLogger("corenet.workers")

_MAX_FDS = 250  # listening sockets one reload request may carry (SCM_RIGHTS' limit is 253)


class WorkerTag(logging.Filter):
    """Appends ``[worker SLOT pid PID]`` to the logger name of a worker's records."""

    def __init__(self, slot: int) -> None:
        super().__init__()
        self.suffix = f"[worker {slot} pid {os.getpid()}]"

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.endswith("]"):
            record.name = f"{record.name}{self.suffix}"
        return True


class _Control(Stream):
    """A worker's end of its socketpair: answers stats requests, notices EOF."""

    kind = "control"

    def __init__(self, loop: Loop, sock: socket.socket, proxy: Proxy) -> None:
        super().__init__(loop, sock)
        self.proxy = proxy
        self._buf = bytearray()
        self._fds: list[int] = []  # listening sockets sent with a reload request

    def handle_read(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 65536, _MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, fds = b"", []
        self._fds.extend(fds)
        if not data:
            self.close()
            if not self.proxy.draining:
                logger.warning("supervisor gone: worker %d draining", os.getpid())
                self.proxy.drain()
            return
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            tag = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if tag.isdigit():
                body = json.dumps(self.stats(), separators=(",", ":")).encode()
                self.send_bytes(tag + b" " + body + b"\n")
            elif tag.startswith(b"reload "):
                self.send_bytes(self._reload(tag[7:]) + b"\n")

    def _reload(self, request: bytes) -> bytes:
        """``<seq> <json>`` -> ``reload <seq> ok <generation>`` or ``reload <seq> fail <why>``."""
        seq, _, body = request.partition(b" ")
        fds, self._fds = self._fds, []
        socks = [socket.socket(fileno=fd) for fd in fds]
        head = b"reload " + seq
        try:
            message = json.loads(body)
            names: list[str] = message["sockets"]
            if len(names) != len(socks):
                raise CorenetError(f"{len(socks)} sockets received for {len(names)} pools")
            configs = parse_config(message["text"], source=message["source"])
            report = self.proxy.reload(configs, listen_socks=dict(zip(names, socks, strict=True)))
        except (CorenetError, OSError, ValueError, KeyError) as exc:
            for sock in socks:
                sock.close()
            return head + b" fail " + str(exc).replace("\n", " ").encode("utf-8", "replace")
        return head + b" ok %d" % report.generation

    def stats(self) -> dict[str, Any]:
        proxy = self.proxy
        total, curr = connection_counts(proxy.pools, proxy.listener_count())
        return snapshot(
            proxy.pools,
            started=proxy.started,
            counters={"total_connections": total, "curr_connections": curr},
        )


def worker_main(
    pools: Mapping[str, PoolConfig],
    options: ProxyOptions,
    version: str,
    log: LogControl | None,
    listen_socks: Mapping[str, socket.socket],
    channel: socket.socket,
) -> int:
    proxy: Proxy | None = None
    try:
        proxy = Proxy(pools, options, version=version, log=log, listen_socks=listen_socks)
        proxy.start()
    except (CorenetError, OSError) as exc:
        if proxy is not None:
            proxy.close()
        logger.error("worker %d failed to start: %s", os.getpid(), exc)
        with contextlib.suppress(OSError):
            channel.sendall(f"fail {exc}\n".encode("utf-8", "replace"))
        return 1
    channel.sendall(b"ready\n")
    channel.setblocking(False)
    control = _Control(proxy.loop, channel, proxy)
    control.register(EV_READ)
    return proxy.run()
