"""Fatal signals in an application's log.

A process that dies of ``SIGSEGV``, ``SIGBUS``, ``SIGFPE``, ``SIGILL`` or
``SIGABRT`` (a real fault, or a ``kill``) writes every thread's Python
traceback to the log (:mod:`faulthandler`) and, when the optional
``corenet._fatal`` extension is built, first a line of the application's
own naming the signal; then it dies of that signal, with a core where the
system's ``ulimit -c`` and ``core_pattern`` allow one.
"""

from __future__ import annotations

import faulthandler
import signal
from typing import TYPE_CHECKING

from corenet import accel

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

__all__ = ["FATAL_SIGNALS", "log_fatal_signals"]

FATAL_SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT)
"""The signals faulthandler reports, in that order."""


def log_fatal_signals(stream: TextIO, line: Callable[[signal.Signals], str]) -> bool:
    """Report fatal signals to ``stream`` (a file with a descriptor):
    ``line(signal)`` first, then faulthandler's traceback.  Call again after
    the log is reopened.  Returns whether the lines are written (False: the
    extension is not built; the traceback still is)."""
    fd = stream.fileno()
    faulthandler.enable(file=stream, all_threads=True)
    module = accel.built("corenet._fatal")  # a fault's report, not a speed-up: no switch
    if module is None:
        return False
    lines = {int(s): line(s).encode("utf-8", "replace") for s in FATAL_SIGNALS}
    module.note_fatal_signals(fd, lines)
    return True
