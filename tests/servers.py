"""Real-process test harness: redis-server, memcached, nutcracker and corenet-proxy.

Every process is started on 127.0.0.1 on a free port, with its stdout and
stderr captured in a log file inside its own temporary directory, and is
stopped by PID: SIGTERM, a bounded wait, then SIGKILL and a bounded wait, so it
is always reaped.  ``stop_all()`` (run at interpreter exit and at the end of a
pytest session) stops whatever is still running.  On Linux each child also asks
the kernel for SIGKILL when the thread that started it dies, so even a
SIGKILLed test run leaves nothing behind.

Servers start in their constructor (pass ``start=False`` to start later with
``start()``); a server whose port was taken between ``free_port()`` and the
bind is restarted on a new port, up to ``max_attempts`` times.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import yaml

if TYPE_CHECKING:
    from types import TracebackType

    import pymemcache
    import redis

__all__ = [
    "ADDR_IN_USE_MARKERS",
    "LOOPBACK",
    "CorenetProxy",
    "Memcached",
    "Nutcracker",
    "Process",
    "RawReplyTimeout",
    "RedisServer",
    "ServerPool",
    "ServerStartError",
    "count_resp_replies",
    "dump_config",
    "encode_command",
    "exited",
    "spread_keys",
    "find_binary",
    "free_port",
    "listening_tcp_ports",
    "memcache_client",
    "listen_addresses",
    "memcache_raw",
    "parse_address",
    "pool_config",
    "raw_exchange",
    "redis_client",
    "redis_raw",
    "resp_reply_end",
    "running_processes",
    "stop_all",
    "wait_for",
]

LOOPBACK = "127.0.0.1"

#: Log text by which a server says its port was taken (redis, memcached, nutcracker).
ADDR_IN_USE_MARKERS = ("Address already in use", "EADDRINUSE")

#: Directories searched after $PATH: Debian installs nutcracker in /usr/sbin,
#: which a non-root $PATH often lacks.
_EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

_LOG_TAIL_BYTES = 64 * 1024


# --------------------------------------------------------------------------
# small helpers


def find_binary(name: str) -> str | None:
    """Absolute path of executable ``name`` on $PATH or in an sbin directory, else None."""
    path = os.environ.get("PATH", os.defpath)
    search = os.pathsep.join([path, *_EXTRA_BIN_DIRS])
    return shutil.which(name, path=search)


_issued_ports: list[int] = []
_issued_lock = threading.Lock()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    Binds 127.0.0.1:0, reads the port and closes.  The port may be taken again
    before the caller binds it: callers retry on EADDRINUSE (every server class
    here does).  Ports handed out recently are not handed out again, so several
    ports picked in a row before anything binds are distinct.
    """
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        with _issued_lock:
            if port in _issued_ports:
                continue
            _issued_ports.append(port)
            del _issued_ports[:-1024]
        return port
    raise RuntimeError("free_port: the OS keeps returning recently issued ports")


def _port_is_free(port: int) -> bool:
    """Whether a server could bind 127.0.0.1:port now (servers set SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def parse_address(address: str) -> tuple[str, int] | str:
    """``"host:port"`` -> ``(host, port)``; ``"/path.sock [perm]"`` -> ``"/path.sock"``."""
    address = address.strip()
    if address.startswith("/"):
        return address.split()[0]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a host:port or /unix/path address: {address!r}")
    return host.strip("[]"), int(port)


def _connect(address: str | tuple[str, int], timeout: float) -> socket.socket:
    target = parse_address(address) if isinstance(address, str) else address
    if isinstance(target, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(target)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection(target, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def listening_tcp_ports(pid: int) -> set[int] | None:
    """TCP ports process ``pid`` listens on (Linux /proc), or None where unknown.

    Lets a readiness probe tell the server we started from some other
    process that happens to listen on the port we picked.
    """
    fd_dir = f"/proc/{pid}/fd"
    if not os.path.isdir("/proc/net"):
        return None
    inodes = set()
    try:
        fds = os.listdir(fd_dir)
    except FileNotFoundError:
        return set()  # exited: listens on nothing
    except OSError:
        return None  # not ours to look at (e.g. /proc mounted hidepid): unknown
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT, state 0A is LISTEN, field 9 the inode
                    if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def _owns_port(pid: int | None, port: int) -> bool:
    if pid is None:
        return False
    ports = listening_tcp_ports(pid)
    return ports is None or port in ports


def _accepts(address: str, timeout: float = 0.5) -> bool:
    try:
        sock = _connect(address, timeout)
    except OSError:
        return False
    sock.close()
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


def spread_keys(n: int, prefix: str = "key", digits: int = 10) -> list[str]:
    """``n`` well-mixed key names ``prefix:<sha1 hex>``: fnv1a_64 puts names
    that differ only in their last byte close together on the ketama ring,
    which would hide placement bugs."""
    return [f"{prefix}:{hashlib.sha1(str(i).encode()).hexdigest()[:digits]}" for i in range(n)]


def exited(pid: int) -> bool:
    """True once ``pid`` has exited: no such process, or a zombie.

    For a process someone else must reap (a daemon's, reparented to PID 1,
    which on some machines reaps late), a zombie is as gone as it gets;
    ``os.kill(pid, 0)`` and ``/proc/PID`` still see it.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


