"""Choosing the event backend once, at start-up."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from corenet.errors import BackendError

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.event._base import EventBase

__all__ = ["ENV_VAR", "BackendSource", "select_backend"]


class BackendSource(Protocol):
    """Where backends come from: :class:`corenet.plugin.EventBackendRegistry`."""

    def get(self, name: str) -> Callable[[], EventBase]: ...

    def by_priority(self) -> list[str]: ...

    def __contains__(self, name: object) -> bool: ...


ENV_VAR = "CORENET_EVENT_BACKEND"

# Kernel mechanisms a built-in backend exists for, registered only where the
# OS has them: asking for one elsewhere is "not available", not "unknown".
_KERNEL_MECHANISMS = frozenset({"epoll", "kqueue", "poll", "select"})


def _create(name: str, registry: BackendSource) -> EventBase:
    backend = registry.get(name)()
    try:
        # A kernel object can be created yet unusable (seccomp filters,
        # emulation layers that stub the wait call): poll it once.
        backend.wait(0)
    except BaseException:
        backend.close()
        raise
    return backend


def select_backend(name: str | None, registry: BackendSource) -> EventBase:
    """Create the event backend called ``name``, or the best working one.

    Args:
        name: a registered backend name, ``"auto"`` (any case), or ``None`` for the
            ``CORENET_EVENT_BACKEND`` environment variable (default ``"auto"``).
            ``"auto"`` creates the registered backends from the highest
            priority down and returns the first that works.
        registry: the backends the plugins registered.

    Returns:
        A working backend, which the caller must ``close()``.

    Raises:
        BackendError: ``name`` is unknown or its backend fails here, or under
            ``"auto"`` none works; the message names the known backends and
            the OS errors.
    """
    if name is None:
        name = os.environ.get(ENV_VAR, "").strip() or "auto"
    known = registry.by_priority()
    known_text = ", ".join(known) or "none"
    if name.lower() == "auto":
        failures = []
        last: Exception | None = None
        for candidate in known:
            try:
                return _create(candidate, registry)
            except (OSError, BackendError) as exc:
                failures.append(f"{candidate}: {exc}")
                last = exc
        detail = "; ".join(failures) or "no event backends are registered"
        raise BackendError(f"no event backend works here ({detail})") from last
    if name not in registry:
        if name in _KERNEL_MECHANISMS:
            raise BackendError(
                f"event backend {name!r} is not available here (known: {known_text})"
            )
        raise BackendError(f"unknown event backend {name!r} (known: {known_text})")
    try:
        return _create(name, registry)
    except (OSError, BackendError) as exc:
        raise BackendError(
            f"event backend {name!r} does not work here: {exc} (known: {known_text})"
        ) from exc
