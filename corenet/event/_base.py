"""The event_base contract and the bookkeeping every built-in backend shares.

Theory of operation
-------------------

A backend owns one kernel readiness object (an epoll fd, a kqueue fd, a poll
array or two select sets) plus a table ``fd -> interest mask``.  The core
registers each connection's fd when it opens, toggles ``EV_WRITE`` with
``modify`` when a send queue goes from empty to non-empty and back
(unregistering an fd that wants nothing, such as a paused listener, and
registering it again when it does), and calls ``wait``
once per loop turn.  ``wait`` is the syscall plus the translation of kernel
bits into ``EV_*`` bits; dispatching the events is the core's job.

The table is changed only after the syscall that changes the kernel's view
has succeeded, so a failed ``epoll_ctl``/``kevent`` leaves the two in step
and the exception can propagate without corrupting later calls.

``wakeup()`` uses the self-pipe trick: a non-blocking pipe whose read end is
registered for reading inside the backend.  Writing one byte makes a blocked
``wait`` return; ``wait`` drains the pipe and never reports its fd.  Writing
to a pipe is async-signal-safe and thread-safe, and a full pipe already
guarantees a pending wake-up, so ``BlockingIOError`` is ignored.
"""

from __future__ import annotations

import errno
import os
import select
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["EV_ERR", "EV_READ", "EV_WRITE", "BackendStats", "EventBase"]

# Same values as EPOLLIN/EPOLLOUT/EPOLLERR and POLLIN/POLLOUT/POLLERR on
# Linux, so the epoll and poll backends' translation is a cached identity
# on the common path.
EV_READ = 1
EV_WRITE = 4
EV_ERR = 8

_INTEREST = EV_READ | EV_WRITE
_ACCEPTED = EV_READ | EV_WRITE | EV_ERR

# errnos meaning "the kernel has already forgotten this fd": it was closed
# before it was unregistered (EBADF), or closed and its number reused by a
# file the kernel object never saw (ENOENT).
FD_GONE = frozenset({errno.EBADF, errno.ENOENT})


@attrs.frozen
class BackendStats:
    """A snapshot of a backend's counters.

    Attributes:
        backend: the backend's registry name (``"epoll"``, ``"kqueue"``...).
        registered: fds currently registered by the caller (the internal
            wake-up pipe is not counted).
        waits: completed ``wait`` calls (an interrupted call is not counted).
        events: ``(fd, mask)`` pairs returned by ``wait`` so far.
    """

    backend: str
    registered: int
    waits: int = 0
    events: int = 0


class EventBase(Protocol):
    """What the core loop needs from an event backend.

    Masks are ``EV_READ``, ``EV_WRITE`` or ``EV_READ | EV_WRITE`` on input
    (``EV_ERR`` may be included and is ignored: errors are always reported).
    Every built-in backend is level-triggered and behaves the same way:

    * ``register`` of an fd that is already registered, and ``modify`` or
      ``unregister`` of an fd that is not, raise ``KeyError`` (as
      :mod:`selectors` does).  A negative fd, or a mask with no read or
      write interest or with unknown bits, raises ``ValueError``.
    * ``unregister`` of an fd that was closed first succeeds: the kernel has
      already dropped it.  Always unregister *before* closing, though: epoll
      keeps reporting a closed fd whose file is still open through a dup.
    * ``wait`` returns each ready fd at most once, with a mask of ``EV_READ``
      / ``EV_WRITE`` (only bits the fd registered for) and ``EV_ERR``.
      ``EV_ERR`` means an error or hang-up is pending and is reported
      whatever the interest.  A hang-up comes as ``EV_READ | EV_ERR`` so the
      owner reads first (buffered data, then ``b""`` or the socket error);
      ``EV_ERR`` without ``EV_READ`` means "close it".
    * After ``close()`` every method but ``close``, ``stats`` and ``wakeup``
      raises ``ValueError``; ``close`` and ``wakeup`` are then no-ops.
    """

    name: str

    def register(self, fd: int, mask: int) -> None:
        """Start watching ``fd`` for ``mask``.

        Raises:
            KeyError: ``fd`` is already registered.
            ValueError: bad fd or mask, or the backend is closed.
            OSError: the kernel refused (for example epoll and a regular file).
        """
        ...

    def modify(self, fd: int, mask: int) -> None:
        """Replace the interest of a registered ``fd``; a no-op if unchanged.

        Raises:
            KeyError: ``fd`` is not registered.
            ValueError: bad mask, or the backend is closed.
            OSError: the kernel refused.
        """
        ...

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``.

        Raises:
            KeyError: ``fd`` is not registered.
            ValueError: the backend is closed.
            OSError: the kernel refused for a reason other than the fd being gone.
        """
        ...

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """Block until an fd is ready, ``timeout`` seconds pass, or ``wakeup``.

        Args:
            timeout: ``None`` blocks, ``0`` (or less) polls, otherwise seconds;
                backends with millisecond clocks round up, never down.

        Returns:
            ``(fd, mask)`` pairs, each fd at most once; ``[]`` on timeout,
            wake-up or ``EINTR``.

        Raises:
            ValueError: the backend is closed.
        """
        ...

    def wakeup(self) -> None:
        """Make a blocked (or the next) ``wait`` return.

        Safe from another thread or a signal handler; must not race ``close``.
        """
        ...

    def close(self) -> None:
        """Release the kernel objects; idempotent."""
        ...

    def stats(self) -> BackendStats:
        """Return a snapshot of this backend's counters."""
        ...


