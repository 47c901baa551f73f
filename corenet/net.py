"""Addresses, listening sockets and the one accept loop.

:class:`Listener` is how every server built on corenet accepts connections
(a proxy pool, the stats port, the metrics endpoint, a worker supervisor):
it accepts up to a bound per loop turn and hands each socket to a callback.
When the process is out of descriptors (``EMFILE``/``ENFILE``) the pending
connection stays in the kernel's backlog and the listening socket stays
readable, so polling it would spin at 100 % CPU: the listener stops watching
for a moment instead and tries again, logging at most once per pause.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING

import attrs

from corenet.event import EV_READ
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop

__all__ = [
    "ACCEPT_PAUSE",
    "ListenAddress",
    "Listener",
    "bind_listener",
    "file_identity",
    "make_socket",
    "sockaddr",
    "unlink_if_ours",
]

logger = logging.getLogger("corenet.net")

ACCEPT_PAUSE = 0.1
"""Seconds a listener stops accepting after running out of descriptors."""
_ACCEPTS_PER_TURN = 64
_FD_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@attrs.frozen
class ListenAddress:
    """A stream address: TCP ``host:port``, or a unix socket ``path`` with ``perm``."""

    host: str = ""
    port: int = 0
    path: str | None = None
    perm: int | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return self.path if self.path is not None else f"{self.host}:{self.port}"


def sockaddr(address: ListenAddress) -> str | tuple[str, int]:
    """The argument ``bind``/``connect`` take for ``address``."""
    return address.path if address.path is not None else (address.host, address.port)


def make_socket(address: ListenAddress) -> socket.socket:
    """Return a non-blocking stream socket of the right family for ``address``."""
    if address.is_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def bind_listener(
    address: ListenAddress, backlog: int, *, reuseport: bool = False
) -> socket.socket:
    """Return a non-blocking socket bound and listening on ``address``.

    A unix socket path is bound only if nothing is there or what is there is
    a socket nobody listens on (left by a process that died), which is
    replaced; a regular file, a directory or a live socket is refused, never
    deleted.  The socket gets the configured permissions.  A TCP socket gets
    ``SO_REUSEADDR`` (and ``SO_REUSEPORT`` when asked, for workers sharing a
    port).

    Raises:
        OSError: the address cannot be bound; the socket is closed.
    """
    if address.path is not None:
        _clear_stale_socket(address.path)
    sock = make_socket(address)
    try:
        if address.path is not None:
            sock.bind(address.path)
            if address.perm is not None:
                os.chmod(address.path, address.perm)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((address.host, address.port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _clear_stale_socket(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # a socket file nobody listens on: stale
        return
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, f"{path}: another process listens on this socket")


def file_identity(path: str) -> tuple[int, int]:
    """``(device, inode)`` of ``path``: which socket file a listener bound."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def unlink_if_ours(path: str, identity: tuple[int, int]) -> None:
    """Remove the socket file at ``path`` only if it is still the one we
    bound: in a rolling restart the new process may have bound it already."""
    try:
        if file_identity(path) == identity:
            os.unlink(path)
    except OSError:
        pass


class Listener(Stream):
    """A listening socket on a loop, handing each accepted socket to ``on_accept``.

    ``name`` is what log lines call it (``pool alpha``, ``stats``).  A unix
    socket file bound by :meth:`listen` is removed on close if it is still
    ours; one adopted with ``sock=`` belongs to whoever bound it.
    """

    kind = "listener"

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        on_accept: Callable[[socket.socket], None],
        *,
        name: str = "listener",
        unix_identity: tuple[int, int] | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(loop, sock)
        self.on_accept = on_accept
        self.name = name
        self._identity = unix_identity
        self._path = path
        self.paused_accepts = 0
        """How many times accepting was paused for lack of descriptors."""

    @classmethod
    def listen(
        cls,
        loop: Loop,
        address: ListenAddress,
        on_accept: Callable[[socket.socket], None],
        *,
        backlog: int = 512,
        name: str = "listener",
        sock: socket.socket | None = None,
        reuseport: bool = False,
    ) -> Listener:
        """Bind ``address`` (or adopt the bound, listening ``sock``) and start accepting.

        Raises:
            OSError: the address cannot be bound.
        """
        identity = None
        if sock is None:
            sock = bind_listener(address, backlog, reuseport=reuseport)
            if address.path is not None:
                identity = file_identity(address.path)
        else:
            sock.setblocking(False)
        listener = cls(loop, sock, on_accept, name=name, unix_identity=identity, path=address.path)
        listener.register(EV_READ)
        return listener

    @property
    def port(self) -> int:
        """The TCP port bound (useful after binding port 0)."""
        return int(self.sock.getsockname()[1])

    def handle_read(self) -> None:
        accept = self.sock.accept
        on_accept = self.on_accept
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, _addr = accept()
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _FD_EXHAUSTED:
                    self._pause_accepting(exc)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                raise
            on_accept(sock)

    def _pause_accepting(self, exc: OSError) -> None:
        self.paused_accepts += 1
        logger.warning(
            "%s: accept failed (%s); pausing accepts for %d ms",
            self.name,
            exc.strerror,
            ACCEPT_PAUSE * 1000,
        )
        self.set_interest(0)
        self.loop.timers.call_later(ACCEPT_PAUSE, self._resume_accepting)

    def _resume_accepting(self) -> None:
        if not self.closed:
            self.set_interest(EV_READ)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._path is not None and self._identity is not None:
            unlink_if_ours(self._path, self._identity)
