# The kqueue backend (macOS, FreeBSD, NetBSD, OpenBSD, DragonFly).
#
# Kernel quirks this module handles, or that its callers must know:
#
# * Reading and writing are two separate filters (EVFILT_READ, EVFILT_WRITE),
#   each its own knote, so an fd's interest is up to two kevents and a modify
#   is a set of EV_ADD / EV_DELETE changes per filter.  modify() adds before
#   it deletes, so a failure part-way never leaves an fd with no filter.
#
# * Each change is its own kevent() call.  With nevents == 0 the kernel stops
#   at the first failing change and reports it as the syscall's error, with
#   the earlier changes already applied; one call per change tells us exactly
#   which one failed, so the fd table is updated after each success and stays
#   true.  (EV_RECEIPT would avoid that but CPython does not expose it on
#   every platform.)  The common case, toggling EV_WRITE, is one change.
#
# * Closing an fd deletes its knotes, dups or not (unlike epoll).  EV_DELETE
#   on it then fails with EBADF, or ENOENT if the number was reused, and
#   unregister treats both as "already gone".
#
# * Level-triggered: no EV_CLEAR or EV_ONESHOT.  A level-triggered knote that
#   is still active is queued again after kevent() returns it, so asking again
#   returns the same readiness.  The batch is sized to the registered filters
#   (capped by max_batch); while a batch comes back full we call again with a
#   zero timeout, but stop once as many events as there are filters have come
#   back, or a busy loop would spin forever on repeats.  Events are merged per
#   fd, so each fd is reported once with READ and WRITE together.
#
# * EV_EOF on the read filter means the peer shut down its writing side,
#   possibly only half (shutdown(SHUT_WR) after its last request): data may
#   still be buffered.  It is reported as EV_READ, so recv drains the data and
#   then returns b"", plus EV_ERR when fflags carries a socket error.  EV_EOF
#   on the write filter means the peer will not read any more, so writing
#   would fail: EV_WRITE | EV_ERR.
#
# * An event with EV_ERROR carries an errno in data, not readiness: EV_ERR.
#   Changes are applied with nevents == 0, where failures raise instead, so
#   this only guards against other kernels' habits.
#
# * A kqueue is not inherited by a fork child; the child must build its own
#   backend.  Some device fds (ttys on old macOS) are refused; the core only
#   registers sockets and pipes.
#
# * The timeout is a struct timespec, so float seconds lose nothing.  EINTR:
#   CPython retries after running signal handlers (PEP 475); an
#   InterruptedError that still escapes makes wait() return [].

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corenet.event._base import EV_ERR, EV_READ, EV_WRITE, FD_GONE, BackendBase

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["KqueueBackend"]


class KqueueBackend(BackendBase):
    """Level-triggered ``kqueue(2)`` backend; see the module header for quirks."""

    name = "kqueue"
    # Upper bound on one kevent() batch, so a loop with 100k fds does not
    # allocate a 100k-entry result array on every wait.
    max_batch = 1024

    def _open(self) -> None:
        sel = self._select
        self._k_read: int = sel.KQ_FILTER_READ
        self._k_write: int = sel.KQ_FILTER_WRITE
        self._k_add: int = sel.KQ_EV_ADD
        self._k_delete: int = sel.KQ_EV_DELETE
        self._k_eof: int = sel.KQ_EV_EOF
        self._k_error: int = sel.KQ_EV_ERROR
        self._kevent: Any = sel.kevent
        self._nfilters = 0
        self._kq: Any = sel.kqueue()

    def _filters(self, mask: int) -> Iterator[tuple[int, int]]:
        if mask & EV_READ:
            yield EV_READ, self._k_read
        if mask & EV_WRITE:
            yield EV_WRITE, self._k_write

    def _apply(self, fd: int, kfilter: int, flags: int) -> None:
        self._kq.control([self._kevent(fd, kfilter, flags)], 0, 0)
        self._nfilters += 1 if flags == self._k_add else -1

    def _kernel_add(self, fd: int, mask: int) -> None:
        done = []
        try:
            for _bit, kfilter in self._filters(mask):
                self._apply(fd, kfilter, self._k_add)
                done.append(kfilter)
        except OSError:
            # Undo the half that worked so register() stays all-or-nothing.
            for kfilter in done:
                try:
                    self._apply(fd, kfilter, self._k_delete)
                except OSError:
                    pass
            raise

    def _kernel_modify(self, fd: int, old: int, new: int) -> None:
        current = old
        try:
            for bit, kfilter in self._filters(new & ~old):
                self._apply(fd, kfilter, self._k_add)
                current |= bit
            for bit, kfilter in self._filters(old & ~new):
                self._apply(fd, kfilter, self._k_delete)
                current &= ~bit
        except OSError:
            # Record what the kernel now has before the error propagates.
            self._fds[fd] = current
            raise

    def _kernel_remove(self, fd: int, old: int) -> None:
        for bit, kfilter in self._filters(old):
            try:
                self._apply(fd, kfilter, self._k_delete)
            except OSError as exc:
                if exc.errno not in FD_GONE:
                    self._fds[fd] = old
                    raise
                self._nfilters -= 1
            old &= ~bit

    def _kernel_close(self) -> None:
        self._kq.close()

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """See :meth:`EventBase.wait`."""
        timeout = self._wait_timeout(timeout)
        nfilters = max(self._nfilters, 1)
        batch_size = min(nfilters, self.max_batch)
        control = self._kq.control
        try:
            batch = control(None, batch_size, timeout)
        except InterruptedError:
            return []
        merged: dict[int, int] = {}
        seen = 0
        while True:
            self._merge(batch, merged)
            seen += len(batch)
            if len(batch) < batch_size or seen >= nfilters:
                break
            try:
                batch = control(None, batch_size, 0)
            except InterruptedError:
                break
        self._waits += 1
        self._events += len(merged)
        return list(merged.items())

    def _merge(self, batch: list[Any], merged: dict[int, int]) -> None:
        k_read = self._k_read
        k_write = self._k_write
        k_eof = self._k_eof
        k_error = self._k_error
        wake = self._wake_r
        for kev in batch:
            fd = kev.ident
            if fd == wake:
                self._drain_wake()
                continue
            flags = kev.flags
            if flags & k_error:
                mask = EV_ERR
            elif kev.filter == k_read:
                mask = EV_READ | EV_ERR if flags & k_eof and kev.fflags else EV_READ
            elif kev.filter == k_write:
                mask = EV_WRITE | EV_ERR if flags & k_eof else EV_WRITE
            else:
                continue
            merged[fd] = merged.get(fd, 0) | mask
