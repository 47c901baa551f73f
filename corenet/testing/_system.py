"""What the operating system says about processes and sockets, for the process harness.

Binaries on $PATH and in the sbin directories, loopback connections and raw
exchanges, which TCP ports a PID listens on, whether a PID has exited and how
much CPU it used (Linux ``/proc``; elsewhere the answers are "unknown").
Nothing here starts or stops a process: see :mod:`corenet.testing.process`.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LOOPBACK",
    "RawReplyTimeout",
    "accepts",
    "connect",
    "cpu_seconds",
    "exited",
    "find_binary",
    "listening_tcp_ports",
    "machine_busy_seconds",
    "owns_port",
    "parse_address",
    "raw_exchange",
]

LOOPBACK = "127.0.0.1"

#: Directories searched after $PATH: Debian installs nutcracker in /usr/sbin,
#: which a non-root $PATH often lacks.
_EXTRA_BIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def find_binary(name: str) -> str | None:
    """Absolute path of executable ``name`` on $PATH or in an sbin directory, else None."""
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_EXTRA_BIN_DIRS])
    return shutil.which(name, path=search)


# --------------------------------------------------------------------------
# sockets


def parse_address(address: str) -> tuple[str, int] | str:
    """``"host:port"`` -> ``(host, port)``; ``"/path.sock [perm]"`` -> ``"/path.sock"``."""
    address = address.strip()
    if address.startswith("/"):
        return address.split()[0]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a host:port or /unix/path address: {address!r}")
    return host.strip("[]"), int(port)


def connect(
    address: str | tuple[str, int], timeout: float, *, tls: ssl.SSLContext | None = None
) -> socket.socket:
    """A connected socket to ``"host:port"``, ``(host, port)`` or a unix path (TCP_NODELAY).

    With ``tls``, the socket is wrapped in it and the handshake done (the
    host is the name checked, if the context checks names).
    """
    target = parse_address(address) if isinstance(address, str) else address
    if isinstance(target, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(target)
        except BaseException:
            sock.close()
            raise
        host = "localhost"
    else:
        sock = socket.create_connection(target, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host = target[0]
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def accepts(address: str | tuple[str, int], timeout: float = 0.5) -> bool:
    """Whether ``address`` accepts a connection now."""
    try:
        sock = connect(address, timeout)
    except OSError:
        return False
    sock.close()
    return True


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
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Send ``payload`` on a new connection and read until ``done(received)`` or EOF.

    With ``done=None`` reads until the peer closes.  Returns everything read
    (the bytes exactly as received).  Raises ``RawReplyTimeout`` (carrying the
    partial data) if neither happens within ``timeout`` seconds in total.
    With ``tls``, the exchange is over TLS in that context (see :func:`connect`).
    """
    deadline = time.monotonic() + timeout
    received = bytearray()
    with connect(address, timeout, tls=tls) as sock:
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
            except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            received += chunk
            if done is not None and done(bytes(received)):
                break
    return bytes(received)


# --------------------------------------------------------------------------
# /proc


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


def owns_port(pid: int | None, port: int) -> bool:
    """Whether ``pid`` listens on TCP ``port`` (True where /proc cannot tell)."""
    if pid is None:
        return False
    ports = listening_tcp_ports(pid)
    return ports is None or port in ports


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` from the state on (field 3), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            data = fh.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    end = data.rfind(")")
    return data[end + 2 :].split() if end >= 0 else None


def exited(pid: int) -> bool:
    """True once ``pid`` has exited: no such process, or a zombie.

    For a process someone else must reap (a daemon's, reparented to PID 1,
    which on some machines reaps late), a zombie is as gone as it gets;
    ``os.kill(pid, 0)`` and ``/proc/PID`` still see it.
    """
    fields = _stat_fields(pid)
    return not fields or fields[0] in ("Z", "X")


def cpu_seconds(pid: int, *, children: bool = False) -> float | None:
    """User plus system CPU time of process ``pid`` (all its threads) from /proc, or None.

    Fields 14 and 15 of ``/proc/PID/stat`` in clock ticks (``SC_CLK_TCK``,
    usually 100 per second, so the resolution is 10 ms).  With ``children``,
    the live child processes' time is added (``--workers``: the supervisor
    and its workers); a child that exits between two readings takes its
    time with it, so a run where a worker died reads low.
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                child = _stat_fields(entry)
                if child is not None and len(child) > 12 and child[1] == str(pid):
                    ticks += int(child[11]) + int(child[12])
    return ticks / _CLK_TCK


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (``VmRSS`` in ``/proc/PID/status``), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


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
