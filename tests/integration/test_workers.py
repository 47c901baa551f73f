"""``--workers N``: a supervisor, N workers sharing the listeners, merged stats.

Which worker holds which client connection is read from /proc (the
socket inodes of each worker against /proc/net/tcp), so these tests are
Linux-only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from corenet.proxy.workers import ENV_SHARED_SOCKET
from tests.servers import (
    DaemonFiles,
    encode_command,
    exited,
    free_port,
    pool_config,
    redis_client,
    redis_raw,
    run_corenet,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.servers import CorenetProxy, RedisServer

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads worker sockets from /proc"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def children(pid: int) -> set[int]:
    """The pids whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After "(comm)": state, then the parent's pid.
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry))
    return found


def established_on(pid: int, port: int) -> int:
    """How many ESTABLISHED TCP sockets with local ``port`` process ``pid`` holds."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            next(fh, None)
            for line in fh:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count


def _server_sum(stats: dict[str, Any], pool: str, figure: str) -> int:
    return sum(v[figure] for v in stats[pool].values() if isinstance(v, dict))


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _two_workers(proxy: CorenetProxy) -> set[int]:
    assert proxy.pid is not None
    assert wait_for(lambda: len(children(proxy.pid or 0)) == 2, timeout=5)
    return children(proxy.pid)


def test_two_workers_share_the_load_and_stats_are_summed(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    backends = redis_servers(2)
    cfg = pool_config("alpha", None, [s.address for s in backends])
    proxy = corenet_proxy_factory(cfg, ["--workers", "2"])
    assert "reuseport listeners" in proxy.log_text()
    workers = _two_workers(proxy)
    address = proxy.address()
    clients = [redis_client(address) for _ in range(24)]
    try:
        for i, client in enumerate(clients):
            assert client.set(f"key:{i}", i)
            assert client.get(f"key:{i}") == str(i).encode()
        # Connections are spread over both workers (by the kernel's hash of
        # the 4-tuple: 24 connections all on one worker has odds 2**-23).
        per_worker = {pid: established_on(pid, _port(address)) for pid in workers}
        assert sum(per_worker.values()) == 24, per_worker
        assert all(n > 0 for n in per_worker.values()), per_worker

        before = proxy.stats()
        assert before["service"] == "nutcracker"
        assert before["alpha"]["client_connections"] == 24
        # 2 listeners (one per worker), 24 clients, 2 server connections per worker at most.
        assert 2 + 24 + 2 <= before["curr_connections"] <= 2 + 24 + 4
        assert before["total_connections"] >= before["curr_connections"]
        requests = _server_sum(before, "alpha", "requests")
        assert requests == 48

        # Exactly 30 more requests over fresh raw connections.
        for i in range(10):
            wire = b"".join(encode_command("INCR", f"n:{i}") for _ in range(3))
            assert redis_raw(address, wire, expect_replies=3).endswith(b":3\r\n")
        after = proxy.stats()
        total = _server_sum(after, "alpha", "requests")
        responses = _server_sum(after, "alpha", "responses")
        assert total - requests == 30
        assert responses == total
        assert after["uptime"] >= 0
        assert abs(after["timestamp"] - time.time()) < 5
    finally:
        for client in clients:
            client.close()


def test_killed_worker_is_restarted_and_serving_goes_on(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [redis_server.address]), ["--workers", "2"]
    )
    workers = _two_workers(proxy)
    address = proxy.address()
    port = _port(address)
    held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
    try:
        for sock in held:
            sock.sendall(encode_command("PING"))
            assert sock.recv(64) == b"+PONG\r\n"
        owner = {pid: established_on(pid, port) for pid in workers}
        victim = max(owner, key=lambda pid: owner[pid])
        assert owner[victim] > 0
        os.kill(victim, signal.SIGKILL)
        # The victim's clients see their connections close; the others stay up.
        closed = 0
        for sock in held:
            try:
                sock.sendall(encode_command("PING"))
                reply = sock.recv(64)
            except OSError:
                reply = b""
            closed += reply == b""
            if reply:
                assert reply == b"+PONG\r\n"
        assert closed == owner[victim]
        # A replacement is forked within about a second.
        t0 = time.monotonic()
        assert wait_for(
            lambda: len(children(proxy.pid or 0) - {victim}) == 2, timeout=3, interval=0.02
        )
        assert time.monotonic() - t0 < 1.5
        assert "restarting in" in proxy.log_text()
        for i in range(20):
            with redis_client(address) as client:
                assert client.set(f"after:{i}", "x")
        stats = proxy.stats()
        assert stats["alpha"]["client_connections"] == 8 - closed
    finally:
        for sock in held:
            sock.close()


def test_sigterm_drains_every_worker_exits_0_and_removes_the_pid_file(
    redis_server: RedisServer,
    corenet_proxy_factory: Callable[..., CorenetProxy],
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "proxy.pid"
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [redis_server.address]),
        ["--workers", "2", "-p", str(pid_file)],
    )
    workers = _two_workers(proxy)
    assert int(pid_file.read_text()) == proxy.pid
    with redis_client(proxy.address()) as client:
        assert client.set("k", "v")
    proxy.send_signal(signal.SIGTERM)
    assert proxy.wait(timeout=10) == 0
    assert not pid_file.exists()
    assert wait_for(lambda: all(exited(pid) for pid in workers))
    log = proxy.log_text()
    assert log.count("drained, exiting") == 2
    assert "[worker 0 pid" in log and "[worker 1 pid" in log


def test_sigint_exits_with_status_1(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, [redis_server.address]), ["--workers", "2"]
    )
    _two_workers(proxy)
    proxy.send_signal(signal.SIGINT)
    assert proxy.wait(timeout=10) == 1


def test_shared_socket_mode_serves_tcp_and_unix_pools(
    redis_server: RedisServer,
    corenet_proxy_factory: Callable[..., CorenetProxy],
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "beta.sock")
    cfg = {
        **pool_config("alpha", None, [redis_server.address]),
        **pool_config("beta", path, [redis_server.address]),
    }
    env = {**os.environ, ENV_SHARED_SOCKET: "1"}
    proxy = corenet_proxy_factory(cfg, ["--workers", "2"], env=env)
    assert "shared listeners" in proxy.log_text()
    _two_workers(proxy)
    for pool in ("alpha", "beta"):
        for i in range(10):
            with proxy.client(pool) as client:
                assert client.set(f"{pool}:{i}", i)
                assert client.get(f"{pool}:{i}") == str(i).encode()
    stats = proxy.stats()
    assert _server_sum(stats, "beta", "requests") == 20
    proxy.send_signal(signal.SIGTERM)
    assert proxy.wait(timeout=10) == 0
    assert not os.path.exists(path)


def test_daemon_with_workers_reports_ready_and_stops_on_sigterm(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    daemon = DaemonFiles.write(tmp_path, pool_config("alpha", port, [redis_server.address]))
    pid_file = daemon.pid_file
    # Returns once the workers are ready: the start-up pipe must not be held open by them.
    result = run_corenet("--workers", "2", *daemon.args(), timeout=20, env={"PYTHONPATH": ROOT})
    assert result.returncode == 0, result.stderr
    pid = int(pid_file.read_text())
    try:
        with redis_client(f"127.0.0.1:{port}") as client:
            assert client.set("d", "1")
        os.kill(pid, signal.SIGTERM)
        assert wait_for(lambda: exited(pid), timeout=10)
        assert not pid_file.exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