# --------------------------------------------------------------------------
# RESP helpers (pure functions)


def encode_command(*args: bytes | str | int | float) -> bytes:
    """RESP2 multibulk encoding of one command."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        else:
            data = repr(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def resp_reply_end(buf: bytes, pos: int = 0) -> int | None:
    """Offset just past the complete RESP2 reply starting at ``pos``, or None if incomplete.

    Types ``+ - : $ *`` with null bulk (``$-1``) and null array (``*-1``);
    arrays nest to any depth (no recursion).  Raises ValueError on bytes that
    cannot start a RESP2 reply.
    """
    pending = 1  # replies still to read at this nesting level and above
    stack: list[int] = []
    while True:
        if pending == 0:
            if not stack:
                return pos
            pending = stack.pop()
            continue
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        kind = buf[pos : pos + 1]
        line = buf[pos + 1 : eol]
        pos = eol + 2
        if kind in (b"+", b"-"):
            pending -= 1
        elif kind in (b":", b"$", b"*"):
            try:
                number = int(line)
            except ValueError:
                raise ValueError(f"bad RESP length/integer {line!r} at offset {eol}") from None
            if kind == b":":
                pending -= 1
            elif kind == b"$":
                if number >= 0:
                    if len(buf) < pos + number + 2:
                        return None
                    if buf[pos + number : pos + number + 2] != b"\r\n":
                        raise ValueError(f"bulk string not followed by CRLF at {pos + number}")
                    pos += number + 2
                pending -= 1
            else:
                pending -= 1
                if number > 0:
                    stack.append(pending)
                    pending = number
        else:
            raise ValueError(f"not a RESP2 type byte {kind!r} at offset {pos - len(line) - 3}")


def count_resp_replies(buf: bytes) -> int:
    """Number of complete top-level RESP2 replies at the start of ``buf``."""
    count = 0
    pos = 0
    while pos < len(buf):
        end = resp_reply_end(buf, pos)
        if end is None:
            break
        count += 1
        pos = end
    return count


# --------------------------------------------------------------------------
# raw socket exchanges


class RawReplyTimeout(TimeoutError):
    """The peer neither completed the expected replies nor closed in time."""

    def __init__(self, message: str, data: bytes) -> None:
        super().__init__(f"{message}; received {len(data)} bytes: {data[:200]!r}")
        self.data = data


def raw_exchange(
    address: str,
    payload: bytes,
    *,
    done: Callable[[bytes], bool] | None = None,
    timeout: float = 5.0,
    max_bytes: int = 64 * 1024 * 1024,
) -> bytes:
    """Send ``payload`` on a new connection and read until ``done(received)`` or EOF.

    With ``done=None`` reads until the peer closes.  Returns everything read
    (the bytes exactly as received).  Raises ``RawReplyTimeout`` (carrying the
    partial data) if neither happens within ``timeout`` seconds in total.
    """
    deadline = time.monotonic() + timeout
    received = bytearray()
    with _connect(address, timeout) as sock:
        if payload:
            sock.sendall(payload)
        if done is not None and done(bytes(received)):
            return bytes(received)
        while len(received) <= max_bytes:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RawReplyTimeout(f"no complete reply from {address}", bytes(received))
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise RawReplyTimeout(
                    f"no complete reply from {address} in {timeout}s", bytes(received)
                ) from None
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            if done is not None and done(bytes(received)):
                break
    return bytes(received)


def redis_raw(
    address: str,
    payload: bytes,
    *,
    expect_replies: int | None = None,
    timeout: float = 5.0,
) -> bytes:
    """Send raw bytes to a Redis-speaking ``address`` and return the raw reply bytes.

    ``expect_replies=N`` stops once N complete RESP2 replies arrived (or at
    EOF, returning what came: assert on it); ``None`` reads until the peer
    closes the connection (e.g. after ``QUIT`` or a protocol error).
    """
    done = None
    if expect_replies is not None:
        wanted = expect_replies

        def done(buf: bytes) -> bool:
            return count_resp_replies(buf) >= wanted

    return raw_exchange(address, payload, done=done, timeout=timeout)


def memcache_raw(
    address: str,
    payload: bytes,
    *,
    expect_lines: int | None = None,
    until: bytes | None = None,
    timeout: float = 5.0,
) -> bytes:
    """Send raw bytes to a memcache-speaking ``address`` and return the raw reply bytes.

    Stops when ``until`` has been received (e.g. ``b"END\\r\\n"``), when
    ``expect_lines`` CRLF-terminated lines arrived, or else at EOF.
    """

    def done(buf: bytes) -> bool:
        if until is not None and buf.endswith(until):
            return True
        return expect_lines is not None and buf.count(b"\r\n") >= expect_lines

    if until is None and expect_lines is None:
        return raw_exchange(address, payload, timeout=timeout)
    return raw_exchange(address, payload, done=done, timeout=timeout)


# --------------------------------------------------------------------------
# clients


def redis_client(address: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client for ``address``: RESP2, bytes, 5 s timeouts, no CLIENT SETINFO.

    redis-py 8 sends ``CLIENT SETINFO`` on connect unless ``driver_info=None``;
    nutcracker does not know CLIENT and closes the connection, so it is off
    by default here.  ``kwargs`` override.  Close the client when done.
    """
    import redis as redis_py

    target = parse_address(address)
    options: dict[str, Any] = {
        "protocol": 2,
        "decode_responses": False,
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "driver_info": None,
    }
    if isinstance(target, str):
        options["unix_socket_path"] = target
    else:
        options["host"], options["port"] = target
    options.update(kwargs)
    return redis_py.Redis(**options)


