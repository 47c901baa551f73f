"""Blocking clients the benchmark needs: fill Redis, read Redis INFO and memcached stats.

Plain sockets, no dependency: the load itself comes from redis-benchmark and
memcaslap; these helpers only prepare the keyspace and read the backends'
own counters, which tell whether the requests of a run really reached them.
"""

from __future__ import annotations

import socket

from corenet.testing.process import LOOPBACK

__all__ = [
    "KEY_FORMAT",
    "VALUE",
    "memcache_stats",
    "redis_command",
    "redis_info",
    "redis_populate",
]

#: The key redis-benchmark makes of ``key:__rand_int__`` with ``-r``: 12 zero-padded digits.
KEY_FORMAT = b"key:%012d"
#: redis-benchmark's default SET value size is 3 bytes (``-d 3``).
VALUE = b"xxx"

_TIMEOUT = 30.0


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((LOOPBACK, port), timeout=_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _encode(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    out += [b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args]
    return b"".join(out)


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> None:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise ConnectionError("connection closed by the server")
        buf += chunk


def redis_command(port: int, *args: bytes) -> bytes:
    """Send one command and return its reply's payload (simple, integer or bulk string).

    Raises ``RuntimeError`` on an error reply.  Arrays are not supported (not needed).
    """
    with _connect(port) as sock:
        sock.sendall(_encode(*args))
        buf = bytearray()
        while b"\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            buf += chunk
        eol = buf.index(b"\r\n")
        kind, head = buf[:1], bytes(buf[1:eol])
        if kind == b"-":
            raise RuntimeError(head.decode("utf-8", "replace"))
        if kind != b"$":
            return head
        size = int(head)
        if size < 0:
            return b""
        _read_exact(sock, buf, eol + 2 + size + 2)
        return bytes(buf[eol + 2 : eol + 2 + size])


def redis_info(port: int, *sections: bytes) -> dict[str, str]:
    """``INFO section...`` parsed into ``{field: value}`` (section headers dropped)."""
    text = redis_command(port, b"INFO", *sections).decode("utf-8", "replace")
    info: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            name, _, value = line.partition(":")
            info[name] = value
    return info


def redis_populate(port: int, keyspace: int, batch: int = 20_000) -> None:
    """SET ``key:%012d`` to ``xxx`` for every key in ``0..keyspace-1``, pipelined in batches."""
    with _connect(port) as sock:
        for start in range(0, keyspace, batch):
            stop = min(start + batch, keyspace)
            cmd = b"*3\r\n$3\r\nSET\r\n$16\r\n" + KEY_FORMAT + b"\r\n$3\r\n" + VALUE + b"\r\n"
            payload = b"".join([cmd % i for i in range(start, stop)])
            sock.sendall(payload)
            expected = b"+OK\r\n" * (stop - start)
            buf = bytearray()
            _read_exact(sock, buf, len(expected))
            if buf != expected:
                raise RuntimeError(
                    f"populating 127.0.0.1:{port}: unexpected reply {bytes(buf[:200])!r}"
                )


def memcache_stats(port: int) -> dict[str, str]:
    """memcached's ``stats`` as ``{name: value}``."""
    with _connect(port) as sock:
        sock.sendall(b"stats\r\n")
        buf = bytearray()
        while not buf.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by memcached")
            buf += chunk
    stats: dict[str, str] = {}
    for line in buf.decode("ascii", "replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats
