"""The proxy's log: nutcracker's ``-v`` levels, ``-o`` file, and the signals' actions."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from corenet.faults import log_fatal_signals
from corenet.proxy.app import NOTICE

if TYPE_CHECKING:
    import signal

__all__ = ["MAX_VERBOSITY", "PROG", "LogSetup", "log_level"]

PROG = "corenet-proxy"
MAX_VERBOSITY = 11  # nutcracker's LOG_PVERB

# nutcracker -v levels: 0 emerg .. 3 err, 4 warn, 5 notice, 6 info, 7+ debug.
_LEVELS = {
    0: logging.CRITICAL,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: NOTICE,
    6: logging.INFO,
}


def _fatal_line(signum: signal.Signals) -> str:
    # nutcracker's words for SIGSEGV (nc_signal.c), for each fatal signal.
    return f"{PROG}: signal {int(signum)} ({signum.name}) received, core dumping\n"


def log_level(verbosity: int) -> int:
    """The :mod:`logging` level for nutcracker's ``-v`` value."""
    return _LEVELS.get(verbosity, logging.DEBUG if verbosity > 6 else logging.CRITICAL)


class LogSetup:
    """The ``corenet`` logger's handler and level, as ``-v`` and ``-o`` set them.

    Lines go to ``output`` (opened for appending, like nutcracker's
    ``O_APPEND``) or to stderr.  The signals act on this object through
    :class:`corenet.proxy.LogControl`.

    Raises:
        OSError: ``output`` cannot be opened.
    """

    def __init__(self, verbosity: int, output: str | None) -> None:
        self.output = output
        self.verbosity = max(0, min(verbosity, MAX_VERBOSITY))
        self.handler: logging.StreamHandler[Any] = (
            logging.FileHandler(output, encoding="utf-8")
            if output
            else logging.StreamHandler(sys.stderr)
        )
        self.handler.setFormatter(
            logging.Formatter(
                "[%(asctime)s.%(msecs)03d] %(name)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"
            )
        )
        self.root = logging.getLogger("corenet")
        self.root.handlers[:] = [self.handler]
        self.root.propagate = False
        self._apply()
        self._faults_to_log()

    def _faults_to_log(self) -> None:
        # A fatal signal (a real fault or a kill) writes nutcracker's line
        # and every thread's traceback to the log, then dies of that signal
        # as nutcracker does; whether a core is dumped is the system's
        # ulimit -c and core_pattern.
        stream = self.handler.stream
        if stream is not None and hasattr(stream, "fileno"):
            try:
                log_fatal_signals(stream, _fatal_line)
            except (OSError, ValueError):  # no usable descriptor (a test's capture)
                pass

    def _apply(self) -> None:
        self.root.setLevel(log_level(self.verbosity))

    def reopen(self) -> None:
        """Reopen the log file by name (after logrotate moved it); stderr stays."""
        if not self.output:
            return
        try:
            stream = open(self.output, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            # nutcracker: "reopening log file '%s' failed, ignored".
            print(
                f"{PROG}: reopening log file '{self.output}' failed, ignored: {exc.strerror}",
                file=sys.stderr,
            )
            return
        old = self.handler.setStream(stream)
        self._faults_to_log()
        if old is not None:
            old.close()

    def more_verbose(self) -> int | None:
        """One level more (nutcracker's SIGTTIN); None when already at 11."""
        if self.verbosity >= MAX_VERBOSITY:
            return None
        self.verbosity += 1
        self._apply()
        return self.verbosity

    def less_verbose(self) -> int | None:
        """One level less (nutcracker's SIGTTOU); None when already at 0."""
        if self.verbosity <= 0:
            return None
        self.verbosity -= 1
        self._apply()
        return self.verbosity
