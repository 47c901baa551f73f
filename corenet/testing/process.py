"""Start and stop server processes on free loopback ports, by PID.

One harness for corenet's tests, its benchmark, ``corenet-proxy --demo`` and
plugin authors' tests.  A :class:`Process` runs an argv in its own session
(a Ctrl-C in the terminal reaches only the caller, which then stops its
children in order) with stdout and stderr in ``<tmpdir>/process.log``; on
Linux the child also asks the kernel for SIGKILL when the thread that started
it dies, so even a SIGKILLed caller leaves nothing behind.  It is ready once
its TCP port accepts connections through a socket of its own PID (or a
custom probe says so); a process whose port was taken between
``free_port()`` and its bind is restarted on a new port, a bounded number of
times.  ``stop()`` sends SIGTERM, waits, then SIGKILL, waits, and always
reaps.  Every process is registered until stopped: ``stop_all()`` (also run at
interpreter exit) stops leftovers; a :class:`ProcessGroup` stops what it
started, newest first.

This module knows no protocol; the redis-server, memcached, nutcracker and
corenet-proxy recipes are the proxy application's ``harness`` module.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from corenet.testing._system import (
    LOOPBACK,
    RawReplyTimeout,
    accepts,
    connect,
    cpu_seconds,
    exited,
    find_binary,
    listening_tcp_ports,
    machine_busy_seconds,
    owns_port,
    parse_address,
    raw_exchange,
    rss_bytes,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "ADDR_IN_USE_MARKERS",
    "LOOPBACK",
    "Process",
    "ProcessGroup",
    "RawReplyTimeout",
    "ServerStartError",
    "accepts",
    "connect",
    "cpu_seconds",
    "exited",
    "find_binary",
    "free_port",
    "listening_tcp_ports",
    "machine_busy_seconds",
    "owns_port",
    "parse_address",
    "port_is_free",
    "port_taken",
    "raw_exchange",
    "rss_bytes",
    "running_processes",
    "stop_all",
    "wait_for",
]

#: Log text by which a server says its port was taken (redis, memcached,
#: nutcracker, Python's OSError).
ADDR_IN_USE_MARKERS = ("Address already in use", "EADDRINUSE")

_LOG_TAIL_BYTES = 64 * 1024
_ATTEMPT_MARKER = "--- corenet test harness: attempt"

_issued_ports: list[int] = []
_issued_lock = threading.Lock()


def free_port(preferred: int = 0) -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago: ``preferred`` if it is.

    Binds 127.0.0.1:0 (or ``preferred``), reads the port and closes.  The port
    may be taken again before the caller binds it: callers retry on EADDRINUSE
    (``Process`` does).  Ports handed out recently are not handed out again, so
    several ports picked in a row before anything binds are distinct.
    """
    candidates = [preferred] if preferred else []
    for candidate in [*candidates, *[0] * 64]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, candidate))
            except OSError:
                continue  # the preferred port is taken: any free one will do
            port: int = sock.getsockname()[1]
        with _issued_lock:
            if port in _issued_ports and candidate == 0:
                continue
            _issued_ports.append(port)
            del _issued_ports[:-1024]
        return port
    raise RuntimeError("free_port: the OS keeps returning recently issued ports")


def port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (servers set SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float = 5.0,
    interval: float = 0.01,
    max_checks: int = 10_000,
) -> bool:
    """Poll ``condition`` until it is true; False after ``timeout`` s or ``max_checks`` tries."""
    deadline = time.monotonic() + timeout
    for _ in range(max_checks):
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)
    return False


def port_taken(log: str) -> bool:
    """Whether the last start attempt in ``log`` failed because a port was taken."""
    last_attempt = log.split(_ATTEMPT_MARKER)[-1]
    return any(marker in last_attempt for marker in ADDR_IN_USE_MARKERS)


