"""corenet-proxy serves the kv protocol in front of two reference kv servers.

Needs the plugin installed (``pip install -e docs/examples/corenet-kv``) so
that corenet finds it through its entry point; skipped otherwise.  The
processes come from corenet's harness: ``corenet_proxy_factory`` (from
``corenet.proxy.fixtures``, enabled in conftest.py) starts corenet-proxy on
free loopback ports and ``Process`` the reference servers; both are stopped
by PID when the test ends.
"""

from __future__ import annotations

import os
import pathlib
import socket
import sys
from typing import TYPE_CHECKING

import pytest
from corenet._plugins import Plugins
from corenet.proxy.harness import pool_config
from corenet.testing.process import LOOPBACK, Process, ProcessGroup

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from corenet.proxy.harness import CorenetProxy

SRC = pathlib.Path(__file__).parents[1] / "src"


def exchange(sock: socket.socket, request: bytes) -> bytes:
    sock.sendall(request)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        data += chunk
    return data


def kv_server() -> Process:
    """A reference kv server on a free port (``Process`` picks it and waits until
    the server listens on it)."""
    return Process(
        lambda port: [sys.executable, "-m", "corenet_kv.server", "--port", str(port)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        name="kv-server",
        start=False,
    )


@pytest.fixture
def kv_servers() -> Iterator[list[int]]:
    with ProcessGroup() as group:
        yield [group.start(kv_server()).port for _ in range(2)]


def test_proxy_shards_kv_keys_over_two_servers(
    kv_servers: list[int], corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    if "kv" not in Plugins().protocols:
        pytest.skip("install the plugin first: pip install -e docs/examples/corenet-kv")
    config = pool_config(
        "kv",
        None,
        [f"{LOOPBACK}:{port}" for port in kv_servers],
        redis=False,
        protocol="kv",
        hash="djb2",
        distribution="modula",
    )
    # autoload_plugins: the proxy finds the plugin through its entry point.
    proxy = corenet_proxy_factory(config, autoload_plugins=True)
    host, _, port = proxy.address().rpartition(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        assert exchange(client, b"PING\r\n") == b"+PONG\r\n"
        for i in range(20):
            assert exchange(client, b"SET key:%d value %d\r\n" % (i, i)) == b"+OK\r\n"
        for i in range(20):
            assert exchange(client, b"GET key:%d\r\n" % i) == b"$value %d\r\n" % i
        assert exchange(client, b"DEL key:0\r\n") == b":1\r\n"
        assert exchange(client, b"BOGUS\r\n") == b"-ERR unknown command\r\n"
    held = []
    for server_port in kv_servers:
        with socket.create_connection((LOOPBACK, server_port), timeout=5) as direct:
            held.append(
                sum(exchange(direct, b"GET key:%d\r\n" % i) != b"_\r\n" for i in range(1, 20))
            )
    assert sum(held) == 19, f"keys per server: {held}"
    assert all(held), f"keys per server: {held}"