def check_mask(mask: int) -> int:
    """Return the interest bits of ``mask``, or raise ``ValueError``."""
    if mask & ~_ACCEPTED or not mask & _INTEREST:
        raise ValueError(f"invalid event mask {mask!r}: need EV_READ and/or EV_WRITE")
    return mask & _INTEREST


class BackendBase(ABC):
    """The fd table, the wake-up pipe, the counters and ``close``.

    Subclasses open their kernel object in ``_open`` and implement the three
    ``_kernel_*`` changes plus ``wait``.  ``wait`` stays in the subclass
    because it is the hot path and binds its own locals.
    """

    name: str = "abstract"

    def __init__(self, *, select_module: ModuleType = select) -> None:
        self._select = select_module
        self._fds: dict[int, int] = {}
        self._closed = False
        self._waits = 0
        self._events = 0
        self._wake_r = -1
        self._wake_w = -1
        self._open()
        try:
            self._wake_r, self._wake_w = os.pipe()
            os.set_blocking(self._wake_r, False)
            os.set_blocking(self._wake_w, False)
            self._kernel_add(self._wake_r, EV_READ)
        except BaseException:
            self.close()
            raise

    @abstractmethod
    def _open(self) -> None:
        """Create the kernel object; raise ``OSError`` if it does not work here."""

    @abstractmethod
    def _kernel_add(self, fd: int, mask: int) -> None: ...

    @abstractmethod
    def _kernel_modify(self, fd: int, old: int, new: int) -> None: ...

    @abstractmethod
    def _kernel_remove(self, fd: int, old: int) -> None: ...

    @abstractmethod
    def _kernel_close(self) -> None: ...

    @abstractmethod
    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """See :meth:`EventBase.wait`."""

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"the {self.name} event backend is closed")

    def _wait_timeout(self, timeout: float | None) -> float | None:
        """Check the backend is open and clamp a negative ``timeout`` to 0:
        the kernel calls read a negative one as "forever"."""
        self._check_open()
        return 0 if timeout is not None and timeout < 0 else timeout

    def register(self, fd: int, mask: int) -> None:
        """See :meth:`EventBase.register`."""
        self._check_open()
        mask = check_mask(mask)
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd!r}")
        if fd in self._fds or fd == self._wake_r:
            raise KeyError(f"fd {fd} is already registered with the {self.name} backend")
        self._kernel_add(fd, mask)
        self._fds[fd] = mask

    def modify(self, fd: int, mask: int) -> None:
        """See :meth:`EventBase.modify`."""
        self._check_open()
        mask = check_mask(mask)
        try:
            old = self._fds[fd]
        except KeyError:
            raise KeyError(f"fd {fd} is not registered with the {self.name} backend") from None
        if old == mask:
            return
        self._kernel_modify(fd, old, mask)
        self._fds[fd] = mask

    def unregister(self, fd: int) -> None:
        """See :meth:`EventBase.unregister`."""
        self._check_open()
        try:
            old = self._fds[fd]
        except KeyError:
            raise KeyError(f"fd {fd} is not registered with the {self.name} backend") from None
        try:
            self._kernel_remove(fd, old)
        except OSError as exc:
            if exc.errno not in FD_GONE:
                raise
        del self._fds[fd]

    def wakeup(self) -> None:
        """See :meth:`EventBase.wakeup`."""
        wake_w = self._wake_w
        if wake_w < 0:
            return
        try:
            os.write(wake_w, b"\0")
        except BlockingIOError:
            # The pipe is full, so a wake-up is already pending.
            pass

    def _drain_wake(self) -> None:
        try:
            # A short read means the pipe is empty: skip the EAGAIN syscall.
            while len(os.read(self._wake_r, 4096)) == 4096:
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        """See :meth:`EventBase.close`."""
        if self._closed:
            return
        self._closed = True
        self._fds.clear()
        wake_r, wake_w = self._wake_r, self._wake_w
        self._wake_r = self._wake_w = -1
        try:
            self._kernel_close()
        finally:
            for fd in (wake_r, wake_w):
                if fd >= 0:
                    os.close(fd)

    def stats(self) -> BackendStats:
        """See :meth:`EventBase.stats`."""
        return BackendStats(
            backend=self.name, registered=len(self._fds), waits=self._waits, events=self._events
        )

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._fds)} fds"
        return f"<{type(self).__name__} {state}>"


