"""corenet-proxy serves the kv protocol in front of two reference kv servers.

Needs the plugin installed (``pip install -e docs/examples/corenet-kv``) so
that corenet finds it through its entry point; skipped otherwise.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from corenet._plugins import Plugins

if TYPE_CHECKING:
    from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "corenet_kv.server", "--port", "0"],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1] / "src")},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening "):
        stop(proc)
        raise RuntimeError(f"kv server did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


@pytest.fixture
def kv_servers() -> Iterator[list[int]]:
    started = [start_server() for _ in range(2)]
    try:
        yield [port for _, port in started]
    finally:
        for proc, _ in started:
            stop(proc)


def test_proxy_shards_kv_keys_over_two_servers(
    kv_servers: list[int], tmp_path: pathlib.Path
) -> None:
    if "kv" not in Plugins().protocols:
        pytest.skip("install the plugin first: pip install -e docs/examples/corenet-kv")
    listen = free_port()
    servers = "".join(f"    - {LOOPBACK}:{port}:1\n" for port in kv_servers)
    conf = tmp_path / "kv.yml"
    conf.write_text(
        f"kv:\n  listen: {LOOPBACK}:{listen}\n  protocol: kv\n  hash: djb2\n"
        f"  distribution: modula\n  servers:\n{servers}"
    )
    cmd = [sys.executable, "-m", "corenet", "-c", str(conf), "-s", str(free_port())]
    proxy = subprocess.Popen([*cmd, "-a", LOOPBACK], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = socket.create_connection((LOOPBACK, listen), timeout=5)
                break
            except OSError:
                assert proxy.poll() is None, proxy.stderr.read() if proxy.stderr else ""
                assert time.monotonic() < deadline, "proxy did not start"
                time.sleep(0.05)
        with client:
            assert exchange(client, b"PING\r\n") == b"+PONG\r\n"
            for i in range(20):
                assert exchange(client, b"SET key:%d value %d\r\n" % (i, i)) == b"+OK\r\n"
            for i in range(20):
                assert exchange(client, b"GET key:%d\r\n" % i) == b"$value %d\r\n" % i
            assert exchange(client, b"DEL key:0\r\n") == b":1\r\n"
        held = []
        for port in kv_servers:
            with socket.create_connection((LOOPBACK, port), timeout=5) as direct:
                held.append(
                    sum(exchange(direct, b"GET key:%d\r\n" % i) != b"_\r\n" for i in range(1, 20))
                )
        assert sum(held) == 19, f"keys per server: {held}"
        assert all(held), f"keys per server: {held}"
    finally:
        stop(proxy)
