"""The kqueue backend's logic, on any OS, through a fake ``select`` module.

The fake records every kevent change and returns scripted event batches, so
these tests pin down what the backend asks of the kernel (one change per
filter, adds before deletes, rollback) and how it reads the answers (batch
loop, EV_EOF, EV_ERROR, the wake-up pipe).  The constants are the BSD ones;
the fake fds are 900 and up so they never collide with the real wake pipe.
"""

from __future__ import annotations

import errno
import os
import types
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from corenet.event import EV_ERR, EV_READ, EV_WRITE, KqueueBackend

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

READ = -1  # KQ_FILTER_READ
WRITE = -2  # KQ_FILTER_WRITE
ADD = 0x1  # KQ_EV_ADD
DELETE = 0x2  # KQ_EV_DELETE
ERROR = 0x4000  # KQ_EV_ERROR
EOF = 0x8000  # KQ_EV_EOF


@dataclass(eq=False)
class FakeKevent:
    """``select.kevent``: its fields, in its order, with its defaults."""

    ident: int
    filter: int = READ
    flags: int = ADD
    fflags: int = 0
    data: int = 0
    udata: int = 0

    def __repr__(self) -> str:
        return f"kevent({self.ident}, {self.filter}, {self.flags:#x})"


class FakeKqueue:
    def __init__(self) -> None:
        self.changes: list[tuple[int, int, int]] = []
        self.waits: list[tuple[int, float | None]] = []
        self.script: deque[list[FakeKevent] | BaseException] = deque()
        self.repeat: list[FakeKevent] | None = None
        self.fail: dict[tuple[int, int, int], OSError] = {}
        self.closed = False

    def control(
        self, changelist: list[FakeKevent] | None, max_events: int, timeout: float | None = None
    ) -> list[FakeKevent]:
        assert not self.closed
        if changelist:
            # The backend must apply changes alone, so failures raise.
            assert max_events == 0
            assert timeout == 0
            for kev in changelist:
                key = (kev.ident, kev.filter, kev.flags)
                if key in self.fail:
                    raise self.fail.pop(key)
                self.changes.append(key)
            return []
        assert max_events >= 1
        self.waits.append((max_events, timeout))
        if self.script:
            item = self.script.popleft()
            if isinstance(item, BaseException):
                raise item
            assert len(item) <= max_events
            return item
        if self.repeat is not None:
            return self.repeat[:max_events]
        return []

    def close(self) -> None:
        self.closed = True


def make_module() -> types.ModuleType:
    module = types.ModuleType("fake_select")
    module.KQ_FILTER_READ = READ  # type: ignore[attr-defined]
    module.KQ_FILTER_WRITE = WRITE  # type: ignore[attr-defined]
    module.KQ_EV_ADD = ADD  # type: ignore[attr-defined]
    module.KQ_EV_DELETE = DELETE  # type: ignore[attr-defined]
    module.KQ_EV_EOF = EOF  # type: ignore[attr-defined]
    module.KQ_EV_ERROR = ERROR  # type: ignore[attr-defined]
    module.kevent = FakeKevent  # type: ignore[attr-defined]
    module.instances = []  # type: ignore[attr-defined]

    def kqueue() -> FakeKqueue:
        kq = FakeKqueue()
        module.instances.append(kq)
        return kq

    module.kqueue = kqueue  # type: ignore[attr-defined]
    return module


@pytest.fixture
def env() -> Iterator[tuple[KqueueBackend, FakeKqueue]]:
    module = make_module()
    backend = KqueueBackend(select_module=module)
    kq: FakeKqueue = module.instances[0]
    wake = backend._wake_r
    assert kq.changes == [(wake, READ, ADD)]
    kq.changes.clear()
    try:
        yield backend, kq
    finally:
        backend.close()


