"""Misbehaving clients and backends: backpressure, bounded memory, timeouts,
fd exhaustion, garbage from a backend, reconnects."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import threading
import time

import pytest

from corenet.testing import process
from tests.servers import RedisServer, encode_command, free_port, pool_config, redis_raw, wait_for


def rss_bytes(pid: int) -> int:
    rss = process.rss_bytes(pid)
    assert rss is not None, f"no VmRSS for pid {pid}"
    return rss


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect(address: str, timeout: float = 10) -> socket.socket:
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def send_until_blocked(
    sock: socket.socket, payload: bytes, stall: float = 2.0, limit: float = 20.0
) -> int:
    """Send ``payload`` without reading; stop when the peer stops taking bytes."""
    sock.setblocking(False)
    view = memoryview(payload)
    sent = 0
    last_progress = started = time.monotonic()
    while sent < len(view) and time.monotonic() - started < limit:
        try:
            n = sock.send(view[sent : sent + 65536])
        except BlockingIOError:
            if time.monotonic() - last_progress > stall:
                break
            time.sleep(0.01)
            continue
        sent += n
        last_progress = time.monotonic()
    return sent


@pytest.mark.slow
@pytest.mark.parametrize("command", ["SET", "GET"])
def test_unread_giant_pipeline_is_backpressured_and_memory_returns(
    command, redis_server, corenet_proxy_factory
):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    redis_server.client().set("key:x", "v" * 100)
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"
    baseline = rss_bytes(proxy.pid)
    args = ("SET", "key:x", "v" * 100) if command == "SET" else ("GET", "key:x")
    payload = encode_command(*args) * 1_000_000
    sock = connect(proxy.address("alpha"))
    sent = send_until_blocked(sock, payload)
    peak = rss_bytes(proxy.pid)
    growth = peak - baseline
    print(
        f"1M-{command} unread pipeline: client sent {sent / 1e6:.1f} of "
        f"{len(payload) / 1e6:.1f} MB, proxy RSS +{growth / 2**20:.1f} MiB"
    )
    if command == "GET":
        # 110 MB of replies cannot hide in kernel buffers: the proxy must
        # have stopped reading (for SET, 5 MB of "+OK" replies can).
        assert sent < len(payload)
    assert growth <= 64 * 2**20
    # Another client is served meanwhile.
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"
    sock.close()
    assert wait_for(lambda: proxy.stats()["alpha"]["client_connections"] == 0, timeout=30)
    after = rss_bytes(proxy.pid)
    assert after - baseline <= 16 * 2**20


def test_giant_pipeline_that_is_read_gets_every_reply_in_order(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    n = 100_000
    payload = b"".join(encode_command("INCR", "counter") for _ in range(n))
    sock = connect(proxy.address("alpha"))
    received = bytearray()

    def reader() -> None:
        while received.count(b"\r\n") < n:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return
            received.extend(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    sock.sendall(payload)
    thread.join(timeout=60)
    sock.close()
    assert bytes(received) == b"".join(b":%d\r\n" % i for i in range(1, n + 1))


def test_slow_reader_of_large_values_is_capped_then_dropped(redis_server, corenet_proxy_factory):
    redis_server.client().set("big", b"x" * (1 << 20))
    config = pool_config("alpha", None, [redis_server.address], client_output_limit=8 * 2**20)
    proxy = corenet_proxy_factory(config)
    baseline = rss_bytes(proxy.pid)
    sock = connect(proxy.address("alpha"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    send_until_blocked(sock, encode_command("GET", "big") * 200, stall=1.0, limit=10)
    # Dropped: the connection is closed by the proxy once it is over the cap.
    assert wait_for(lambda: proxy.stats()["alpha"]["client_connections"] == 0, timeout=10)
    assert proxy.stats()["alpha"]["client_err"] >= 1
    sock.close()
    assert rss_bytes(proxy.pid) - baseline <= 32 * 2**20
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"


def test_idle_and_slow_trickle_clients_are_closed(redis_server, corenet_proxy_factory):
    config = pool_config(
        "alpha", None, [redis_server.address], client_idle_timeout=300, client_request_timeout=300
    )
    proxy = corenet_proxy_factory(config)
    idle = connect(proxy.address("alpha"))
    trickle = connect(proxy.address("alpha"))
    busy = connect(proxy.address("alpha"))
    trickle.sendall(b"*2\r\n$3\r\nGET\r\n")
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # a client that keeps asking stays
        busy.sendall(b"PING\r\n")
        assert busy.recv(100) == b"+PONG\r\n"
        time.sleep(0.05)
    idle.settimeout(5)
    trickle.settimeout(5)
    assert idle.recv(100) == b""
    assert trickle.recv(100) == b""
    busy.sendall(b"PING\r\n")
    assert busy.recv(100) == b"+PONG\r\n"
    for s in (idle, trickle, busy):
        s.close()


def test_out_of_file_descriptors_does_not_spin(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    pid = proxy.pid
    used = len(os.listdir(f"/proc/{pid}/fd"))
    old = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (used + 5, old[1]))
    clients: list[socket.socket] = []
    try:
        clients.extend(connect(proxy.address("alpha"), timeout=2) for _ in range(30))
        before = cpu_seconds(pid)
        time.sleep(1.0)
        spent = cpu_seconds(pid) - before
        assert spent < 0.5, f"the proxy burned {spent:.2f} s of CPU while out of descriptors"
    finally:
        for sock in clients:
            sock.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, old)
    assert wait_for(
        lambda: (
            redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1, timeout=1)
            == b"+PONG\r\n"
        ),
        timeout=5,
    )


class FakeBackend:
    """A scripted backend for what a real server cannot be made to do."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(0.2)
                with contextlib.suppress(OSError):
                    if conn.recv(65536):
                        conn.sendall(self.answer)
                    end = time.monotonic() + 2
                    while not self._stop and time.monotonic() < end:
                        try:
                            if not conn.recv(65536):
                                break
                        except TimeoutError:
                            continue

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", b"-ERR Protocol error\r\n"),
        (b"$5\r\nab", b"-ERR Connection timed out\r\n"),
    ],
)
def test_garbage_or_half_reply_from_a_backend(
    answer, expected, redis_server, corenet_proxy_factory
):
    fake = FakeBackend(answer)
    try:
        config = pool_config("fake", None, [fake.address], timeout=300)
        config.update(pool_config("good", None, [redis_server.address]))
        proxy = corenet_proxy_factory(config)
        reply = redis_raw(
            proxy.address("fake"),
            encode_command("GET", "k") + encode_command("GET", "k"),
            expect_replies=2,
        )
        assert reply.startswith(expected)
        assert b"ab" not in reply and b"HTTP" not in reply  # garbage never reaches a client
        assert (
            redis_raw(proxy.address("good"), encode_command("SET", "k", "v"), expect_replies=1)
            == b"+OK\r\n"
        )
        stats = proxy.stats()["fake"][fake.address]
        assert stats["server_err"] + stats["server_timedout"] >= 1
    finally:
        fake.close()


