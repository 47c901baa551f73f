"""The conformance suite every event backend that works on this OS must pass.

Each test runs once per backend; a backend whose ``select`` attribute is
missing, or whose kernel object cannot be created here, is skipped with the
reason.  Timing checks are one-sided and loose ("returned, and not before
half the timeout") so they cannot flake on a loaded machine.
"""

from __future__ import annotations

import math
import os
import select
import signal
import socket
import sys
import threading
import time
import types
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from corenet.event import (
    EV_ERR,
    EV_READ,
    EV_WRITE,
    BackendStats,
    EventBase,
    PollBackend,
)
from corenet.event._plugin import corenet_register_event_backends
from corenet.plugin import EventBackendRegistry

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager

ALL_BACKENDS = ("kqueue", "epoll", "poll", "select")


def _builtin_registry() -> EventBackendRegistry:
    registry = EventBackendRegistry()
    corenet_register_event_backends(registry)
    return registry


def _skip_reason(name: str) -> str | None:
    registry = _builtin_registry()
    if name not in registry:
        return f"select.{name} is not available on {sys.platform}"
    try:
        registry.get(name)().close()
    except OSError as exc:
        return f"{name} cannot be created here: {exc}"
    return None


def _params() -> list[Any]:
    params = []
    for name in ALL_BACKENDS:
        reason = _skip_reason(name)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_params())
def backend(request: pytest.FixtureRequest) -> Iterator[EventBase]:
    instance = _builtin_registry().get(request.param)()
    try:
        yield instance
    finally:
        instance.close()


SocketPair = tuple[socket.socket, socket.socket]


def _pair() -> SocketPair:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@pytest.fixture
def sockpair() -> Iterator[SocketPair]:
    a, b = _pair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


def _events(backend: EventBase, timeout: float = 2.0) -> dict[int, int]:
    """One wait, as a dict, checking that no fd is reported twice."""
    result = backend.wait(timeout)
    fds = [fd for fd, _ in result]
    assert len(fds) == len(set(fds)), f"an fd was reported twice: {result}"
    return dict(result)


@contextmanager
def _after(delay: float, action: Callable[[], object]) -> Iterator[None]:
    """Run ``action`` from another thread ``delay`` seconds from now."""
    timer = threading.Timer(delay, action)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()


@contextmanager
def _alarm(delay: float, action: Callable[[], object]) -> Iterator[None]:
    """Run ``action`` from a SIGALRM handler ``delay`` seconds from now."""
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: action())
    try:
        signal.setitimer(signal.ITIMER_REAL, delay)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_stats_name(backend: EventBase) -> None:
    stats = backend.stats()
    assert isinstance(stats, BackendStats)
    assert stats.backend == backend.name
    assert stats.registered == 0


def test_read_ready_after_peer_writes(backend: EventBase, sockpair: SocketPair) -> None:
    a, b = sockpair
    backend.register(a.fileno(), EV_READ)
    assert backend.wait(0) == []
    b.send(b"x")
    assert _events(backend) == {a.fileno(): EV_READ}
    # Level-triggered: still ready until the data is read.
    assert _events(backend) == {a.fileno(): EV_READ}
    assert a.recv(10) == b"x"
    assert backend.wait(0) == []


def test_write_ready_immediately(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_WRITE)
    assert _events(backend, 0) == {a.fileno(): EV_WRITE}


def test_modify_read_write_both(backend: EventBase, sockpair: SocketPair) -> None:
    a, b = sockpair
    fd = a.fileno()
    b.send(b"x")
    backend.register(fd, EV_READ)
    assert _events(backend) == {fd: EV_READ}
    backend.modify(fd, EV_WRITE)
    assert _events(backend) == {fd: EV_WRITE}
    backend.modify(fd, EV_READ | EV_WRITE)
    assert _events(backend) == {fd: EV_READ | EV_WRITE}
    backend.modify(fd, EV_READ)
    assert _events(backend) == {fd: EV_READ}
    backend.modify(fd, EV_READ)  # unchanged: a no-op
    assert backend.stats().registered == 1


