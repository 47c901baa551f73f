"""Processes for the benchmark: start on 127.0.0.1 free ports, stop by PID, read CPU time.

Every process is started in its own session (so a Ctrl-C in the terminal
reaches only the benchmark, which then stops its children in order), with
stdout and stderr in a log file, and on Linux with ``PR_SET_PDEATHSIG`` so a
SIGKILLed benchmark leaves nothing behind.  ``Proc.stop()`` sends SIGTERM,
waits, then SIGKILL, and always reaps.  A ``ProcGroup`` stops everything it
started, newest first, also when an exception unwinds through it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from types import TracebackType

__all__ = [
    "LOOPBACK",
    "Proc",
    "ProcGroup",
    "StartError",
    "cpu_seconds",
    "machine_busy_seconds",
    "find_binary",
    "free_port",
    "listens_on",
]

LOOPBACK = "127.0.0.1"

#: Debian installs nutcracker in /usr/sbin, which a non-root $PATH often lacks.
_EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_ADDR_IN_USE = ("Address already in use", "EADDRINUSE")
_PR_SET_PDEATHSIG = 1
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

_issued_ports: set[int] = set()


class StartError(RuntimeError):
    """A process exited or never listened; the message carries its log tail."""


def find_binary(name: str) -> str | None:
    """Absolute path of executable ``name`` on $PATH or in an sbin directory, else None."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_BIN_DIRS])
    return shutil.which(name, path=search)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and not handed out before."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise RuntimeError("free_port: the OS keeps returning ports already handed out")


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (from the state on), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    return data[data.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, children: bool = False) -> float | None:
    """User plus system CPU time of process ``pid`` (all its threads) from /proc, or None.

    Fields 14 and 15 of ``/proc/PID/stat`` in clock ticks (``SC_CLK_TCK``,
    usually 100 per second, so the resolution is 10 ms).  With ``children``,
    the live child processes' time is added (``--workers``: the supervisor
    and its workers); a child that exits between two readings takes its
    time with it, so a run where a worker died reads low.
    """
    fields = _stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                child = _stat_fields(entry)
                if child is not None and child[1] == str(pid):
                    ticks += int(child[11]) + int(child[12])
    return ticks / _CLK_TCK


def machine_busy_seconds() -> float | None:
    """CPU seconds all CPUs spent in processes since boot (``/proc/stat``), or None.

    user + nice + system + steal: what processes (ours or others) and the
    hypervisor took.  irq and softirq are left out because the kernel does not
    charge them to any process, so they cannot be told apart from ours.
    """
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + steal) / _CLK_TCK


def listens_on(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` has a listening TCP socket on ``port`` (None: cannot tell)."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    f = line.split()
                    if (
                        len(f) > 9
                        and f[3] == "0A"
                        and f[9] in inodes
                        and int(f[1].rsplit(":", 1)[1], 16) == port
                    ):
                        return True
        except OSError:
            return None
    return False


def _accepts(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout):
            return True
    except OSError:
        return False


def _child_setup() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to SIGKILL this child when the parent thread dies (Linux only)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Proc:
    """One server process listening on ``port`` (chosen by the caller's ``argv_for``).

    ``argv_for(port)`` builds the command line for a given listen port; a
    server that loses the race for its port (its log says "Address already in
    use") is started again on a new one, up to three times.  Ready means the
    process is alive and accepts TCP connections on its port.
    """

    def __init__(
        self,
        name: str,
        argv_for: Callable[[int], Sequence[str]],
        workdir: str,
        *,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self.name = name
        self.argv_for = argv_for
        self.workdir = workdir
        self.cwd = cwd
        self.env = env
        self.ready_timeout = ready_timeout
        self.port = 0
        self.argv: list[str] = []
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._popen: subprocess.Popen[bytes] | None = None
        self.last_pid: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        """The PID of the running process (raises if it was never started)."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._popen.pid

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{LOOPBACK}:{self.port}"

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._popen is not None and self._popen.poll() is None

    def cpu_seconds(self) -> float | None:
        """User plus system CPU seconds used so far by the process and its
        children (None if unreadable)."""
        return cpu_seconds(self.pid, children=True) if self.alive() else None

    def log_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of the process log."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - limit))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def start(self) -> Proc:
        """Start and wait until ready; raises ``StartError`` with the log tail on failure."""
        for _attempt in range(3):
            self.port = free_port()
            self.argv = list(self.argv_for(self.port))
            with open(self.log_path, "ab") as log:
                self._popen = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd,
                    env=self.env,
                    start_new_session=True,
                    preexec_fn=_child_setup,
                )
            self.last_pid, self.returncode = self._popen.pid, None
            if self._wait_ready():
                return self
            tail = self.log_tail()
            if self.alive() and _accepts(self.port):
                tail += (
                    f"\n127.0.0.1:{self.port} accepts connections, but not through a "
                    f"socket of PID {self.pid} (a wrapper that forks?): its CPU time "
                    "would not be the server's"
                )
            self.stop()
            if not any(marker in tail for marker in _ADDR_IN_USE):
                raise StartError(f"{self.name} did not start: {' '.join(self.argv)}\n{tail}")
        raise StartError(f"{self.name}: no free port after 3 attempts\n{self.log_tail()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.ready_timeout
        interval = 0.01
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if _accepts(self.port) and listens_on(self.pid, self.port) is not False:
                return True
            time.sleep(interval)
            interval = min(interval * 1.5, 0.1)
        return False

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, wait ``timeout`` s, SIGKILL, wait; returns the exit status (None: unknown)."""
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGTERM)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    popen.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout)
        self.returncode = popen.returncode
        return popen.returncode


class ProcGroup:
    """Starts processes and stops all of them (newest first) on ``close()`` or on exit."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []
        self.history: list[dict[str, object]] = []

    def start(self, proc: Proc) -> Proc:
        """Start ``proc`` and remember it for ``close()``; returns it."""
        self.procs.append(proc)
        try:
            return proc.start()
        finally:
            self.history.append(
                {"name": proc.name, "pid": proc.last_pid, "port": proc.port, "argv": proc.argv}
            )

    def stop(self, proc: Proc) -> None:
        """Stop one process now."""
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        """Stop every process still remembered, newest first."""
        while self.procs:
            proc = self.procs.pop()
            with contextlib.suppress(Exception):
                proc.stop()

    def __enter__(self) -> ProcGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
