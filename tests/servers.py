"""Helpers of corenet's tests for real servers: the process harness plus test-only bits.

The process harness itself (free loopback ports, start and stop by PID,
redis-server, memcached, nutcracker and corenet-proxy recipes, raw RESP and
memcache exchanges) lives in ``corenet.testing.process`` and
``corenet.proxy.harness``, shared with the benchmark, the demo and plugin
authors; it is re-exported here so tests keep importing from one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import redis

from corenet.proxy.harness import (
    CorenetProxy,
    Memcached,
    Nutcracker,
    RedisCluster,
    RedisSentinel,
    RedisServer,
    ServerPool,
    count_resp_replies,
    dump_config,
    encode_command,
    listen_addresses,
    memcache_client,
    memcache_raw,
    pool_config,
    redis_client,
    redis_raw,
    resp_reply_end,
)
from corenet.testing.process import (
    ADDR_IN_USE_MARKERS,
    LOOPBACK,
    Process,
    RawReplyTimeout,
    ServerStartError,
    connect,
    exited,
    find_binary,
    free_port,
    listening_tcp_ports,
    parse_address,
    raw_exchange,
    running_processes,
    stop_all,
    wait_for,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from pathlib import Path

__all__ = [
    "ADDR_IN_USE_MARKERS",
    "END_REPLY",
    "END_REQUEST",
    "called_later",
    "exchange",
    "assert_nutcracker_finds",
    "metrics_page",
    "poll_until",
    "LOOPBACK",
    "CorenetProxy",
    "DaemonFiles",
    "Memcached",
    "Nutcracker",
    "Process",
    "Writer",
    "RawReplyTimeout",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "ServerPool",
    "ServerStartError",
    "count_resp_replies",
    "dump_config",
    "encode_command",
    "exited",
    "find_binary",
    "free_port",
    "listen_addresses",
    "listening_tcp_ports",
    "memcache_client",
    "memcache_raw",
    "parse_address",
    "pool_config",
    "raw_exchange",
    "read_until",
    "redis_benchmark",
    "redis_client",
    "redis_raw",
    "resp_reply_end",
    "run_corenet",
    "running_processes",
    "spread_keys",
    "stop_all",
    "wait_for",
]


T = TypeVar("T")


def poll_until(
    check: Callable[[], T], what: str, timeout: float = 20.0, interval: float = 0.05
) -> tuple[T, float]:
    """``check()``'s first true value and the seconds it took; fail the test
    (naming ``what``) after ``timeout`` seconds."""
    start = time.monotonic()
    while True:
        value = check()
        if value:
            return value, time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextlib.contextmanager
def called_later(delay: float, call: Callable[..., object], *args: object) -> Iterator[None]:
    """Run ``call(*args)`` on a thread ``delay`` seconds from now, while the
    ``with`` body waits for its effect (a blocked read, a subscription);
    joined on leaving, so nothing outlives the test."""
    timer = threading.Timer(delay, call, args=args)
    timer.start()
    try:
        yield
    finally:
        timer.join()


END_REQUEST = b"ECHO corenet:end\r\n"
END_REPLY = b"$11\r\ncorenet:end\r\n"


def exchange(address: str, payload: bytes, *, quiet: float = 3.0) -> bytes:
    """Every reply to ``payload``, sent at once on a new connection to a Redis
    ``address`` (proxy or server).  An ``ECHO`` marker sent after it tells
    where the replies end; ``payload`` must leave the connection where ECHO
    is answered (outside MULTI and subscriptions)."""
    with connect(address, 5) as sock:
        sock.sendall(payload + END_REQUEST)
        data = read_until(sock, lambda d: d.endswith(END_REPLY), quiet=quiet)
    assert data.endswith(END_REPLY), data[-200:]
    return data[: -len(END_REPLY)]


def metrics_page(port: int) -> str:
    """The text of ``/metrics`` on 127.0.0.1:``port``."""
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/metrics", timeout=10) as page:
        return str(page.read().decode())


def assert_nutcracker_finds(
    proxy_address: str,
    nutcracker_config: Mapping[str, Any],
    nutcracker_factory: Callable[..., Nutcracker],
    keys: Sequence[bytes],
) -> None:
    """Keys written through ``proxy_address`` are all found by nutcracker
    started on ``nutcracker_config`` (one pool, over the same backends):
    both place them alike."""
    writer = redis_client(proxy_address)
    try:
        for key in keys:
            writer.set(key, key)
    finally:
        writer.close()
    nutcracker = nutcracker_factory(nutcracker_config)
    reader = nutcracker.client()
    try:
        assert reader.mget(list(keys)) == list(keys)
    finally:
        reader.close()
        nutcracker.stop()


def spread_keys(n: int, prefix: str = "key", digits: int = 10) -> list[str]:
    """``n`` well-mixed key names ``prefix:<sha1 hex>``: fnv1a_64 puts names
    that differ only in their last byte close together on the ketama ring,
    which would hide placement bugs."""
    return [f"{prefix}:{hashlib.sha1(str(i).encode()).hexdigest()[:digits]}" for i in range(n)]


def read_until(
    sock: socket.socket,
    done: Callable[[bytearray], bool] = lambda data: False,
    *,
    quiet: float | None = None,
) -> bytes:
    """What ``sock`` receives until ``done(data)`` holds or the peer closes.

    With ``quiet``, reading also ends once nothing came for ``quiet`` seconds
    (the socket's timeout is set to it); without it, the socket's own
    timeout raises."""
    if quiet is not None:
        sock.settimeout(quiet)
    data = bytearray()
    try:
        while not done(data):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        if quiet is None:
            raise
    return bytes(data)


class Writer:
    """A redis-py client in a thread writing ``<prefix><i> = v<i>`` and reading
    it back in one pipeline, until stopped (two minutes at most).

    ``errors`` has each failure's time and text; ``wrong`` each reply that
    was not the value just written (a missing value counts as wrong unless
    ``allow_missing``: a failover may lose an acknowledged write).
    """

    def __init__(self, address: str, *, prefix: bytes = b"k", allow_missing: bool = True) -> None:
        host, port = address.rsplit(":", 1)
        self.client = redis.Redis(host=host, port=int(port), socket_timeout=5, driver_info=None)
        self.prefix = prefix
        self.allow_missing = allow_missing
        self.errors: list[tuple[float, str]] = []
        self.wrong: list[str] = []
        self.done = 0
        self.written = 0
        """Keys ``<prefix>0`` .. ``<prefix>{written-1}`` were written (or tried)."""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 120
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            key, value = self.prefix + b"%d" % i, b"v%d" % i
            try:
                pipe = self.client.pipeline(transaction=False)
                pipe.set(key, value)
                pipe.get(key)
                ok, got = pipe.execute()
                expected = (value, None) if self.allow_missing else (value,)
                if ok is not True or got not in expected:
                    self.wrong.append(f"{key!r}: {ok!r} {got!r}")
                self.done += 1
            except redis.RedisError as exc:
                self.errors.append((time.monotonic(), str(exc)))
                time.sleep(0.01)
            i += 1
            self.written = i
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(30)
        self.client.close()


def run_corenet(
    *args: str | os.PathLike[str],
    cwd: Path | None = None,
    timeout: float = 30,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m corenet ARGS`` with plugin autoload off (and ``env`` added),
    its output captured; the exit status is the caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", "corenet", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CORENET_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})},
        cwd=cwd,
        check=False,
    )


@dataclass(frozen=True)
class DaemonFiles:
    """The config file a ``-d`` (daemonize) test writes, and where the daemon
    is told to write its pid file and log, all in one directory."""

    config: Path
    pid_file: Path
    log: Path

    @classmethod
    def write(cls, directory: Path, config: Mapping[str, Any]) -> DaemonFiles:
        path = directory / "c.yml"
        path.write_text(dump_config(config))
        return cls(path, directory / "proxy.pid", directory / "proxy.log")

    def args(self) -> list[str]:
        """``-d`` with these files and the stats port off."""
        return [
            "-d",
            "-c",
            str(self.config),
            "-p",
            str(self.pid_file),
            "-o",
            str(self.log),
            "-s",
            "0",
        ]


def redis_benchmark(address: str, *args: str, timeout: float) -> str:
    """Run ``redis-benchmark ARGS`` against ``address``; assert that it
    exited 0 and return what it printed (stdout, then stderr)."""
    host, port = address.rsplit(":", 1)
    result = subprocess.run(
        ["redis-benchmark", "-h", host, "-p", port, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output
