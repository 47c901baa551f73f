"""Event backends: one readiness API over epoll, kqueue, poll and select.

Pick one at start-up with :func:`select_backend` (``auto`` probes the
registered backends, best first); the core loop then calls ``wait`` once per
turn and dispatches the ``(fd, mask)`` pairs itself.
"""

from __future__ import annotations

from corenet.event._base import EV_ERR, EV_READ, EV_WRITE, BackendStats, EventBase
from corenet.event._epoll import EpollBackend
from corenet.event._kqueue import KqueueBackend
from corenet.event._poll import PollBackend
from corenet.event._select import SelectBackend
from corenet.event._select_backend import select_backend

__all__ = [
    "EV_ERR",
    "EV_READ",
    "EV_WRITE",
    "BackendStats",
    "EpollBackend",
    "EventBase",
    "KqueueBackend",
    "PollBackend",
    "SelectBackend",
    "select_backend",
]
