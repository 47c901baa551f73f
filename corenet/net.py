"""Addresses, listening sockets and the one accept loop.

:class:`Listener` is how every server built on corenet accepts connections
(a proxy pool, the stats port, the metrics endpoint, a worker supervisor):
it accepts up to a bound per loop turn and hands each socket to a callback.
When the process is out of descriptors (``EMFILE``/``ENFILE``) the pending
connections stay in the kernel's backlog and the listening socket stays
readable, so polling it would spin at 100 % CPU, while the clients wait
unanswered.  The listener uses the classic reserve descriptor: it closes it,
accepts and at once closes the waiting connections (the client sees its
connection closed, not a hang), and opens the reserve again; each one is
counted (``shed``) and the warning is logged at most once per
``LOG_EVERY`` seconds.  Only when even that fails does it stop watching for
``ACCEPT_PAUSE`` seconds.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
from typing import TYPE_CHECKING

import attrs

from corenet.event import EV_READ, EV_WRITE
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop

__all__ = [
    "ACCEPT_PAUSE",
    "Connection",
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
"""Seconds a listener stops accepting when it cannot even shed connections."""
LOG_EVERY = 10.0
"""Seconds between two warnings about running out of descriptors."""
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


_reserve: int | None = None


def _open_reserve() -> None:
    global _reserve
    if _reserve is None:
        try:
            _reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # out of descriptors right now: try again next time
            _reserve = None


def _shed_with_reserve(sock: socket.socket) -> int:
    """Accept and close what waits on ``sock``, using the reserve descriptor."""
    global _reserve
    if _reserve is None:
        _open_reserve()
        if _reserve is None:
            return 0
    os.close(_reserve)
    _reserve = None
    shed = 0
    try:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                conn, _addr = sock.accept()
            except OSError:  # drained (EAGAIN), or out of descriptors again
                break
            conn.close()
            shed += 1
    finally:
        _open_reserve()
    return shed


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
        self.shed = 0
        """Connections accepted and closed at once for lack of descriptors."""
        self.on_shed: Callable[[int], None] | None = None
        """Told how many connections were shed each time some are."""
        self._logged_at = -LOG_EVERY
        _open_reserve()  # now, while descriptors are still to be had

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
        shed = _shed_with_reserve(self.sock)
        if shed:
            self.shed += shed
            if self.on_shed is not None:
                self.on_shed(shed)
        else:
            self.paused_accepts += 1
            self.set_interest(0)
            self.loop.timers.call_later(ACCEPT_PAUSE, self._resume_accepting)
        if self.loop.now - self._logged_at >= LOG_EVERY:
            self._logged_at = self.loop.now
            logger.warning(
                "%s: accept failed (%s); %d connections shed so far (at most one such "
                "line per %d s)",
                self.name,
                exc.strerror,
                self.shed,
                LOG_EVERY,
            )

    def _resume_accepting(self) -> None:
        if not self.closed:
            self.set_interest(EV_READ)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        if self._path is not None and self._identity is not None:
            unlink_if_ours(self._path, self._identity)


class Connection(Stream):
    """A stream that connects out, without blocking.

    :meth:`connect_to` starts the connect; the loop's first write (or read)
    event completes it: :meth:`connection_made` on success, or
    :meth:`connect_failed` with the error (``SO_ERROR``).  Output queued
    before that (:meth:`queue_bytes`) waits for the subclass to send it.
    """

    connected = False
    """The connect completed."""

    def connect_to(self, address: ListenAddress) -> int:
        """Start connecting to ``address`` and register; the ``connect_ex`` result
        (0 if already connected, ``EINPROGRESS``, or an error to report)."""
        err = self.sock.connect_ex(sockaddr(address))
        self.register(EV_READ | EV_WRITE)
        if err == 0:
            self._connect_done()
        return err

    def _connect_done(self) -> None:
        self.connected = True
        self.set_interest(EV_READ)
        self.connection_made()

    def handle_write(self) -> None:
        if not self.connected:
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.connect_failed(err)
            else:
                self._connect_done()
            return
        super().handle_write()

    def handle_read(self) -> None:
        if not self.connected:
            # Readable before writable means the connect failed (or data
            # raced in); SO_ERROR says which.
            self.handle_write()
            if not self.connected:
                return
        super().handle_read()

    def connect_failed(self, err: int) -> None:
        """The connect failed with ``err``; by default, close."""
        self.close()
