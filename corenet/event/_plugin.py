"""The built-in event backends, registered through the plugin hook."""

from __future__ import annotations

import select
from typing import TYPE_CHECKING

from corenet.event._epoll import EpollBackend
from corenet.event._kqueue import KqueueBackend
from corenet.event._poll import PollBackend
from corenet.event._select import SelectBackend
from corenet.plugin import hookimpl

if TYPE_CHECKING:
    from corenet.plugin import EventBackendRegistry


@hookimpl
def corenet_register_event_backends(registry: EventBackendRegistry) -> None:
    """Add each built-in backend whose mechanism this OS's ``select`` module has."""
    if hasattr(select, "kqueue"):
        registry.add("kqueue", KqueueBackend, priority=40)
    if hasattr(select, "epoll"):
        registry.add("epoll", EpollBackend, priority=30)
    if hasattr(select, "poll"):
        registry.add("poll", PollBackend, priority=20)
    if hasattr(select, "select"):
        registry.add("select", SelectBackend, priority=10)
