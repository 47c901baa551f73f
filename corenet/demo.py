"""``corenet-proxy --demo``: a proxy in front of backends it starts itself.

Starts two ``redis-server`` processes on free loopback ports, serves them as
one pool on 127.0.0.1:22121 (or the next free port), prints where to
connect, and stops the backends by PID when the proxy exits (Ctrl-C).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

from corenet import __version__
from corenet.config import parse_config

if TYPE_CHECKING:
    import argparse

__all__ = ["run_demo"]

_DEMO_PORT = 22121


def _free_port(preferred: int = 0) -> int:
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise OSError("no free port")


def _wait_ready(port: int, probe: bytes, expect: bytes, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"backend on port {port} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(probe)
                if s.recv(64).startswith(expect):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"backend on port {port} did not answer within 10 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print(
            "corenet-proxy --demo needs redis-server (apt-get install redis-server)",
            file=sys.stderr,
        )
        return 1
    from corenet.cli import _setup_logging
    from corenet.proxy import Proxy, ProxyOptions

    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="corenet-demo-"))
        ports = []
        for _ in range(2):
            port = _free_port()
            proc = subprocess.Popen(
                [
                    redis_server,
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    workdir,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            stack.callback(_stop, proc)
            _wait_ready(port, b"PING\r\n", b"+PONG", proc)
            ports.append(port)
        listen = _free_port(_DEMO_PORT)
        servers = "\n".join(f"    - 127.0.0.1:{p}:1 redis{i + 1}" for i, p in enumerate(ports))
        text = (
            f"demo:\n  listen: 127.0.0.1:{listen}\n  redis: true\n  hash: fnv1a_64\n"
            f"  distribution: ketama\n  servers:\n{servers}\n"
        )
        _setup_logging(args.verbose, None)
        stats_port = _free_port(args.stats_port)
        proxy = Proxy(
            parse_config(text, source="<demo>"),
            ProxyOptions(stats_port=stats_port, event_backend=args.event_backend),
            version=__version__,
        )
        proxy.start()
        print(f"corenet-proxy {__version__} demo ({proxy.backend.name} backend)")
        print(f"  redis pool:  redis-cli -p {listen}")
        print(f"               (backends: redis-server on ports {ports[0]} and {ports[1]})")
        print(f"  stats:       nc 127.0.0.1 {stats_port}")
        print("  config used:\n" + "\n".join("    " + line for line in text.splitlines()))
        print("Press Ctrl-C to stop the proxy and the backends.", flush=True)
        proxy.run()
    return 0
