"""The timer heap: ordering, cancellation, re-entrancy and bounded memory."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.timers import TimerHandle, Timers

if TYPE_CHECKING:
    from collections.abc import Callable


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def assert_fires_alone(timers: Timers, fired: list[str], when: float, label: str) -> None:
    """One timer is left, due at ``when``; running it appends ``label`` to ``fired``."""
    assert len(timers) == 1
    assert timers.next_deadline() == when
    assert timers.run_due(when) == 1
    assert fired == [label]


def test_runs_due_timers_in_deadline_order() -> None:
    timers = Timers()
    fired: list[str] = []
    timers.call_at(3.0, fired.append, "c")
    timers.call_at(1.0, fired.append, "a")
    timers.call_at(2.0, fired.append, "b")
    timers.call_at(9.0, fired.append, "late")
    assert timers.next_deadline() == 1.0
    assert timers.run_due(3.0) == 3
    assert fired == ["a", "b", "c"]
    assert len(timers) == 1
    assert timers.next_deadline() == 9.0


def test_equal_deadlines_fire_in_scheduling_order() -> None:
    timers = Timers()
    fired: list[int] = []
    for i in range(20):
        timers.call_at(5.0, fired.append, i)
    timers.run_due(5.0)
    assert fired == list(range(20))


def test_not_due_yet_does_not_run() -> None:
    timers = Timers()
    fired: list[int] = []
    timers.call_at(5.0, fired.append, 1)
    assert timers.run_due(4.999) == 0
    assert fired == []
    assert timers.run_due(5.0) == 1


def test_call_later_uses_the_clock() -> None:
    clock = FakeClock(100.0)
    timers = Timers(clock)
    handle = timers.call_later(0.5, lambda: None)
    assert handle.when == 100.5
    assert timers.next_deadline() == 100.5


def test_default_clock_is_monotonic() -> None:
    import time

    assert Timers().clock is time.monotonic


def test_cancel_prevents_the_call_and_is_idempotent() -> None:
    timers = Timers()
    fired: list[str] = []
    handle = timers.call_at(1.0, fired.append, "x")
    timers.call_at(2.0, fired.append, "y")
    handle.cancel()
    handle.cancel()
    assert handle.cancelled
    assert_fires_alone(timers, fired, 2.0, "y")


def test_cancel_after_run_is_a_no_op() -> None:
    timers = Timers()
    handle = timers.call_at(1.0, lambda: None)
    timers.run_due(1.0)
    handle.cancel()
    assert not handle.cancelled
    assert len(timers) == 0


def test_next_deadline_none_when_empty_or_all_cancelled() -> None:
    timers = Timers()
    assert timers.next_deadline() is None
    handles = [timers.call_at(float(i), lambda: None) for i in range(5)]
    for handle in handles:
        handle.cancel()
    assert timers.next_deadline() is None
    assert len(timers) == 0
    assert not timers


def test_timer_due_now_scheduled_by_callback_runs_next_call() -> None:
    timers = Timers()
    fired: list[int] = []

    def again(n: int) -> None:
        fired.append(n)
        timers.call_at(0.0, again, n + 1)  # already due, every time

    timers.call_at(1.0, again, 0)
    assert timers.run_due(1.0) == 1
    assert fired == [0]
    assert timers.run_due(1.0) == 1
    assert fired == [0, 1]
    assert len(timers) == 1


def test_earlier_timer_added_by_callback_does_not_block_older_due_ones() -> None:
    timers = Timers()
    fired: list[str] = []

    def first() -> None:
        fired.append("5")
        timers.call_at(6.0, fired.append, "6")

    timers.call_at(5.0, first)
    timers.call_at(8.0, fired.append, "8")
    assert timers.run_due(10.0) == 2
    assert fired == ["5", "8"]
    timers.run_due(10.0)
    assert fired == ["5", "8", "6"]


def test_callback_cancelling_a_later_due_timer_in_the_same_batch() -> None:
    timers = Timers()
    fired: list[str] = []
    victim: list[TimerHandle] = []
    timers.call_at(1.0, lambda: victim[0].cancel())
    victim.append(timers.call_at(2.0, fired.append, "victim"))
    timers.call_at(3.0, fired.append, "other")
    assert timers.run_due(5.0) == 2
    assert fired == ["other"]
    assert victim[0].cancelled
    assert len(timers) == 0


def test_raising_callback_is_logged_and_others_run(caplog: pytest.LogCaptureFixture) -> None:
    timers = Timers()
    fired: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    timers.call_at(1.0, boom)
    timers.call_at(2.0, fired.append, "after")
    with caplog.at_level(logging.ERROR, logger="corenet.timers"):
        assert timers.run_due(2.0) == 2
    assert fired == ["after"]
    [record] = caplog.records
    assert record.name == "corenet.timers"
    assert record.exc_info is not None
    assert record.exc_info[1] is not None
    assert str(record.exc_info[1]) == "boom"


def test_base_exception_keeps_the_rest_scheduled() -> None:
    timers = Timers()
    fired: list[str] = []

    def stop() -> None:
        raise KeyboardInterrupt

    timers.call_at(1.0, stop)
    timers.call_at(2.0, fired.append, "kept")
    with pytest.raises(KeyboardInterrupt):
        timers.run_due(5.0)
    assert_fires_alone(timers, fired, 2.0, "kept")


def test_cancelling_most_timers_compacts_the_heap() -> None:
    timers = Timers()
    handles = [timers.call_at(float(i), lambda: None) for i in range(1000)]
    for handle in handles[:-10]:
        handle.cancel()
        assert timers.heap_size() <= 2 * len(timers) + 1
    assert len(timers) == 10
    assert timers.heap_size() <= 21


def test_cancel_from_callback_during_compaction_keeps_run_due_consistent() -> None:
    # Cancelling many timers from inside a callback rebuilds the heap in place
    # while run_due is using it.
    timers = Timers()
    fired: list[int] = []
    later = [timers.call_at(100.0 + i, fired.append, i) for i in range(50)]

    def cancel_most() -> None:
        for handle in later[:45]:
            handle.cancel()

    timers.call_at(1.0, cancel_most)
    timers.call_at(1.0, fired.append, -1)
    assert timers.run_due(1.0) == 2
    assert fired == [-1]
    assert timers.run_due(1000.0) == 5
    assert fired == [-1, 45, 46, 47, 48, 49]


def test_repr_mentions_state() -> None:
    timers = Timers()
    handle = timers.call_at(1.0, print)
    assert "pending" in repr(handle)
    handle.cancel()
    assert "cancelled" in repr(handle)
    assert "live=0" in repr(timers)


# A schedule is a list of operations: ("add", deadline), ("cancel", index of
# an earlier add, modulo their number) and ("run", time step forward).
_op = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 50).map(float)),
    st.tuples(st.just("cancel"), st.integers(0, 10_000)),
    st.tuples(st.just("run"), st.integers(0, 20)),
)


@given(st.lists(_op, max_size=200))
# Running the live timers left only cancelled ones: the heap must shrink.
@example(
    [("add", 0.0), ("add", 0.0), ("add", 50.0), ("add", 50.0)]
    + [("cancel", 2), ("cancel", 3), ("run", 1)]
)
def test_random_schedules(ops: list[tuple[str, float]]) -> None:
    timers = Timers()
    now = 0.0
    handles: list[TimerHandle] = []
    deadlines: list[float] = []
    fired: list[int] = []
    cancelled: set[int] = set()

    def record(i: int) -> Callable[[], None]:
        return lambda: fired.append(i)

    for kind, value in ops:
        if kind == "add":
            handles.append(timers.call_at(value, record(len(handles))))
            deadlines.append(value)
        elif kind == "cancel" and handles:
            i = int(value) % len(handles)
            handles[i].cancel()
            if i not in fired:
                cancelled.add(i)
        elif kind == "run":
            now += value
            before = len(fired)
            ran = timers.run_due(now)
            batch = fired[before:]
            assert ran == len(batch)
            # Deadline order, FIFO among equal deadlines.
            assert batch == sorted(batch, key=lambda i: (deadlines[i], i))
            # Everything due has run; nothing early.
            assert all(deadlines[i] <= now for i in batch)
            assert all(
                i in fired or i in cancelled
                for i, deadline in enumerate(deadlines)
                if deadline <= now
            )
        live = len(handles) - len(set(fired) | cancelled)
        assert len(timers) == live
        assert timers.heap_size() <= 2 * live + 1
        deadline = timers.next_deadline()
        if live:
            pending = [d for i, d in enumerate(deadlines) if i not in fired and i not in cancelled]
            assert deadline == min(pending)
        else:
            assert deadline is None
    assert len(fired) == len(set(fired)), "a callback fired twice"
    assert not cancelled & set(fired), "a cancelled callback fired"
