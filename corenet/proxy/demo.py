"""``corenet-proxy --demo``: a proxy in front of backends it starts itself.

Starts two ``redis-server`` and two ``memcached`` processes on free loopback
ports, serves them as one pool per protocol on 127.0.0.1:22121 and :22122
(or free ports when those are taken), prints where to connect, and stops
the backends by PID when the proxy exits (Ctrl-C).
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from corenet import __version__
from corenet.proxy.config import parse_config
from corenet.proxy.harness import Memcached, RedisServer
from corenet.testing.process import ProcessGroup, find_binary, free_port

if TYPE_CHECKING:
    import argparse

__all__ = ["run_demo"]

_DEMO_PORT = 22121


def _pool(name: str, listen: int, redis: bool, ports: list[int]) -> str:
    servers = "".join(f"    - 127.0.0.1:{p}:1 {name}{i + 1}\n" for i, p in enumerate(ports))
    return (
        f"{name}:\n  listen: 127.0.0.1:{listen}\n  redis: {str(redis).lower()}\n"
        f"  hash: fnv1a_64\n  distribution: ketama\n  servers:\n{servers}"
    )


def run_demo(args: argparse.Namespace) -> int:
    if find_binary("redis-server") is None:
        print(
            "corenet-proxy --demo needs redis-server (apt-get install redis-server)",
            file=sys.stderr,
        )
        return 1
    with_memcached = find_binary("memcached") is not None
    from corenet.proxy.app import Proxy, ProxyOptions
    from corenet.proxy.logs import LogSetup

    # The harness starts each backend on a free port (again on another if it
    # was taken meanwhile) and the group stops them by PID, newest first,
    # however the proxy exits; on Linux they also die with us.
    with ProcessGroup() as group:
        redis_ports = [group.start(RedisServer(start=False)).port for _ in range(2)]
        redis_listen = free_port(_DEMO_PORT)
        text = _pool("redis", redis_listen, True, redis_ports)
        if with_memcached:
            mc_ports = [group.start(Memcached(start=False)).port for _ in range(2)]
            mc_listen = free_port(_DEMO_PORT + 1)
            text += _pool("memcache", mc_listen, False, mc_ports)
        LogSetup(args.verbose, None)
        stats_port = free_port(args.stats_port)
        proxy = Proxy(
            parse_config(text, source="<demo>"),
            ProxyOptions(stats_port=stats_port, event_backend=args.event_backend),
            version=__version__,
        )
        proxy.start()
        print(f"corenet-proxy {__version__} demo ({proxy.backend.name} backend)")
        print(f"  redis pool:     redis-cli -p {redis_listen}")
        print(f"                  (redis-server on ports {redis_ports[0]} and {redis_ports[1]})")
        if with_memcached:
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
        try:
            proxy.run()
        finally:
            # An impatient second Ctrl-C must not cut short stopping the backends.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return 0