def test_name_and_stats(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, _ = env
    assert backend.name == "kqueue"
    assert backend.stats().backend == "kqueue"


def test_register_adds_one_filter_per_direction(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ | EV_WRITE)
    backend.register(901, EV_WRITE)
    assert kq.changes == [(900, READ, ADD), (900, WRITE, ADD), (901, WRITE, ADD)]
    assert backend.stats().registered == 2


def test_modify_adds_before_deleting(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ)
    kq.changes.clear()
    backend.modify(900, EV_WRITE)
    assert kq.changes == [(900, WRITE, ADD), (900, READ, DELETE)]
    kq.changes.clear()
    backend.modify(900, EV_READ | EV_WRITE)
    assert kq.changes == [(900, READ, ADD)]
    kq.changes.clear()
    backend.modify(900, EV_READ | EV_WRITE)
    assert kq.changes == []
    backend.modify(900, EV_READ)
    assert kq.changes == [(900, WRITE, DELETE)]


def test_unregister_deletes_every_filter(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ | EV_WRITE)
    kq.changes.clear()
    backend.unregister(900)
    assert kq.changes == [(900, READ, DELETE), (900, WRITE, DELETE)]
    assert backend.stats().registered == 0


@pytest.mark.parametrize("code", [errno.EBADF, errno.ENOENT])
def test_unregister_of_closed_fd_is_tolerated(
    env: tuple[KqueueBackend, FakeKqueue], code: int
) -> None:
    backend, kq = env
    backend.register(900, EV_READ | EV_WRITE)
    kq.fail[(900, READ, DELETE)] = OSError(code, os.strerror(code))
    kq.fail[(900, WRITE, DELETE)] = OSError(code, os.strerror(code))
    backend.unregister(900)
    assert backend.stats().registered == 0
    # The filter count went back down: a wait asks for the wake pipe's only.
    backend.wait(0)
    assert kq.waits[-1] == (1, 0)


def _refused(
    kq: FakeKqueue,
    change: tuple[int, int, int],
    call: Callable[[], object],
    code: int = errno.EINVAL,
) -> list[tuple[int, int, int]]:
    """Make the fake kernel refuse ``change`` once: ``call()`` must raise that
    very OSError.  Returns the changes applied until then, and clears them."""
    error = OSError(code, os.strerror(code))
    kq.fail[change] = error
    with pytest.raises(OSError, match=os.strerror(code)) as raised:
        call()
    assert raised.value is error
    applied = kq.changes.copy()
    kq.changes.clear()
    return applied


def test_register_failure_propagates_and_rolls_back(
    env: tuple[KqueueBackend, FakeKqueue],
) -> None:
    backend, kq = env
    applied = _refused(kq, (900, WRITE, ADD), lambda: backend.register(900, EV_READ | EV_WRITE))
    assert applied == [(900, READ, ADD), (900, READ, DELETE)]
    assert backend.stats().registered == 0
    backend.register(900, EV_READ)  # not "already registered"
    assert backend.stats().registered == 1


def test_modify_failure_records_what_the_kernel_has(
    env: tuple[KqueueBackend, FakeKqueue],
) -> None:
    backend, kq = env
    backend.register(900, EV_READ)
    _refused(kq, (900, READ, DELETE), lambda: backend.modify(900, EV_WRITE))
    # The WRITE filter was added before the failing delete: both are on now,
    # so the retry only needs the delete.
    backend.modify(900, EV_WRITE)
    assert kq.changes == [(900, READ, DELETE)]


def test_modify_add_failure_changes_nothing(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ)
    _refused(kq, (900, WRITE, ADD), lambda: backend.modify(900, EV_WRITE), errno.ENOMEM)
    backend.unregister(900)
    assert kq.changes == [(900, READ, DELETE)]


def test_unregister_other_error_propagates_and_keeps_fd(
    env: tuple[KqueueBackend, FakeKqueue],
) -> None:
    backend, kq = env
    backend.register(900, EV_READ | EV_WRITE)
    _refused(kq, (900, WRITE, DELETE), lambda: backend.unregister(900))
    assert backend.stats().registered == 1
    backend.unregister(900)  # only the filter still there is deleted
    assert kq.changes == [(900, WRITE, DELETE)]


def test_wait_merges_filters_per_fd(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ | EV_WRITE)
    backend.register(901, EV_READ)
    kq.script.append(
        [FakeKevent(900, READ, 0), FakeKevent(901, READ, 0), FakeKevent(900, WRITE, 0)]
    )
    assert backend.wait(1.5) == [(900, EV_READ | EV_WRITE), (901, EV_READ)]
    # Sized to the filters: 2 + 1 + the wake pipe.
    assert kq.waits == [(4, 1.5)]
    assert backend.stats().events == 2


def test_full_batch_forces_another_control_call(
    env: tuple[KqueueBackend, FakeKqueue],
) -> None:
    backend, kq = env
    backend.max_batch = 2
    for fd in (900, 901, 902):
        backend.register(fd, EV_READ)
    kq.script.append([FakeKevent(900, READ, 0), FakeKevent(901, READ, 0)])
    kq.script.append([FakeKevent(902, READ, 0)])
    assert backend.wait(None) == [(900, EV_READ), (901, EV_READ), (902, EV_READ)]
    # The second call must not block again.
    assert kq.waits == [(2, None), (2, 0)]


def test_repeated_level_triggered_events_do_not_spin(
    env: tuple[KqueueBackend, FakeKqueue],
) -> None:
    backend, kq = env
    backend.max_batch = 2
    backend.register(900, EV_READ)
    backend.register(901, EV_READ)
    # Every call returns a full batch of the same still-ready fds.
    kq.repeat = [FakeKevent(900, READ, 0), FakeKevent(901, READ, 0)]
    assert backend.wait(1.0) == [(900, EV_READ), (901, EV_READ)]
    # 3 filters, 2 per batch: two calls cover them all.
    assert kq.waits == [(2, 1.0), (2, 0)]


def test_eof_and_error_mapping(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    for fd in (900, 901, 902, 903):
        backend.register(fd, EV_READ | EV_WRITE)
    kq.script.append(
        [
            # Peer shut down writing (maybe only half): read, then b"".
            FakeKevent(900, READ, EOF),
            # EOF with a socket error in fflags.
            FakeKevent(901, READ, EOF, fflags=errno.ECONNRESET),
            # Peer will not read any more.
            FakeKevent(902, WRITE, EOF),
            # An error event carries an errno, not readiness.
            FakeKevent(903, READ, ERROR, data=errno.EBADF),
        ]
    )
    assert dict(backend.wait(0)) == {
        900: EV_READ,
        901: EV_READ | EV_ERR,
        902: EV_WRITE | EV_ERR,
        903: EV_ERR,
    }


def test_unknown_filter_is_ignored(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ)
    kq.script.append([FakeKevent(900, -4, 0)])  # EVFILT_VNODE: never ours
    assert backend.wait(0) == []


def test_wake_pipe_is_drained_and_not_reported(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.register(900, EV_READ)
    backend.wakeup()
    backend.wakeup()
    wake = backend._wake_r
    kq.script.append([FakeKevent(wake, READ, 0), FakeKevent(900, READ, 0)])
    assert backend.wait(None) == [(900, EV_READ)]
    with pytest.raises(BlockingIOError):
        os.read(wake, 1)


def test_eintr_returns_empty(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    kq.script.append(InterruptedError(errno.EINTR, "interrupted"))
    assert backend.wait(None) == []


def test_other_wait_error_propagates(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    kq.script.append(OSError(errno.EBADF, "bad kqueue"))
    with pytest.raises(OSError, match="bad kqueue"):
        backend.wait(0)


def test_negative_timeout_is_clamped(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    backend.wait(-1.0)
    assert kq.waits == [(1, 0)]


def test_close_closes_kqueue_and_pipe_once(env: tuple[KqueueBackend, FakeKqueue]) -> None:
    backend, kq = env
    wake_r, wake_w = backend._wake_r, backend._wake_w
    backend.close()
    backend.close()
    assert kq.closed
    for fd in (wake_r, wake_w):
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)


def test_kqueue_creation_failure_propagates() -> None:
    module = make_module()

    def broken() -> Any:
        raise OSError(errno.ENOSYS, "kqueue not implemented")

    module.kqueue = broken  # type: ignore[attr-defined]
    with pytest.raises(OSError, match="not implemented"):
        KqueueBackend(select_module=module)