def test_reconnect_after_backend_restart_is_quick_and_no_storm(corenet_proxy_factory):
    port = free_port()
    backend = RedisServer(port=port)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [backend.address]))
    try:
        assert redis_raw(proxy.address("alpha"), b"SET k v\r\n", expect_replies=1) == b"+OK\r\n"
        backend.stop()
        sock = connect(proxy.address("alpha"))
        for _ in range(200):  # a burst against the dead port: fast errors, not 200 connects
            sock.sendall(b"GET k\r\n")
            reply = sock.recv(100)
            assert reply.startswith(b"-ERR Connection re")
        stats = proxy.stats()["alpha"]
        assert stats["forward_error"] >= 150  # most answered from the back-off, without a connect
        backend = RedisServer(port=port)
        started = time.monotonic()
        while True:
            sock.sendall(b"SET k v2\r\n")
            if sock.recv(100) == b"+OK\r\n":
                break
            assert time.monotonic() - started < 1.0, "no success within 1 s of the backend's return"
            time.sleep(0.02)
        sock.close()
    finally:
        backend.stop()


def test_idle_connection_cost_is_small(redis_server, corenet_proxy_factory):
    proxy = corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]))
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"
    n = 1000
    baseline = rss_bytes(proxy.pid)
    socks = [connect(proxy.address("alpha")) for _ in range(n)]
    try:
        for sock in socks:
            sock.sendall(b"PING\r\n")
        for sock in socks:
            assert sock.recv(10) == b"+PONG\r\n"
        per_conn = (rss_bytes(proxy.pid) - baseline) / n
    finally:
        for sock in socks:
            sock.close()
    print(f"idle client connection: {per_conn / 1024:.1f} KiB each")
    assert per_conn <= 10 * 1024