def memcache_client(address: str, **kwargs: Any) -> pymemcache.Client:
    """A pymemcache client for a TCP ``address`` with 5 s timeouts; close it when done."""
    from pymemcache.client.base import Client

    target = parse_address(address)
    options: dict[str, Any] = {"connect_timeout": 5, "timeout": 5}
    options.update(kwargs)
    return Client(target, **options)


# --------------------------------------------------------------------------
# processes


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


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _port_taken(log: str) -> bool:
    """Whether the last start attempt in ``log`` failed because a port was taken."""
    last_attempt = log.split(_ATTEMPT_MARKER)[-1]
    return any(marker in last_attempt for marker in ADDR_IN_USE_MARKERS)


_ATTEMPT_MARKER = "--- corenet test harness: attempt"

_P = TypeVar("_P", bound="Process")


class Process:
    """A child process stopped by PID, logging to ``<tmpdir>/process.log``.

    Subclasses override ``_prepare`` (choose ports, write config files, return
    argv) and ``_probe`` (is it ready?).  The generic form takes ``argv`` and
    an optional ``ready(proc) -> bool`` callable.
    """

    kind: ClassVar[str] = "process"
    #: Restart on a new port at most this many times when a port was taken.
    max_attempts: ClassVar[int] = 5
    #: Ask the kernel to SIGKILL the child when the starting thread dies (Linux).
    #: Start processes from the main thread (fixtures do) or pass die_with_parent=False.
    die_with_parent_default: ClassVar[bool] = True

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        *,
        ready: Callable[[Process], bool] | None = None,
        env: Mapping[str, str] | None = None,
        start: bool = True,
        start_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        self._argv = list(argv) if argv is not None else None
        self._ready = ready
        self.env: dict[str, str] | None = dict(env) if env is not None else None
        self.start_timeout = start_timeout
        self.die_with_parent = (
            self.die_with_parent_default if die_with_parent is None else die_with_parent
        )
        self._tmpdir: str | None = None
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
        if self._argv is None:
            raise TypeError(f"{type(self).__name__} needs argv or a _prepare override")
        return list(self._argv)

    def _probe(self) -> bool:
        """True once the process serves requests."""
        return self._ready(self) if self._ready is not None else True

    def _retryable(self, log: str) -> bool:
        """Whether an early exit with this log may be retried on other ports."""
        return False

    def describe(self) -> str:
        return f"{self.kind} pid={self.pid}"

    @property
    def tmpdir(self) -> str:
        """This process's temporary directory (cwd, log, config), made on first use.

        Removed by ``stop()`` (also for a process that was never started).
        """
        if self._tmpdir is None:
            if self._stopped:
                raise RuntimeError(f"{self.kind} was stopped; its directory is gone")
            self._tmpdir = tempfile.mkdtemp(prefix=f"corenet-{self.kind}-")
            with _registry_lock:
                _registry.add(self)
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
            log = self.tail_log(200)
            if outcome == "exited" and attempt + 1 < self.max_attempts and self._retryable(log):
                continue
            rc = self.popen.returncode if self.popen is not None else None
            if outcome == "exited":
                message = f"{self.kind} exited with status {rc} while starting"
            else:
                message = f"{self.kind} not ready after {self.start_timeout}s"
            pid = self.pid
            self._kill_current()
            raise ServerStartError(
                f"{message}: {' '.join(self.argv)}",
                pid=pid,
                log_tail=self.tail_log(),
                returncode=self.popen.returncode if self.popen is not None else rc,
            )
        raise AssertionError("unreachable")  # pragma: no cover

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
                cwd=self.tmpdir,
                env=self.env,
                start_new_session=True,  # a ^C in the terminal reaches pytest only
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
        The log stays readable through ``tail_log()``.
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
        return (
            self._final_log
            if self._stopped and self._final_log is not None
            else (self._read_log_tail())
        )

    def tail_log(self, lines: int = 40) -> str:
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


