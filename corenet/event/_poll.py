# The poll backend (POSIX poll(2)): the fallback where epoll and kqueue are
# missing or refuse to work, with no FD_SETSIZE limit.
#
# Kernel and CPython quirks this module handles, or that its callers must know:
#
# * Every poll() call hands the kernel the whole fd array, so a wait costs
#   O(registered fds) even when one fd is ready.  CPython keeps the pollfd
#   array between calls and rebuilds it after any register/modify/unregister,
#   which is one more reason to toggle EV_WRITE only when a send queue goes
#   from empty to non-empty and back, never per write.
#
# * poll.register never fails, even for a closed fd: the problem surfaces on
#   the next poll() as POLLNVAL for that fd, which becomes EV_ERR so the
#   owner closes it.  (epoll would have refused the register with EBADF.)
#
# * POLLERR, POLLHUP and POLLNVAL are reported whatever the requested events.
#   POLLHUP means both directions are shut; a half-close is plain POLLIN.
#   HUP becomes EV_READ | EV_ERR so the owner's recv drains buffered data and
#   then sees b"" (the READ bit is masked out for a write-only registration).
#   On Linux POLLIN/POLLOUT/POLLERR equal EV_READ/EV_WRITE/EV_ERR, so the
#   translation is one cached dict lookup per event.
#
# * The timeout is in milliseconds.  We round up, so a timer 0.1 ms away
#   sleeps 1 ms instead of spinning with timeout 0 until it is due; a
#   negative timeout would mean "forever" and is clamped to 0 by wait().
#
# * Some old macOS releases had a poll() that failed on devices; CPython then
#   leaves select.poll out, which the plugin's hasattr() probe sees.
#
# * A CPython poll object refuses concurrent poll() calls from two threads
#   (RuntimeError): one backend belongs to one loop thread; other threads
#   only call wakeup().
#
# * EINTR: CPython retries after running signal handlers (PEP 475); an
#   InterruptedError that still escapes makes wait() return [].

from __future__ import annotations

import math

from corenet.event._base import PollLikeBackend

__all__ = ["PollBackend"]


class PollBackend(PollLikeBackend):
    """Level-triggered ``poll(2)`` backend; see the module header for quirks."""

    name = "poll"

    def _kernel_wait(self, timeout: float | None) -> list[tuple[int, int]]:
        ms = None if timeout is None else math.ceil(timeout * 1000)
        result: list[tuple[int, int]] = self._poller.poll(ms)
        return result
