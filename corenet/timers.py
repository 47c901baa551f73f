"""Timers for request timeouts, retries and server ejection.

Theory of operation
-------------------

A binary heap of ``(when, seq, handle)`` entries.  ``seq`` grows with every
schedule, so equal deadlines fire first-in first-out and the tuple
comparison never reaches the handle.

Cancelling is lazy: most request timeouts are cancelled (the reply came in
time), and removing an entry from the middle of a heap costs O(n).  A
cancelled handle stays in the heap, is skipped when it reaches the top, and
is counted; when cancelled entries are more than half of the heap (checked
after each cancel and after ``run_due`` pops the due entries) it is rebuilt
without them.  Each rebuild costs O(n) and removes more than n/2
entries that each took one ``cancel()``, so cancelling stays O(1) amortised
and the heap never holds more than about twice the live timers.

``run_due(now)`` first pops every entry due at ``now`` and then runs them in
(deadline, seq) order.  A callback that schedules a timer already due lands
in the heap for the *next* call, so one call always ends, and a callback that
cancels a popped-but-not-yet-run timer still prevents it from running.

The loop asks ``next_deadline()`` for its ``wait`` timeout and, when there
was a deadline, calls ``run_due(now)`` after dispatching the turn's events.
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVarTuple

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["TimerHandle", "Timers"]

logger = logging.getLogger("corenet.timers")

Ts = TypeVarTuple("Ts")


@attrs.define(slots=True, eq=False, repr=False)
class TimerHandle:
    """One scheduled call; keep it to ``cancel()`` the call.

    Attributes:
        when: the deadline, in ``time.monotonic()`` seconds.
        callback: what runs at the deadline, as ``callback(*args)``.
        args: its positional arguments.
    """

    when: float
    callback: Callable[..., object]
    args: tuple[Any, ...]
    # The owner while the call is still pending (in the heap or popped for
    # the current run_due); None once it ran or was cancelled.
    _timers: Timers | None
    _in_heap: bool = True
    _cancelled: bool = False

    @property
    def cancelled(self) -> bool:
        """True once ``cancel()`` was called before the callback ran."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop the callback from running; a no-op once it ran or was cancelled."""
        timers = self._timers
        if timers is None:
            return
        self._timers = None
        self._cancelled = True
        timers._forget(self)

    def __repr__(self) -> str:
        state = "cancelled" if self._cancelled else "done" if self._timers is None else "pending"
        return f"<TimerHandle when={self.when:.6f} {state} {self.callback!r}>"


class Timers:
    """A heap of timers on the monotonic clock.

    Args:
        clock: the time source for ``call_later``; tests pass a fake one.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = 0
        self._live = 0
        self._cancelled_in_heap = 0

    def call_at(self, when: float, callback: Callable[[*Ts], object], *args: *Ts) -> TimerHandle:
        """Run ``callback(*args)`` at monotonic time ``when`` (or soon after).

        Returns:
            The handle that cancels the call.
        """
        handle = TimerHandle(when, callback, args, self)
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, handle))
        self._live += 1
        return handle

    def call_later(
        self, delay: float, callback: Callable[[*Ts], object], *args: *Ts
    ) -> TimerHandle:
        """Run ``callback(*args)`` ``delay`` seconds from now.

        Returns:
            The handle that cancels the call.
        """
        return self.call_at(self.clock() + delay, callback, *args)

    def _forget(self, handle: TimerHandle) -> None:
        self._live -= 1
        if not handle._in_heap:
            # Popped for the running run_due; it checks the flag itself.
            return
        self._cancelled_in_heap += 1
        self._maybe_compact()

    def _maybe_compact(self) -> None:
        heap = self._heap
        if self._cancelled_in_heap * 2 > len(heap):
            # In place: run_due may hold a reference to this list.
            heap[:] = [entry for entry in heap if not entry[2]._cancelled]
            heapq.heapify(heap)
            self._cancelled_in_heap = 0

    def _drop_cancelled_top(self) -> None:
        heap = self._heap
        while heap and heap[0][2]._cancelled:
            heapq.heappop(heap)
            self._cancelled_in_heap -= 1

    def next_deadline(self) -> float | None:
        """Return the earliest live deadline (monotonic seconds), or None."""
        self._drop_cancelled_top()
        return self._heap[0][0] if self._heap else None

    def run_due(self, now: float) -> int:
        """Run every live timer whose deadline is ``<= now``, earliest first.

        Equal deadlines run in the order they were scheduled.  Timers that
        the callbacks schedule run on a later call, even if already due.  A
        callback that raises is logged and the others still run.

        Returns:
            How many callbacks ran (including ones that raised).
        """
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            handle = entry[2]
            if handle._cancelled:
                self._cancelled_in_heap -= 1
                continue
            handle._in_heap = False
            due.append(entry)
        if due:
            # Popping live entries raises the cancelled share of what is left.
            self._maybe_compact()
        ran = 0
        done = 0
        try:
            for _, _, handle in due:
                done += 1
                if handle._timers is None:
                    continue  # cancelled by an earlier callback of this batch
                handle._timers = None
                self._live -= 1
                ran += 1
                try:
                    handle.callback(*handle.args)
                except Exception:
                    logger.exception("timer callback %r failed", handle.callback)
        finally:
            # Entries are left over only if a callback raised a BaseException
            # (KeyboardInterrupt...): keep them scheduled rather than lose them.
            for entry in due[done:]:
                if entry[2]._timers is not None:
                    entry[2]._in_heap = True
                    heapq.heappush(heap, entry)
        return ran

    def heap_size(self) -> int:
        """Return the number of heap entries, cancelled ones included (for tests)."""
        return len(self._heap)

    def __len__(self) -> int:
        return self._live

    def __bool__(self) -> bool:
        return self._live > 0

    def __repr__(self) -> str:
        return f"<Timers live={self._live} heap={len(self._heap)}>"
