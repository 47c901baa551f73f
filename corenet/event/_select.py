# The select backend (POSIX select(2)): the last resort, kept because it
# works everywhere and as a reference the other backends are tested against.
#
# Kernel and CPython quirks this module handles, or that its callers must know:
#
# * fd_set is a bitmap of FD_SETSIZE bits (1024 on Linux, macOS and the
#   BSDs); CPython raises ValueError for a larger fd, and it would do so
#   inside wait(), breaking the loop for every connection.  register()
#   refuses such an fd up front with ValueError instead.
#
# * Each call copies and rescans both sets, so a wait is O(highest fd).
#
# * select has no error set: a socket error or a hang-up shows up as
#   readable (recv returns the error or b"") and, for writers, writable.
#   The third set is for out-of-band data, not errors, so it is not used,
#   and this backend only reports EV_ERR in the case below.
#
# * One closed fd in a set makes the whole call fail with EBADF, without
#   saying which.  wait() then finds the culprits with fstat() and reports
#   them as EV_ERR, as poll reports POLLNVAL, so the owner closes them and
#   the other connections keep working.
#
# * The timeout is a struct timeval (microseconds); a negative one is an
#   error in CPython, so wait() clamps it to 0.
#
# * EINTR: CPython retries after running signal handlers (PEP 475); an
#   InterruptedError that still escapes makes wait() return [].

from __future__ import annotations

import errno
import os

from corenet.event._base import EV_ERR, EV_READ, EV_WRITE, BackendBase

__all__ = ["SelectBackend"]


class SelectBackend(BackendBase):
    """Level-triggered ``select(2)`` backend; see the module header for quirks."""

    name = "select"
    FD_SETSIZE = 1024

    def _open(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def _kernel_add(self, fd: int, mask: int) -> None:
        if fd >= self.FD_SETSIZE:
            raise ValueError(
                f"fd {fd} is too large for select() (FD_SETSIZE is {self.FD_SETSIZE}); "
                "use the epoll, kqueue or poll backend"
            )
        if mask & EV_READ:
            self._readers.add(fd)
        if mask & EV_WRITE:
            self._writers.add(fd)

    def _kernel_modify(self, fd: int, old: int, new: int) -> None:
        self._kernel_remove(fd, old)
        self._kernel_add(fd, new)

    def _kernel_remove(self, fd: int, old: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def _kernel_close(self) -> None:
        self._readers.clear()
        self._writers.clear()

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """See :meth:`EventBase.wait`."""
        timeout = self._wait_timeout(timeout)
        try:
            readable, writable, _ = self._select.select(self._readers, self._writers, (), timeout)
        except InterruptedError:
            return []
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            return self._report_bad_fds(exc)
        self._waits += 1
        wake = self._wake_r
        if not writable:
            out = [(fd, EV_READ) for fd in readable if fd != wake]
            if len(out) != len(readable):
                self._drain_wake()
        else:
            merged: dict[int, int] = dict.fromkeys(writable, EV_WRITE)
            for fd in readable:
                merged[fd] = merged.get(fd, 0) | EV_READ
            if merged.pop(wake, None) is not None:
                self._drain_wake()
            out = list(merged.items())
        self._events += len(out)
        return out

    def _report_bad_fds(self, exc: OSError) -> list[tuple[int, int]]:
        bad = []
        for fd in self._readers | self._writers:
            try:
                os.fstat(fd)
            except OSError:
                bad.append(fd)
        if not bad or self._wake_r in bad:
            # Not an fd of ours going bad: a real bug, so let it surface.
            raise exc
        self._waits += 1
        out = [(fd, EV_ERR) for fd in bad]
        self._events += len(out)
        return out