def test_unregister_stops_events(backend: EventBase, sockpair: SocketPair) -> None:
    a, b = sockpair
    backend.register(a.fileno(), EV_READ | EV_WRITE)
    b.send(b"x")
    assert _events(backend)
    backend.unregister(a.fileno())
    assert backend.wait(0) == []
    assert backend.stats().registered == 0
    # The fd can be registered again afterwards.
    backend.register(a.fileno(), EV_READ)
    assert _events(backend) == {a.fileno(): EV_READ}


def test_register_twice_raises_key_error(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_READ)
    with pytest.raises(KeyError, match="already registered"):
        backend.register(a.fileno(), EV_WRITE)
    # The failed call changed nothing.
    assert _events(backend, 0) == {}
    assert backend.stats().registered == 1


def test_unknown_fd_raises_key_error(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    with pytest.raises(KeyError, match="not registered"):
        backend.unregister(a.fileno())
    with pytest.raises(KeyError, match="not registered"):
        backend.modify(a.fileno(), EV_READ)


@pytest.mark.parametrize("mask", [0, EV_ERR, 2, 16, EV_READ | 2, -1])
def test_bad_mask_raises_value_error(backend: EventBase, sockpair: SocketPair, mask: int) -> None:
    a, _ = sockpair
    with pytest.raises(ValueError, match="invalid event mask"):
        backend.register(a.fileno(), mask)
    backend.register(a.fileno(), EV_READ)
    with pytest.raises(ValueError, match="invalid event mask"):
        backend.modify(a.fileno(), mask)


def test_err_bit_in_mask_is_accepted(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_WRITE | EV_ERR)
    assert _events(backend, 0) == {a.fileno(): EV_WRITE}


def test_negative_fd_raises_value_error(backend: EventBase) -> None:
    with pytest.raises(ValueError, match="invalid file descriptor"):
        backend.register(-1, EV_READ)


def test_peer_close_reports_read_and_eof(backend: EventBase, sockpair: SocketPair) -> None:
    a, b = sockpair
    backend.register(a.fileno(), EV_READ)
    b.send(b"bye")
    b.close()
    events = _events(backend)
    assert events[a.fileno()] & EV_READ
    assert a.recv(10) == b"bye"
    assert a.recv(10) == b""


def test_peer_half_close_is_read_not_error(backend: EventBase, sockpair: SocketPair) -> None:
    # A client that shuts down its sending side must still get its replies.
    a, b = sockpair
    backend.register(a.fileno(), EV_READ)
    b.shutdown(socket.SHUT_WR)
    assert _events(backend) == {a.fileno(): EV_READ}
    assert a.recv(10) == b""


def test_peer_close_never_reports_read_to_writer(backend: EventBase, sockpair: SocketPair) -> None:
    a, b = sockpair
    backend.register(a.fileno(), EV_WRITE)
    b.close()
    mask = _events(backend)[a.fileno()]
    assert not mask & EV_READ
    assert mask & (EV_WRITE | EV_ERR)


def test_unregister_after_close_is_tolerated(backend: EventBase) -> None:
    a, b = _pair()
    fd = a.fileno()
    backend.register(fd, EV_READ)
    a.close()
    b.close()
    backend.unregister(fd)
    assert backend.stats().registered == 0


def test_timeout_zero_returns_immediately(backend: EventBase) -> None:
    start = time.monotonic()
    assert backend.wait(0) == []
    assert backend.wait(-5) == []
    assert time.monotonic() - start < 1.0


def test_finite_timeout_returns_empty(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_READ)
    start = time.monotonic()
    assert backend.wait(0.05) == []
    assert time.monotonic() - start >= 0.025
    # A sub-millisecond timeout still returns.
    assert backend.wait(0.0001) == []


def _assert_woken(backend: EventBase, waker: Callable[[], AbstractContextManager[object]]) -> None:
    """A blocking wait on an idle socket returns [] once ``waker()``, entered
    just before it, calls ``backend.wakeup()``.  If wakeup() were broken, a
    watchdog's byte ends the wait instead and the assertions fail rather
    than the test hanging."""
    a, b = _pair()
    try:
        backend.register(a.fileno(), EV_READ)
        with waker(), _after(5.0, lambda: b.send(b"!")):
            start = time.monotonic()
            result = backend.wait(None)
            elapsed = time.monotonic() - start
        assert result == []
        assert elapsed < 4.0
    finally:
        backend.unregister(a.fileno())
        a.close()
        b.close()


def test_wakeup_from_thread_interrupts_blocking_wait(backend: EventBase) -> None:
    _assert_woken(backend, lambda: _after(0.05, backend.wakeup))


def test_wakeup_before_wait_is_not_lost_and_is_drained(backend: EventBase) -> None:
    backend.wakeup()
    backend.wakeup()
    start = time.monotonic()
    assert backend.wait(5.0) == []
    assert time.monotonic() - start < 4.0
    # Both bytes were drained: the next wait times out normally.
    start = time.monotonic()
    assert backend.wait(0.02) == []
    assert time.monotonic() - start >= 0.01


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_wakeup_from_signal_handler(backend: EventBase) -> None:
    _assert_woken(backend, lambda: _alarm(0.05, backend.wakeup))


def test_many_fds_all_reported(backend: EventBase) -> None:
    pairs = [_pair() for _ in range(200)]
    try:
        for a, _ in pairs:
            backend.register(a.fileno(), EV_READ)
        for _, b in pairs:
            b.send(b"x")
        expected = {a.fileno(): EV_READ for a, _ in pairs}
        assert _events(backend) == expected
        assert backend.stats().registered == 200
        for a, _ in pairs:
            backend.modify(a.fileno(), EV_READ | EV_WRITE)
        assert _events(backend) == {fd: EV_READ | EV_WRITE for fd in expected}
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def test_stats_count_waits_and_events(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_WRITE)
    backend.wait(0)
    backend.wait(0)
    stats = backend.stats()
    assert stats == BackendStats(backend=backend.name, registered=1, waits=2, events=2)


def test_close_is_idempotent_and_final(backend: EventBase, sockpair: SocketPair) -> None:
    a, _ = sockpair
    backend.register(a.fileno(), EV_READ)
    backend.close()
    backend.close()
    backend.wakeup()  # a no-op, not an error
    with pytest.raises(ValueError, match="closed"):
        backend.wait(0)
    with pytest.raises(ValueError, match="closed"):
        backend.register(a.fileno(), EV_READ)
    with pytest.raises(ValueError, match="closed"):
        backend.modify(a.fileno(), EV_WRITE)
    with pytest.raises(ValueError, match="closed"):
        backend.unregister(a.fileno())
    assert backend.stats().backend == backend.name


def test_close_releases_wake_pipe() -> None:
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    if before is None:
        pytest.skip("needs /proc/self/fd to count open fds")
    for name in _builtin_registry().by_priority():
        _builtin_registry().get(name)().close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_poll_timeout_is_rounded_up_to_milliseconds() -> None:
    seen: list[int | None] = []

    class FakePoll:
        def register(self, fd: int, mask: int) -> None:
            pass

        def poll(self, timeout: int | None) -> list[tuple[int, int]]:
            seen.append(timeout)
            return []

    fake = types.ModuleType("fake_select")
    for attr in ("POLLIN", "POLLOUT", "POLLERR", "POLLHUP", "POLLNVAL"):
        setattr(fake, attr, getattr(select, attr, 0))
    fake.poll = FakePoll  # type: ignore[attr-defined]
    backend = PollBackend(select_module=fake)
    try:
        for timeout in (None, 0, 0.0001, 0.001, 0.0015, 2.5, -3):
            backend.wait(timeout)
    finally:
        backend.close()
    assert seen == [None, 0, 1, 1, 2, 2500, 0]
    assert all(ms is None or ms == math.ceil(ms) for ms in seen)
