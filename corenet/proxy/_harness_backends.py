"""The backends of the process harness: redis-server and memcached, and their wire.

Raw RESP and memcache exchanges (readiness probes, resets, byte-exact test
assertions), redis-py and pymemcache clients (imported only when asked for:
they are test dependencies, not corenet's), the ``RedisServer`` and
``Memcached`` recipes on :class:`corenet.testing.process.Process`, and a
``ServerPool`` of reusable servers.  Import them from ``corenet.proxy.harness``.
"""

from __future__ import annotations

import os
import pwd
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from corenet.testing.process import LOOPBACK, Process, find_binary, parse_address, raw_exchange

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable

    import pymemcache  # type: ignore[import-untyped]  # no stubs; a test dependency
    import redis

    from corenet.testing.tls import ServerTLS

__all__ = [
    "Memcached",
    "RedisSentinel",
    "RedisServer",
    "ServerPool",
    "count_resp_replies",
    "encode_command",
    "memcache_client",
    "memcache_raw",
    "redis_client",
    "redis_raw",
    "resp_reply_end",
]


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
# raw exchanges and clients


def redis_raw(
    address: str,
    payload: bytes,
    *,
    expect_replies: int | None = None,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Send raw bytes to a Redis-speaking ``address`` and return the raw reply bytes.

    ``expect_replies=N`` stops once N complete RESP2 replies arrived (or at
    EOF, returning what came: assert on it); ``None`` reads until the peer
    closes the connection (e.g. after ``QUIT`` or a protocol error).  With
    ``tls``, over TLS in that context.
    """
    done = None
    if expect_replies is not None:
        wanted = expect_replies

        def done(buf: bytes) -> bool:
            return count_resp_replies(buf) >= wanted

    return raw_exchange(address, payload, done=done, timeout=timeout, tls=tls)


def memcache_raw(
    address: str,
    payload: bytes,
    *,
    expect_lines: int | None = None,
    until: bytes | None = None,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> bytes:
    """Send raw bytes to a memcache-speaking ``address`` and return the raw reply bytes.

    Stops when ``until`` has been received (e.g. ``b"END\\r\\n"``), when
    ``expect_lines`` CRLF-terminated lines arrived, or else at EOF.  With
    ``tls``, over TLS in that context.
    """

    def done(buf: bytes) -> bool:
        if until is not None and buf.endswith(until):
            return True
        return expect_lines is not None and buf.count(b"\r\n") >= expect_lines

    if until is None and expect_lines is None:
        return raw_exchange(address, payload, timeout=timeout, tls=tls)
    return raw_exchange(address, payload, done=done, timeout=timeout, tls=tls)


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
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    target = parse_address(address)
    options: dict[str, Any] = {"connect_timeout": 5, "timeout": 5}
    options.update(kwargs)
    return Client(target, **options)


# --------------------------------------------------------------------------
# servers


class _PortServer(Process):
    """A server listening on one TCP port; retried on a new port if it was taken."""

    picks_port = True

    def __init__(
        self,
        port: int | None,
        extra_args: Iterable[str],
        *,
        tls: ServerTLS | None = None,
        **kwargs: Any,
    ) -> None:
        self.extra_args = list(extra_args)
        self.tls = tls
        """With TLS, the port speaks TLS only (and the harness's own exchanges do)."""
        self._probe_tls = tls.probe_context() if tls is not None else None
        super().__init__(port=port, **kwargs)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def describe(self) -> str:
        return f"{self.kind} {self.address} pid={self.pid}"

    def _probe(self) -> bool:
        # Its own PID listens (not some other process on the port we picked)
        # and it answers its protocol.
        if not self._owns_ports():
            return False
        try:
            return self._answers()
        except OSError:
            return False

    def _answers(self) -> bool:
        """Whether one request on a new connection gets the expected answer."""
        raise NotImplementedError


class RedisServer(_PortServer):
    """``redis-server`` on 127.0.0.1, no persistence, ready once PING answers +PONG.

    With ``tls=ServerTLS(...)``, ``--tls-port`` is the port (``--port 0``: no
    plain-text port) and ``--tls-auth-clients`` is its ``verify_clients``.
    """

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
            *self._port_args(),
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

    def _port_args(self) -> list[str]:
        tls = self.tls
        if tls is None:
            return ["--port", str(self.port)]
        args = ["--port", "0", "--tls-port", str(self.port)]
        args += ["--tls-cert-file", tls.cert, "--tls-key-file", tls.key]
        if tls.ca is not None:
            args += ["--tls-ca-cert-file", tls.ca]
        return [*args, "--tls-auth-clients", tls.verify_clients]

    def _answers(self) -> bool:
        reply = redis_raw(
            self.address, b"PING\r\n", expect_replies=1, timeout=1.0, tls=self._probe_tls
        )
        # A server started with --requirepass answers -NOAUTH: it is up too.
        return reply == b"+PONG\r\n" or reply.startswith(b"-NOAUTH")

    def client(self, **kwargs: Any) -> redis.Redis:
        """A redis-py client, see ``redis_client``; close it (``with server.client() as r:``).

        For a TLS server, pass redis-py's ``ssl=True, ssl_ca_certs=...`` yourself.
        """
        return redis_client(self.address, **kwargs)

    def raw_command(self, *args: bytes | str | int | float, timeout: float = 5.0) -> bytes:
        """Send one command on a fresh connection; return its raw RESP2 reply bytes."""
        return redis_raw(
            self.address,
            encode_command(*args),
            expect_replies=1,
            timeout=timeout,
            tls=self._probe_tls,
        )

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
        reply = redis_raw(
            self.address, payload, expect_replies=len(commands), timeout=5.0, tls=self._probe_tls
        )
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


class RedisSentinel(RedisServer):
    """``redis-server --sentinel`` on 127.0.0.1 watching ``masters``.

    ``masters`` maps each master name to its address; the sentinel's file
    (Sentinel rewrites it) is written in the process's own directory with
    quick timings: down after ``down_after_ms``, failover timeout
    ``failover_timeout_ms``, a quorum of ``quorum``.
    """

    kind = "redis-sentinel"

    def __init__(
        self,
        masters: dict[str, str],
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
        port: int | None = None,
        extra_args: Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        self.masters = dict(masters)
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        super().__init__(port, extra_args, **kwargs)

    def _command(self) -> list[str]:
        lines = [f"port {self.port}", f"bind {LOOPBACK}", f"dir {self.tmpdir}"]
        for name, address in self.masters.items():
            host, port = address.rsplit(":", 1)
            lines += [
                f"sentinel monitor {name} {host} {port} {self.quorum}",
                f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
                f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {name} 1",
            ]
        conf = os.path.join(self.tmpdir, "sentinel.conf")
        with open(conf, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return [self.binary, conf, "--sentinel", "--protected-mode", "no", *self.extra_args]

    def _start(self) -> None:
        # A sentinel has no CONFIG to snapshot: only the process start.
        _PortServer._start(self)

    def master_address(self, name: str) -> str | None:
        """Where this sentinel says master ``name`` is now (``host:port``), or None."""
        reply = self.raw_command("SENTINEL", "get-master-addr-by-name", name)
        parts = [p for p in reply.split(b"\r\n") if p and not p.startswith((b"*", b"$"))]
        return f"{parts[0].decode()}:{parts[1].decode()}" if len(parts) == 2 else None


class Memcached(_PortServer):
    """``memcached`` on 127.0.0.1, TCP only, ready once ``version`` answers.

    64 MB and one worker thread by default: many of them run side by side
    in a test session; the benchmark asks for more of both.  With
    ``tls=ServerTLS(...)``, ``-Z`` with ``ssl_chain_cert``/``ssl_key`` (and
    ``ssl_ca_cert``, ``ssl_verify_mode`` 1 or 2 for ``verify_clients``
    ``"optional"`` or ``"yes"``).
    """

    kind = "memcached"

    def __init__(
        self,
        port: int | None = None,
        extra_args: Iterable[str] = (),
        *,
        memory_mb: int = 64,
        threads: int = 1,
        **kwargs: Any,
    ) -> None:
        self.binary = find_binary("memcached") or "memcached"
        self.memory_mb = memory_mb
        self.threads = threads
        super().__init__(port, extra_args, **kwargs)

    def _command(self) -> list[str]:
        argv = [self.binary, "-l", LOOPBACK, "-p", str(self.port), "-U", "0"]
        argv += ["-m", str(self.memory_mb), "-t", str(self.threads)]
        if os.geteuid() == 0:  # memcached refuses to run as root without -u
            argv += ["-u", pwd.getpwuid(0).pw_name]
        tls = self.tls
        if tls is not None:
            options = [f"ssl_chain_cert={tls.cert}", f"ssl_key={tls.key}"]
            if tls.ca is not None:
                options.append(f"ssl_ca_cert={tls.ca}")
            # memcached's modes: 0 none, 1 request, 2 require (3: once per connection)
            mode = {"no": 0, "optional": 1, "yes": 2}[tls.verify_clients]
            options.append(f"ssl_verify_mode={mode}")
            argv += ["-Z", "-o", ",".join(options)]
        return [*argv, *self.extra_args]

    def _answers(self) -> bool:
        reply = memcache_raw(
            self.address, b"version\r\n", expect_lines=1, timeout=1.0, tls=self._probe_tls
        )
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
            tls=self._probe_tls,
        )

    def reset(self) -> None:
        """flush_all and reset stats, or raise (then do not reuse it)."""
        reply = memcache_raw(
            self.address, b"flush_all\r\nstats reset\r\n", expect_lines=2, tls=self._probe_tls
        )
        if reply != b"OK\r\nRESET\r\n":
            raise RuntimeError(f"{self.describe()}: reset answered {reply!r}")


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

    def __enter__(self) -> ServerPool[_S]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