class PollLikeBackend(BackendBase):
    """Shared code for epoll and poll, which have the same object interface.

    Parameterised by the backend's ``name``, as CPython's
    ``_PollLikeSelector`` is by class attributes: it names the constructor in
    the ``select`` module and, upper-cased, the prefix of the flag constants
    (``EPOLLIN``...); a missing ``*NVAL`` constant (epoll has none) counts as 0.
    """

    def _open(self) -> None:
        sel = self._select
        p = self.name.upper()
        self._k_in: int = getattr(sel, p + "IN")
        self._k_out: int = getattr(sel, p + "OUT")
        self._k_err: int = getattr(sel, p + "ERR")
        self._k_hup: int = getattr(sel, p + "HUP")
        self._k_nval: int = getattr(sel, p + "NVAL", 0)
        self._to_kernel = {
            EV_READ: self._k_in,
            EV_WRITE: self._k_out,
            EV_READ | EV_WRITE: self._k_in | self._k_out,
        }
        # Kernel mask -> EV_* mask, filled lazily: only a handful of
        # combinations ever occur, so this stays tiny and every event after
        # the first of its kind costs one dict lookup.
        self._from_kernel: dict[int, int] = {}
        self._poller: Any = getattr(sel, self.name)()

    def _kernel_close(self) -> None:
        # epoll holds a kernel fd; a poll object holds none.  Either way drop
        # the object, so a stale reference cannot keep polling.
        close = getattr(self._poller, "close", None)
        if close is not None:
            close()
        self._poller = None

    def _translate(self, kmask: int) -> int:
        mask = 0
        if kmask & self._k_in:
            mask |= EV_READ
        if kmask & self._k_out:
            mask |= EV_WRITE
        if kmask & (self._k_err | self._k_nval):
            mask |= EV_ERR
        if kmask & self._k_hup:
            mask |= EV_READ | EV_ERR
        self._from_kernel[kmask] = mask
        return mask

    def _kernel_add(self, fd: int, mask: int) -> None:
        self._poller.register(fd, self._to_kernel[mask])

    def _kernel_modify(self, fd: int, old: int, new: int) -> None:
        self._poller.modify(fd, self._to_kernel[new])

    def _kernel_remove(self, fd: int, old: int) -> None:
        self._poller.unregister(fd)

    @abstractmethod
    def _kernel_wait(self, timeout: float | None) -> list[tuple[int, int]]: ...

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """See :meth:`EventBase.wait`."""
        timeout = self._wait_timeout(timeout)
        try:
            ready = self._kernel_wait(timeout)
        except InterruptedError:
            return []
        self._waits += 1
        out: list[tuple[int, int]] = []
        append = out.append
        from_kernel = self._from_kernel
        wake = self._wake_r
        # HUP/NVAL arrive whatever the interest; mask READ back out for a
        # write-only fd so a conn that stopped reading is not made to read.
        odd = self._k_hup | self._k_nval
        fds = self._fds
        for fd, kmask in ready:
            if fd == wake:
                self._drain_wake()
                continue
            mask = from_kernel.get(kmask)
            if mask is None:
                mask = self._translate(kmask)
            if kmask & odd:
                mask &= fds.get(fd, 0) | EV_ERR
            append((fd, mask))
        self._events += len(out)
        return out
