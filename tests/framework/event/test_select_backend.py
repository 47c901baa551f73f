"""Choosing the event backend: ``auto`` probing, explicit names, the env var."""

from __future__ import annotations

import errno
import select
import socket
from typing import TYPE_CHECKING, Any

import pluggy
import pytest

from corenet import hookspecs
from corenet.errors import BackendError
from corenet.event import EV_READ, BackendStats, EventBase, select_backend
from corenet.event import _plugin as event_plugin
from corenet.plugin import EventBackendRegistry

if TYPE_CHECKING:
    from collections.abc import Callable


class FakeBackend:
    """Just enough of EventBase to be chosen; records whether it was closed."""

    def __init__(self, name: str, *, wait_error: OSError | None = None) -> None:
        self.name = name
        self.closed = False
        self.wait_error = wait_error

    def register(self, fd: int, mask: int) -> None:
        pass

    def modify(self, fd: int, mask: int) -> None:
        pass

    def unregister(self, fd: int) -> None:
        pass

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        if self.wait_error is not None:
            raise self.wait_error
        return []

    def wakeup(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def stats(self) -> BackendStats:
        return BackendStats(backend=self.name, registered=0)


class Factories:
    """Factories that remember every backend they created."""

    def __init__(self) -> None:
        self.created: dict[str, FakeBackend] = {}

    def good(self, name: str, *, wait_error: OSError | None = None) -> Callable[[], EventBase]:
        def factory() -> EventBase:
            backend = FakeBackend(name, wait_error=wait_error)
            self.created[name] = backend
            return backend

        return factory

    def broken_wait(self, name: str) -> Callable[[], EventBase]:
        """Created fine, but its wait fails (a stubbed-out syscall)."""
        return self.good(name, wait_error=OSError(errno.ENOSYS, "wait stubbed out"))

    @staticmethod
    def failing(message: str) -> Callable[[], EventBase]:
        def factory() -> EventBase:
            raise OSError(errno.ENOSYS, message)

        return factory


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CORENET_EVENT_BACKEND", raising=False)


def registry_of(*entries: tuple[str, Any, int]) -> EventBackendRegistry:
    """A registry holding ``(name, factory, priority)`` entries, in order."""
    registry = EventBackendRegistry()
    for name, factory, priority in entries:
        registry.add(name, factory, priority=priority)
    return registry


def refusal(choice: str | None, registry: EventBackendRegistry, match: str) -> BackendError:
    """What ``select_backend(choice, registry)`` raises; its message matches ``match``."""
    with pytest.raises(BackendError, match=match) as info:
        select_backend(choice, registry)
    return info.value


def test_auto_picks_highest_priority_that_works() -> None:
    made = Factories()
    registry = registry_of(
        ("low", made.good("low"), 10),
        ("best", made.failing("no such syscall"), 50),
        ("middle", made.good("middle"), 20),
        ("stubbed", made.broken_wait("stubbed"), 40),
    )
    backend = select_backend("auto", registry)
    assert backend.name == "middle"
    # The one that was created but could not wait was closed, not leaked;
    # lower priorities were never created.
    assert made.created["stubbed"].closed
    assert "low" not in made.created


def test_none_means_auto() -> None:
    made = Factories()
    registry = registry_of(("a", made.good("a"), 1), ("b", made.good("b"), 2))
    assert select_backend(None, registry).name == "b"


def test_auto_with_nothing_working_names_every_failure() -> None:
    made = Factories()
    registry = registry_of(("x", made.failing("x is missing"), 2), ("y", made.broken_wait("y"), 1))
    message = str(refusal("auto", registry, "no event backend works"))
    assert "x: " in message
    assert "x is missing" in message
    assert "wait stubbed out" in message


def test_auto_with_empty_registry() -> None:
    refusal("auto", EventBackendRegistry(), "no event backends are registered")


def test_explicit_unknown_name_lists_known_ones() -> None:
    made = Factories()
    registry = registry_of(("epoll", made.good("epoll"), 30), ("select", made.good("select"), 10))
    assert "known: epoll, select" in str(refusal("iocp", registry, "unknown event backend 'iocp'"))


def test_explicit_failing_backend_raises_backend_error() -> None:
    made = Factories()
    registry = registry_of(
        ("bad", made.failing("kernel says no"), 10), ("good", made.good("good"), 1)
    )
    error = refusal("bad", registry, "'bad' does not work here")
    assert "kernel says no" in str(error)
    assert "known: bad, good" in str(error)
    assert isinstance(error.__cause__, OSError)
    # An explicit choice never falls back to another backend.
    assert "good" not in made.created


def test_explicit_backend_whose_wait_fails_is_closed() -> None:
    made = Factories()
    registry = registry_of(("stubbed", made.broken_wait("stubbed"), 0))
    refusal("stubbed", registry, "wait stubbed out")
    assert made.created["stubbed"].closed


def test_env_var_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    made = Factories()
    registry = registry_of(("fast", made.good("fast"), 10), ("slow", made.good("slow"), 1))
    monkeypatch.setenv("CORENET_EVENT_BACKEND", "slow")
    assert select_backend(None, registry).name == "slow"
    # An explicit name wins over the environment.
    assert select_backend("fast", registry).name == "fast"
    monkeypatch.setenv("CORENET_EVENT_BACKEND", "  ")
    assert select_backend(None, registry).name == "fast"
    monkeypatch.setenv("CORENET_EVENT_BACKEND", "nope")
    refusal(None, registry, "unknown event backend 'nope'")


def test_builtin_plugin_priorities_and_probe() -> None:
    registry = EventBackendRegistry()
    event_plugin.corenet_register_event_backends(registry)
    expected = [name for name in ("kqueue", "epoll", "poll", "select") if hasattr(select, name)]
    assert registry.by_priority() == expected
    assert {name: registry.priorities[name] for name in expected} == {
        name: {"kqueue": 40, "epoll": 30, "poll": 20, "select": 10}[name] for name in expected
    }
    backend = select_backend("auto", registry)
    try:
        assert backend.name == expected[0]
        assert backend.stats().backend == expected[0]
        a, b = socket.socketpair()
        with a, b:
            backend.register(a.fileno(), EV_READ)
            b.send(b"x")
            assert backend.wait(2.0) == [(a.fileno(), EV_READ)]
            backend.unregister(a.fileno())
    finally:
        backend.close()


def test_builtin_plugin_through_pluggy() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(event_plugin, name="event")
    pm.check_pending()
    registry = EventBackendRegistry()
    pm.hook.corenet_register_event_backends(registry=registry)
    assert "select" in registry