class _PortServer(Process):
    """A server listening on one TCP port; retried on a new port if it was taken."""

    def __init__(self, port: int | None, extra_args: Iterable[str], **kwargs: Any) -> None:
        self._fixed_port = port is not None
        self.port: int = port if port is not None else 0
        self.extra_args = list(extra_args)
        super().__init__(**kwargs)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def _prepare(self, attempt: int) -> list[str]:
        if not self._fixed_port:
            self.port = free_port()
        return self._command()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _retryable(self, log: str) -> bool:
        return not self._fixed_port and _port_taken(log)

    def describe(self) -> str:
        return f"{self.kind} {self.address} pid={self.pid}"


class RedisServer(_PortServer):
    """``redis-server`` on 127.0.0.1, no persistence, ready once PING answers +PONG."""

    kind = "redis-server"

    def __init__(
        self, port: int | None = None, extra_args: Iterable[str] = (), **kwargs: Any
    ) -> None:
        self.binary = find_binary("redis-server") or "redis-server"
        self._config_snapshot: bytes | None = None
        super().__init__(port, extra_args, **kwargs)

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            "--enable-debug-command",
            "yes",
            "--dir",
            self.tmpdir,
            *self.extra_args,
        ]

    def _probe(self) -> bool:
        if not _owns_port(self.pid, self.port):
            return False
        try:
            reply = redis_raw(self.address, b"PING\r\n", expect_replies=1, timeout=1.0)
        except OSError:
            return False
        # A server started with --requirepass answers -NOAUTH: it is up too.
        return reply == b"+PONG\r\n" or reply.startswith(b"-NOAUTH")

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client, see ``redis_client``; close it (``with server.client() as r:``)."""
        return redis_client(self.address, **kwargs)

    def raw_command(self, *args: bytes | str | int | float, timeout: float = 5.0) -> bytes:
        """Send one command on a fresh connection; return its raw RESP2 reply bytes."""
        return redis_raw(self.address, encode_command(*args), expect_replies=1, timeout=timeout)

    def keys_count(self) -> int:
        """DBSIZE of db 0."""
        reply = self.raw_command("DBSIZE")
        if not reply.startswith(b":"):
            raise RuntimeError(f"DBSIZE answered {reply!r}")
        return int(reply[1:])

    def config_snapshot(self) -> bytes:
        return self.raw_command("CONFIG", "GET", "*")

    def _start(self) -> None:
        super()._start()
        self._config_snapshot = self.config_snapshot()

    def reset(self) -> None:
        """Make the server as good as new, or raise (then do not reuse it).

        Flushes data, scripts and functions, resets stats, kills other clients
        and replication, and raises if its configuration was changed.
        """
        commands = [
            ("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"),
            ("CLIENT", "KILL", "TYPE", "pubsub", "SKIPME", "yes"),
            ("REPLICAOF", "NO", "ONE"),
            ("FLUSHALL", "SYNC"),
            ("SCRIPT", "FLUSH", "SYNC"),
            ("FUNCTION", "FLUSH", "SYNC"),
            ("CONFIG", "RESETSTAT"),
            ("CONFIG", "GET", "*"),
        ]
        payload = b"".join(encode_command(*cmd) for cmd in commands)
        reply = redis_raw(self.address, payload, expect_replies=len(commands), timeout=5.0)
        pos = 0
        for cmd in commands:
            end = resp_reply_end(reply, pos)
            if end is None:
                raise RuntimeError(f"{self.describe()}: no reply to {cmd}: {reply!r}")
            if reply[pos : pos + 1] == b"-":
                raise RuntimeError(f"{self.describe()}: {cmd} -> {reply[pos:end]!r}")
            last, pos = reply[pos:end], end
        if self._config_snapshot is not None and last != self._config_snapshot:
            raise RuntimeError(f"{self.describe()}: configuration was changed by a test")


class Memcached(_PortServer):
    """``memcached`` on 127.0.0.1 (TCP only, 64 MB, 1 thread), ready once ``version`` answers."""

    kind = "memcached"

    def __init__(
        self, port: int | None = None, extra_args: Iterable[str] = (), **kwargs: Any
    ) -> None:
        self.binary = find_binary("memcached") or "memcached"
        super().__init__(port, extra_args, **kwargs)

    def _command(self) -> list[str]:
        argv = [self.binary, "-l", LOOPBACK, "-p", str(self.port), "-U", "0", "-m", "64", "-t", "1"]
        if os.geteuid() == 0:  # memcached refuses to run as root without -u
            argv += ["-u", pwd.getpwuid(0).pw_name]
        return [*argv, *self.extra_args]

    def _probe(self) -> bool:
        if not _owns_port(self.pid, self.port):
            return False
        try:
            reply = memcache_raw(self.address, b"version\r\n", expect_lines=1, timeout=1.0)
        except OSError:
            return False
        return reply.startswith(b"VERSION ")

    def raw_command(
        self,
        payload: bytes,
        *,
        until: bytes | None = None,
        expect_lines: int | None = 1,
        timeout: float = 5.0,
    ) -> bytes:
        return memcache_raw(
            self.address,
            payload,
            until=until,
            expect_lines=None if until is not None else expect_lines,
            timeout=timeout,
        )

    def reset(self) -> None:
        """flush_all and reset stats, or raise (then do not reuse it)."""
        reply = memcache_raw(self.address, b"flush_all\r\nstats reset\r\n", expect_lines=2)
        if reply != b"OK\r\nRESET\r\n":
            raise RuntimeError(f"{self.describe()}: reset answered {reply!r}")


# --------------------------------------------------------------------------
# proxies


def pool_config(
    name: str,
    listen_port: int | str | None,
    servers: Sequence[str],
    **keys: Any,
) -> dict[str, dict[str, Any]]:
    """One nutcracker.yml pool: ``{name: {"listen": ..., "servers": [...], ...}}``.

    ``listen_port``: a port on 127.0.0.1, a ``/unix/path`` (with optional
    permissions), or None for a free port.  ``servers``: ``"host:port"``
    (weight 1 is appended), or full ``"host:port:weight [name]"`` /
    ``"/path:weight [name]"`` entries kept as they are.  Defaults: redis
    true, hash fnv1a_64, distribution ketama; ``keys`` add or override
    (``redis=False`` for a memcache pool).
    """
    if listen_port is None:
        listen = f"{LOOPBACK}:{free_port()}"
    elif isinstance(listen_port, int):
        listen = f"{LOOPBACK}:{listen_port}"
    else:
        listen = listen_port
    entries = []
    for server in servers:
        server = server.strip()
        addr = server.split()[0]
        is_unix = addr.startswith("/")
        has_weight = addr.count(":") >= (1 if is_unix else 2)
        entries.append(server if has_weight or " " in server else f"{server}:1")
    pool: dict[str, Any] = {
        "listen": listen,
        "redis": True,
        "hash": "fnv1a_64",
        "distribution": "ketama",
    }
    pool.update(keys)
    pool["servers"] = entries
    return {name: pool}


def dump_config(cfg: Mapping[str, Any]) -> str:
    """YAML text of a nutcracker.yml-shaped dict (block style, key order kept)."""
    return yaml.safe_dump(dict(cfg), default_flow_style=False, sort_keys=False)


def listen_addresses(config: Mapping[str, Any] | str) -> dict[str, str]:
    """``{pool: listen}`` of a config (dict or YAML text); {} if it cannot be read."""
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError:
            return {}
    if not isinstance(config, Mapping):
        return {}
    result = {}
    for pool, body in config.items():
        if isinstance(body, Mapping) and isinstance(body.get("listen"), str):
            result[str(pool)] = body["listen"]
    return result


class _Proxy(Process):
    """A proxy reading a nutcracker.yml; ready when every pool's listen address accepts."""

    config_name = "proxy.yml"

    def __init__(
        self, config: Mapping[str, Any] | str, extra_args: Iterable[str] = (), **kwargs: Any
    ) -> None:
        self.config: dict[str, Any] | str = (
            copy.deepcopy(dict(config)) if isinstance(config, Mapping) else config
        )
        self.extra_args = list(extra_args)
        self.stats_port = 0
        super().__init__(**kwargs)

    @property
    def config_path(self) -> str:
        return os.path.join(self.tmpdir, self.config_name)

    @property
    def config_text(self) -> str:
        return self.config if isinstance(self.config, str) else dump_config(self.config)

    @property
    def pools(self) -> list[str]:
        return list(listen_addresses(self.config))

    @property
    def listen(self) -> dict[str, str]:
        """``{pool: listen address}`` as started (ports may differ from the input, see start)."""
        return listen_addresses(self.config)

    def address(self, pool: str | None = None) -> str:
        """Listen address of ``pool`` (default: the only pool), without unix permissions."""
        listen = self.listen
        if pool is None:
            if len(listen) != 1:
                raise ValueError(f"config has pools {sorted(listen)}: name one")
            (pool,) = listen
        return listen[pool].split()[0]

    @property
    def stats_address(self) -> str:
        return f"{LOOPBACK}:{self.stats_port}"

    def describe(self) -> str:
        pools = ", ".join(f"{k}={v}" for k, v in self.listen.items())
        return f"{self.kind} [{pools}] stats={self.stats_port} pid={self.pid}"

    def _prepare(self, attempt: int) -> list[str]:
        self.stats_port = free_port()
        if attempt > 0 and isinstance(self.config, dict):
            # A port taken by someone else: move that pool to a fresh port.
            for body in self.config.values():
                if not isinstance(body, dict) or not isinstance(body.get("listen"), str):
                    continue
                try:
                    target = parse_address(body["listen"])
                except ValueError:
                    continue
                if (
                    isinstance(target, tuple)
                    and target[0] == LOOPBACK
                    and not _port_is_free(target[1])
                ):
                    body["listen"] = f"{LOOPBACK}:{free_port()}"
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(self.config_text)
        return self._command()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _retryable(self, log: str) -> bool:
        return _port_taken(log)

    def _probe(self) -> bool:
        """Every pool's listen address (else the stats port) accepts, and is this process's."""
        targets = [addr.split()[0] for addr in self.listen.values()] or [self.stats_address]
        for addr in targets:
            try:
                target = parse_address(addr)
            except ValueError:
                return False  # a bad listen value: the process is expected to exit
            if isinstance(target, tuple) and not _owns_port(self.pid, target[1]):
                return False
            if not _accepts(addr):
                return False
        return True

    def client(self, pool: str | None = None, **kwargs: Any) -> redis.Redis:
        """A redis-py client (see ``redis_client``) for a redis pool."""
        return redis_client(self.address(pool), **kwargs)

    def memcache_client(self, pool: str | None = None, **kwargs: Any) -> pymemcache.Client:
        """A pymemcache client for a memcache pool."""
        return memcache_client(self.address(pool), **kwargs)

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The stats JSON: connect to the stats port, read to EOF, parse."""
        data = raw_exchange(self.stats_address, b"", timeout=timeout)
        result: dict[str, Any] = json.loads(data)
        return result


class Nutcracker(_Proxy):
    """Debian's ``nutcracker`` (twemproxy 0.5.0) with its log in the process log.

    Pass a dict config to let a taken listen port be replaced by a free one
    (read the final ports from ``address(pool)``); a taken stats port is always
    replaced.
    """

    kind = "nutcracker"
    config_name = "nutcracker.yml"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        extra_args: Iterable[str] = (),
        *,
        verbosity: int = 4,
        **kwargs: Any,
    ) -> None:
        self.binary = find_binary("nutcracker") or "nutcracker"
        self.verbosity = verbosity
        super().__init__(config, extra_args, **kwargs)

    def _command(self) -> list[str]:
        # -o appends (O_APPEND) to the same file our stdout/stderr go to.
        return [
            self.binary,
            "-c",
            self.config_path,
            "-s",
            str(self.stats_port),
            "-a",
            LOOPBACK,
            "-v",
            str(self.verbosity),
            "-o",
            self.log_path,
            *self.extra_args,
        ]


class CorenetProxy(_Proxy):
    """``python -m corenet -c FILE -s STATSPORT -a 127.0.0.1 *extra_args``.

    Runs with ``CORENET_DISABLE_PLUGIN_AUTOLOAD=1`` added to a copy of the
    environment (``env=`` replaces the copied environment; the variable is
    still added).  ``command`` replaces ``[sys.executable, "-m", "corenet"]``.
    """

    kind = "corenet-proxy"
    config_name = "corenet.yml"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        extra_args: Iterable[str] = (),
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.command = list(command) if command is not None else [sys.executable, "-m", "corenet"]
        full_env = dict(os.environ if env is None else env)
        full_env["CORENET_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        super().__init__(config, extra_args, env=full_env, **kwargs)

    def _command(self) -> list[str]:
        return [
            *self.command,
            "-c",
            self.config_path,
            "-s",
            str(self.stats_port),
            "-a",
            LOOPBACK,
            *self.extra_args,
        ]


# --------------------------------------------------------------------------
# a pool of reusable servers (for session-scoped fixtures)

_S = TypeVar("_S", RedisServer, Memcached)


class ServerPool(Generic[_S]):
    """Hands out started servers, reset between uses; stops every server on close().

    A server that died, fails ``reset()`` or had its configuration changed is
    stopped and replaced instead of being handed out again.
    """

    def __init__(self, factory: Callable[[], _S]) -> None:
        self._factory: Callable[[], _S] = factory
        self._idle: list[_S] = []
        self._busy: list[_S] = []
        self.started: list[_S] = []
        self.closed = False

    def acquire(self, n: int) -> list[_S]:
        if self.closed:
            raise RuntimeError("server pool is closed")
        if not 0 <= n <= 64:
            raise ValueError(f"asked for {n} servers (0..64)")
        result: list[_S] = []
        while self._idle and len(result) < n:
            server = self._idle.pop()
            if server.alive():
                result.append(server)
            else:
                server.stop()
        while len(result) < n:
            server = self._factory()
            self.started.append(server)
            result.append(server)
        self._busy.extend(result)
        return result

    def release(self, servers: Iterable[_S]) -> None:
        for server in servers:
            if server in self._busy:
                self._busy.remove(server)
            try:
                if not server.alive():
                    raise RuntimeError("exited")
                server.reset()
            except Exception:
                server.stop()
            else:
                self._idle.append(server)

    def close(self) -> None:
        self.closed = True
        for server in self.started:
            server.stop()
        self._idle.clear()
        self._busy.clear()
