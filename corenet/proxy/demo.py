"""``corenet-proxy --demo``: a proxy in front of backends it starts itself.

Starts two ``redis-server`` and two ``memcached`` processes on free loopback
ports, serves them as one pool per protocol on 127.0.0.1:22121 and :22122
(or free ports when those are taken), prints where to connect, and stops
the backends by PID when the proxy exits (Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from typing import TYPE_CHECKING

from corenet import __version__
from corenet.proxy.config import parse_config

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


def _start_backends(stack: ExitStack, argv: list[str], probe: bytes, expect: bytes) -> list[int]:
    """Start two backends from ``argv`` (``{port}`` filled in); return their ports."""
    ports = []
    for _ in range(2):
        port = _free_port()
        proc = subprocess.Popen(
            [arg.format(port=port) for arg in argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(_stop, proc)
        _wait_ready(port, probe, expect, proc)
        ports.append(port)
    return ports


def _pool(name: str, listen: int, redis: bool, ports: list[int]) -> str:
    servers = "".join(f"    - 127.0.0.1:{p}:1 {name}{i + 1}\n" for i, p in enumerate(ports))
    return (
        f"{name}:\n  listen: 127.0.0.1:{listen}\n  redis: {str(redis).lower()}\n"
        f"  hash: fnv1a_64\n  distribution: ketama\n  servers:\n{servers}"
    )


def run_demo(args: argparse.Namespace) -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print(
            "corenet-proxy --demo needs redis-server (apt-get install redis-server)",
            file=sys.stderr,
        )
        return 1
    memcached = shutil.which("memcached")
    from corenet.proxy.app import Proxy, ProxyOptions
    from corenet.proxy.logs import LogSetup

    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="corenet-demo-"))
        redis_argv = [redis_server, "--port", "{port}", "--bind", "127.0.0.1", "--save", ""]
        redis_argv += ["--appendonly", "no", "--dir", workdir]
        redis_ports = _start_backends(stack, redis_argv, b"PING\r\n", b"+PONG")
        redis_listen = _free_port(_DEMO_PORT)
        text = _pool("redis", redis_listen, True, redis_ports)
        if memcached is not None:
            mc_argv = [memcached, "-l", "127.0.0.1", "-p", "{port}", "-U", "0", "-m", "64"]
            if os.geteuid() == 0:
                mc_argv += ["-u", "root"]  # memcached refuses to run as root otherwise
            mc_ports = _start_backends(stack, mc_argv, b"version\r\n", b"VERSION")
            mc_listen = _free_port(_DEMO_PORT + 1)
            text += _pool("memcache", mc_listen, False, mc_ports)
        LogSetup(args.verbose, None)
        stats_port = _free_port(args.stats_port)
        proxy = Proxy(
            parse_config(text, source="<demo>"),
            ProxyOptions(stats_port=stats_port, event_backend=args.event_backend),
            version=__version__,
        )
        proxy.start()
        print(f"corenet-proxy {__version__} demo ({proxy.backend.name} backend)")
        print(f"  redis pool:     redis-cli -p {redis_listen}")
        print(f"                  (redis-server on ports {redis_ports[0]} and {redis_ports[1]})")
        if memcached is not None:
            print(f"  memcache pool:  127.0.0.1:{mc_listen}, e.g. in bash:")
            print(f"                  exec 3<>/dev/tcp/127.0.0.1/{mc_listen}")
            example = r"printf 'set k 0 0 1\r\nv\r\nget k\r\n' >&3; timeout 1 cat <&3"
            print("                  " + example)
            print(f"                  (memcached on ports {mc_ports[0]} and {mc_ports[1]})")
        else:
            print("  memcache pool:  skipped (memcached is not installed)")
        print(f"  stats:          cat < /dev/tcp/127.0.0.1/{stats_port}")
        print("  config used:\n" + "\n".join("    " + line for line in text.splitlines()))
        print("Press Ctrl-C to stop the proxy and the backends.", flush=True)
        proxy.run()
    return 0
