"""The README's first command: a proxy in front of backends it starts itself."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import need_binary
from tests.servers import free_port, memcache_raw, redis_raw, wait_for


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C twice"])
def test_demo_serves_both_protocols_and_stops_its_backends(request, stop):
    for binary in ("redis-server", "memcached"):
        need_binary(request.config, binary)
    env = dict(os.environ, CORENET_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "corenet", "--demo", "-s", str(free_port()), "-v", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        redis_port = re.search(r"redis-cli -p (\d+)", text).group(1)
        mc_port = re.search(r"memcache pool:\s+127\.0\.0\.1:(\d+)", text).group(1)
        backend_ports = [int(p) for p in re.findall(r"on ports (\d+) and (\d+)", text) for p in p]
        assert len(backend_ports) == 4, text
        redis_address = f"127.0.0.1:{redis_port}"
        assert (
            redis_raw(redis_address, b"SET k v\r\nGET k\r\n", expect_replies=2)
            == b"+OK\r\n$1\r\nv\r\n"
        )
        mc_address = f"127.0.0.1:{mc_port}"
        reply = memcache_raw(mc_address, b"set k 0 0 1\r\nv\r\nget k\r\n", until=b"END\r\n")
        assert reply == b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n"
    finally:
        if stop == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:  # an impatient user: the second one lands while the backends stop
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=15)
        rest = proc.stdout.read()
        proc.stdout.close()
    assert rc == 0, rest
    assert "Traceback" not in rest

    def closed(port: int) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    assert wait_for(lambda: all(closed(p) for p in backend_ports), timeout=10)