class ServerStartError(RuntimeError):
    """A process exited or did not become ready; the message ends with its log tail."""

    def __init__(
        self, message: str, *, pid: int | None, log_tail: str, returncode: int | None
    ) -> None:
        super().__init__(f"{message}\n--- last log lines ---\n{log_tail}")
        self.pid = pid
        self.log_tail = log_tail
        self.returncode = returncode


_registry: set[Process] = set()
_registry_lock = threading.Lock()


def running_processes() -> list[Process]:
    """Processes started by this module and not yet stopped."""
    with _registry_lock:
        return [proc for proc in _registry if proc.alive()]


def stop_all(timeout: float = 5.0) -> list[Process]:
    """Stop every process this module started; returns those that were still running."""
    with _registry_lock:
        procs = list(_registry)
    leftovers = [proc for proc in procs if proc.alive()]
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=timeout)
    return leftovers


# A caller that forgets to stop its servers (or dies of an exception) still
# leaves no server running and no temporary directory behind.
atexit.register(stop_all)


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


_P = TypeVar("_P", bound="Process")
Argv = Sequence[str] | Callable[[int], Sequence[str]]


class Process:
    """A child process stopped by PID, logging to ``<tmpdir>/process.log``.

    ``argv`` is a command line, or ``argv(port) -> command line`` for a server
    that listens on a port this class picks (a fresh free one per attempt,
    unless ``port`` fixes it).  Ready when ``ready(proc)`` says so, else when
    every port of ``_owned_ports()`` accepts through a socket of this PID,
    else at once.  Subclasses override ``_command`` (argv for ``self.port``),
    ``_prepare`` (also write config files), ``_probe`` and ``_owned_ports``;
    ``picks_port = True`` makes them pick ports like a callable ``argv``.
    """

    kind: ClassVar[str] = "process"
    #: Whether a subclass's ``_command`` listens on ``self.port`` chosen here.
    picks_port: ClassVar[bool] = False
    #: Restart on a new port at most this many times when a port was taken.
    max_attempts: ClassVar[int] = 5
    #: Ask the kernel to SIGKILL the child when the starting thread dies (Linux).
    #: Start processes from the main thread (fixtures do) or pass die_with_parent=False.
    die_with_parent_default: ClassVar[bool] = True

    def __init__(
        self,
        argv: Argv | None = None,
        *,
        port: int | None = None,
        ready: Callable[[Process], bool] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        name: str | None = None,
        directory: str | None = None,
        start: bool = True,
        start_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        self._argv = argv if callable(argv) or argv is None else list(argv)
        self.port: int = port if port is not None else 0
        self._picks_port = port is None and (callable(argv) or self.picks_port)
        self._ready = ready
        self.env: dict[str, str] | None = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name or self.kind
        self.start_timeout = start_timeout
        self.die_with_parent = (
            self.die_with_parent_default if die_with_parent is None else die_with_parent
        )
        # A directory the caller gave is the caller's (kept at stop, e.g. for
        # the benchmark's --keep-logs); one made here is removed by stop().
        self._tmpdir: str | None = directory
        self._own_tmpdir = directory is None
        self.argv: list[str] = []
        self.popen: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.pids: list[int] = []  # every PID ever started (one per attempt)
        self._log_file: Any = None
        self._final_log: str | None = None
        self._stopped = False
        if start:
            self.start()

    # -- to override ---------------------------------------------------

    def _prepare(self, attempt: int) -> list[str]:
        """Return argv for this attempt (attempt 0 first); may choose new ports."""
        if self._picks_port:
            self.port = free_port()
        return self._command()

    def _command(self) -> list[str]:
        """The command line for the current ``self.port``."""
        if callable(self._argv):
            return list(self._argv(self.port))
        if self._argv is None:
            raise TypeError(f"{type(self).__name__} needs argv or a _command override")
        return list(self._argv)

    def _owned_ports(self) -> list[int]:
        """TCP ports on 127.0.0.1 this process is to listen on."""
        return [self.port] if self.port else []

    def _owns_ports(self) -> bool:
        return all(owns_port(self.pid, port) for port in self._owned_ports())

    def _probe(self) -> bool:
        """True once the process serves requests."""
        if self._ready is not None:
            return self._ready(self)
        return self._owns_ports() and all(accepts((LOOPBACK, p)) for p in self._owned_ports())

    def _retryable(self, log: str) -> bool:
        """Whether an early exit with this log may be retried on other ports."""
        return self._picks_port and port_taken(log)

    def describe(self) -> str:
        return f"{self.kind} pid={self.pid}"

    def summary(self) -> dict[str, object]:
        """Name, PID, port and argv: what a run's record keeps of this process."""
        ports = self._owned_ports()
        return {
            "name": self.name,
            "pid": self.pid,
            "port": ports[0] if ports else None,
            "argv": self.argv,
        }

    @property
    def tmpdir(self) -> str:
        """This process's directory (cwd, log, config), made on first use.

        A directory made here is removed by ``stop()`` (also for a process that
        was never started).
        """
        if self._tmpdir is None:
            if self._stopped:
                raise RuntimeError(f"{self.kind} was stopped; its directory is gone")
            self._tmpdir = tempfile.mkdtemp(prefix=f"corenet-{self.kind}-")
            with _registry_lock:
                _registry.add(self)
        elif not self._own_tmpdir:
            os.makedirs(self._tmpdir, exist_ok=True)
        return self._tmpdir

    @property
    def log_path(self) -> str:
        return os.path.join(self.tmpdir, "process.log")

    # -- lifecycle -----------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def alive(self) -> bool:
        """True while the child runs (reaps it if it has exited)."""
        return self.popen is not None and self.popen.poll() is None

    def cpu_seconds(self, children: bool = True) -> float | None:
        """CPU seconds used so far by the process (and its live children), None if unknown."""
        pid = self.pid
        return cpu_seconds(pid, children=children) if pid is not None and self.alive() else None

    def start(self: _P) -> _P:
        """Spawn and wait until ready; raise ServerStartError (nothing left running) if not."""
        if self._stopped:
            raise RuntimeError(f"{self.kind} was stopped; make a new one")
        if self.popen is not None:
            raise RuntimeError(f"{self.describe()} already started")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for attempt in range(self.max_attempts):
            self.argv = self._prepare(attempt)
            self._spawn(attempt)
            outcome = self._wait_ready()
            if outcome == "ready":
                return
            log = self.log_tail(200)
            if outcome == "exited" and attempt + 1 < self.max_attempts and self._retryable(log):
                continue
            rc = self.popen.returncode if self.popen is not None else None
            if outcome == "exited":
                message = f"{self.kind} exited with status {rc} while starting"
            else:
                message = f"{self.kind} not ready after {self.start_timeout}s"
            pid = self.pid
            note = self._foreign_listeners()
            self._kill_current()
            raise ServerStartError(
                f"{message}: {' '.join(self.argv)}",
                pid=pid,
                log_tail=self.log_tail() + note,
                returncode=self.popen.returncode if self.popen is not None else rc,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    def _foreign_listeners(self) -> str:
        """Why a running process never got ready when someone else serves its ports."""
        if not self.alive():
            return ""
        return "".join(
            f"\n{LOOPBACK}:{port} accepts connections, but not through a socket of "
            f"PID {self.pid} (a wrapper that forks?)"
            for port in self._owned_ports()
            if not owns_port(self.pid, port) and accepts((LOOPBACK, port))
        )

    def _spawn(self, attempt: int) -> None:
        if self._log_file is None:
            self._log_file = open(self.log_path, "ab", buffering=0)  # noqa: SIM115
        self._log_file.write(f"{_ATTEMPT_MARKER} {attempt + 1}: {' '.join(self.argv)}\n".encode())
        with _registry_lock:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                cwd=self.cwd if self.cwd is not None else self.tmpdir,
                env=self.env,
                start_new_session=True,  # a ^C in the terminal reaches the caller only
                preexec_fn=_die_with_parent if self.die_with_parent else None,
            )
            self.pids.append(self.popen.pid)
            _registry.add(self)

    def _wait_ready(self) -> str:
        """'ready', 'exited' or 'timeout'; polls at most ~2000 times."""
        assert self.popen is not None
        deadline = time.monotonic() + self.start_timeout
        interval = 0.005
        for _ in range(2000):
            if self.popen.poll() is not None:
                return "exited"
            if self._probe():
                # it may have exited just after accepting (e.g. another process
                # owns the port): look once more.
                return "exited" if self.popen.poll() is not None else "ready"
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
            interval = min(interval * 1.5, 0.05)
        return "exited" if self.popen.poll() is not None else "timeout"

    def _kill_current(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait, SIGKILL, wait: by PID, always reaping.  Returns the status."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(popen.pid, signal.SIGKILL)
                # SIGKILL cannot be ignored; only a process stuck in the kernel
                # outlives this bound, and then we must say so.
                popen.wait(timeout=30)
        self.returncode = popen.returncode
        return popen.returncode

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop by PID (SIGTERM, ``timeout`` s, SIGKILL), reap, remove the temp dir.

        Idempotent.  Returns the exit status (negative: killed by that signal).
        The log stays readable through ``log_tail()``.
        """
        try:
            rc = self._kill_current(timeout)
        finally:
            if not self._stopped:
                self._stopped = True
                if self._log_file is not None:
                    self._log_file.close()
                    self._log_file = None
                if self._tmpdir is not None:
                    self._final_log = self._read_log_tail()
                    if self._own_tmpdir:
                        shutil.rmtree(self._tmpdir, ignore_errors=True)
                with _registry_lock:
                    _registry.discard(self)
        return rc

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the child by PID (e.g. SIGHUP, SIGTTIN)."""
        if not self.alive():
            raise ProcessLookupError(f"{self.describe()} is not running")
        assert self.popen is not None
        os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        """Wait (bounded) for the child to exit on its own; returns its status."""
        assert self.popen is not None
        rc = self.popen.wait(timeout=timeout)
        self.returncode = rc
        return rc

    # -- logs ----------------------------------------------------------

    def _read_log_tail(self) -> str:
        if self._tmpdir is None:
            return self._final_log or ""
        try:
            with open(os.path.join(self._tmpdir, "process.log"), "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - _LOG_TAIL_BYTES))
                data = fh.read()
        except OSError:
            return self._final_log or ""
        return data.decode("utf-8", "replace")

    def log_text(self) -> str:
        """Up to the last 64 KiB of the log (stdout, stderr and the server's own log)."""
        if self._stopped and self._final_log is not None:
            return self._final_log
        return self._read_log_tail()

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- context manager -----------------------------------------------

    def __enter__(self: _P) -> _P:
        if self.popen is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"<{type(self).__name__} pid={self.pid} {state}>"


class ProcessGroup:
    """Starts processes and stops all of them, newest first, on ``close()`` or exit.

    ``history`` keeps ``summary()`` of every process started, also after it
    was stopped (the benchmark writes it to its result file).
    """

    def __init__(self) -> None:
        self.procs: list[Process] = []
        self.history: list[dict[str, object]] = []

    def start(self, proc: _P) -> _P:
        """Start ``proc`` (made with ``start=False``) and remember it; returns it."""
        self.procs.append(proc)
        try:
            return proc.start()
        finally:
            self.history.append(proc.summary())

    def stop(self, proc: Process) -> None:
        """Stop one process now."""
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        """Stop every process still remembered, newest first (the group stays usable)."""
        while self.procs:
            proc = self.procs.pop()
            with contextlib.suppress(Exception):
                proc.stop()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
