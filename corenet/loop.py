"""The event loop: wait, dispatch, run timers, flush.

One turn of the loop waits on the event backend, hands each ready
descriptor to its handler, runs the timers that are due, and last flushes
every connection that queued output during the turn (one ``send`` per
connection per turn however many messages it carries: this batching is what
keeps syscalls per request low).  Write interest is registered only while a
connection has output the kernel would not take.

A handler that raises is logged and aborted alone; the loop keeps serving
everyone else.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from corenet.event import EV_ERR, EV_READ, EV_WRITE
from corenet.timers import Timers

if TYPE_CHECKING:
    from corenet.event import EventBase

__all__ = ["Handler", "Loop"]

logger = logging.getLogger("corenet.loop")

_READABLE = EV_READ | EV_ERR


class Handler(Protocol):
    """Anything registered with the loop for a descriptor."""

    closed: bool
    flush_scheduled: bool

    def handle_read(self) -> None: ...

    def handle_write(self) -> None: ...

    def flush(self) -> None: ...

    def abort(self, exc: BaseException) -> None: ...


class Loop:
    """corenet's own loop over one :class:`~corenet.event.EventBase`."""

    def __init__(self, backend: EventBase) -> None:
        self.backend = backend
        self.timers = Timers()
        self.handlers: dict[int, Handler] = {}
        self.dirty: list[Handler] = []
        self.now = time.monotonic()
        self.started = self.now
        """When the loop was made (``time.monotonic()``): what an uptime counts from."""
        self.running = False

    def add(self, fd: int, handler: Handler, mask: int) -> None:
        self.backend.register(fd, mask)
        self.handlers[fd] = handler

    def remove(self, fd: int, *, registered: bool = True) -> None:
        """Forget ``fd``; ``registered`` says whether the backend still watches it."""
        if self.handlers.pop(fd, None) is not None and registered:
            self.backend.unregister(fd)

    def schedule_flush(self, handler: Handler) -> None:
        """Flush ``handler`` at the end of this turn (once, however often asked)."""
        if not handler.flush_scheduled:
            handler.flush_scheduled = True
            self.dirty.append(handler)

    def stop(self) -> None:
        self.running = False
        self.backend.wakeup()

    def run(self) -> None:
        """Run turns until :meth:`stop`."""
        self.running = True
        while self.running:
            self.run_once()

    def run_once(self, max_wait: float | None = None) -> None:
        """Run one turn, waiting at most ``max_wait`` seconds (None: until an event or timer)."""
        timers = self.timers
        deadline = timers.next_deadline()
        timeout = max_wait
        if deadline is not None:
            until = max(0.0, deadline - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        events = self.backend.wait(timeout)
        self.now = time.monotonic()
        handlers = self.handlers
        for fd, mask in events:
            handler = handlers.get(fd)
            if handler is None:
                continue
            try:
                if mask & _READABLE:
                    handler.handle_read()
                if mask & EV_WRITE and not handler.closed:
                    handler.handle_write()
            except Exception as exc:
                self._failed(handler, exc)
        if deadline is not None:
            timers.run_due(self.now)
        # Last, so that replies completed by timers (timeouts) go out too.
        self.flush_dirty()

    def flush_dirty(self) -> None:
        while self.dirty:
            batch, self.dirty = self.dirty, []
            for handler in batch:
                handler.flush_scheduled = False
                if handler.closed:
                    continue
                try:
                    handler.flush()
                except Exception as exc:
                    self._failed(handler, exc)

    def _failed(self, handler: Handler, exc: Exception) -> None:
        logger.exception("closing %r after an unexpected error", handler)
        try:
            handler.abort(exc)
        except Exception:
            logger.exception("aborting %r failed too", handler)
