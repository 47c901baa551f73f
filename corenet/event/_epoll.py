# The epoll backend (Linux).
#
# Kernel quirks this module handles, or that its callers must know:
#
# * epoll watches open file *descriptions*, not fd numbers.  Closing an fd
#   removes it from the interest list only when no other fd (a dup, or a copy
#   inherited across fork) refers to the same description; otherwise events
#   keep arriving under the closed number, which the next socket may reuse.
#   So the core must unregister before it closes.  If it did not,
#   EPOLL_CTL_DEL fails with EBADF (fd closed) or ENOENT (number reused by a
#   file epoll never saw); unregister treats both as "already gone" and drops
#   the fd from the table, because there is nothing left we could delete.
#
# * EPOLLERR and EPOLLHUP are reported whether or not they were asked for.
#   EPOLLHUP only means both directions are shut down (peer closed, or RST);
#   a half-close (peer did shutdown(SHUT_WR)) shows up as plain EPOLLIN, so a
#   client that half-closes after its last request still gets its replies.
#   HUP becomes EV_READ | EV_ERR so the owner's recv returns the buffered
#   data and then b"" (or the socket error) instead of spinning on HUP;
#   for a write-only registration the READ bit is masked back out.
#
# * Level-triggered only.  EPOLLET would save epoll_ctl calls but loses
#   events unless every reader drains until EAGAIN, which costs an extra
#   failing recv per readiness in Python (about 2 us); see STYLE.md 4.
#
# * maxevents is sized to the registered fds (plus the wake-up pipe), never
#   below 1: with a fixed small batch a busy loop starves the fds past the
#   batch until the next turn, and CPython allocates the result array per
#   call, so a huge fixed size would cost memory on every wait.
#
# * epoll_wait takes milliseconds; CPython converts our float seconds
#   rounding *up*, so a 0.1 ms timer sleeps 1 ms instead of busy-polling.
#   A negative timeout means "forever" to the kernel; wait() clamps it to 0.
#
# * EPOLL_CTL_ADD refuses regular files and directories with EPERM (they are
#   always ready to poll and select).  The core only registers sockets and
#   pipes, so the error propagates as the bug it would be.
#
# * The epoll fd is created close-on-exec.  After fork the child shares the
#   parent's interest list: a child must build its own backend, never call
#   register/unregister on an inherited one.
#
# * EINTR: since PEP 475 CPython retries epoll_wait itself unless a signal
#   handler raised; if InterruptedError still escapes, wait() returns [].
#   Any other OSError from epoll_ctl is a bug and propagates.

from __future__ import annotations

from corenet.event._base import PollLikeBackend

__all__ = ["EpollBackend"]


class EpollBackend(PollLikeBackend):
    """Level-triggered ``epoll(7)`` backend; see the module header for quirks."""

    name = "epoll"

    def _kernel_wait(self, timeout: float | None) -> list[tuple[int, int]]:
        result: list[tuple[int, int]] = self._poller.poll(
            -1 if timeout is None else timeout, len(self._fds) + 1
        )
        return result
