"""``corenet-proxy``: nutcracker's command line, plus corenet's own flags."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from corenet import __version__
from corenet.config import PoolConfig, load_config
from corenet.errors import BackendError, ConfigError, CorenetError, PluginError
from corenet.stats import POOL_STATS, SERVER_STATS

__all__ = ["build_parser", "main"]

PROG = "corenet-proxy"
NOTICE = 25  # nutcracker's LOG_NOTICE, between WARNING and INFO
logging.addLevelName(NOTICE, "NOTICE")

# nutcracker -v levels: 0 emerg .. 3 err, 4 warn, 5 notice, 6 info, 7+ debug.
_LEVELS = {0: logging.CRITICAL, 1: logging.CRITICAL, 2: logging.CRITICAL, 3: logging.ERROR, 4: logging.WARNING, 5: NOTICE, 6: logging.INFO}


def log_level(verbosity: int) -> int:
    """The :mod:`logging` level for nutcracker's ``-v`` value."""
    return _LEVELS.get(verbosity, logging.DEBUG if verbosity > 6 else logging.CRITICAL)


def _mbuf_size(text: str) -> int:
    value = int(text)
    if not 512 <= value <= 16 * 1024 * 1024:
        raise argparse.ArgumentTypeError("mbuf size must be between 512 and 16777216 bytes")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A Redis/memcache sharding proxy that reads nutcracker.yml and takes nutcracker's flags.",
    )
    parser.add_argument("-V", "--version", action="store_true", help="show version and exit")
    parser.add_argument("-t", "--test-conf", action="store_true", help="test configuration for syntax errors and exit")
    parser.add_argument("-d", "--daemonize", action="store_true", help="run as a daemon")
    parser.add_argument("-D", "--describe-stats", action="store_true", help="print stats description and exit")
    parser.add_argument("-v", "--verbose", type=int, default=5, metavar="N", help="set logging level (default: 5, min: 0, max: 11)")
    parser.add_argument("-o", "--output", metavar="FILE", help="set logging file (default: stderr)")
    parser.add_argument("-c", "--conf-file", default="conf/nutcracker.yml", metavar="FILE", help="set configuration file (default: conf/nutcracker.yml)")
    parser.add_argument("-s", "--stats-port", type=int, default=22222, metavar="PORT", help="set stats monitoring port (default: 22222; 0 disables it)")
    parser.add_argument("-a", "--stats-addr", default="127.0.0.1", metavar="ADDR", help="set stats monitoring ip (default: 127.0.0.1, where nutcracker uses 0.0.0.0)")
    parser.add_argument("-i", "--stats-interval", type=int, default=30000, metavar="MS", help="accepted for compatibility: corenet's stats are live, not aggregated every interval")
    parser.add_argument("-p", "--pid-file", metavar="FILE", help="set pid file (default: off)")
    parser.add_argument("-m", "--mbuf-size", type=_mbuf_size, default=16384, metavar="N", help="set size of the receive buffer chunk in bytes (default: 16384)")
    parser.add_argument("--event-backend", default=None, metavar="NAME", help="event backend: auto, epoll, kqueue, poll, select or a plugin's (default: $CORENET_EVENT_BACKEND or auto)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (not implemented yet: only 1 is accepted)")
    parser.add_argument("--demo", action="store_true", help="start two local redis-servers and serve them on 127.0.0.1:22121 (needs redis-server)")
    return parser


def _describe_stats() -> str:
    lines = ["This is corenet-proxy-%s" % __version__, "", "pool stats:"]
    lines += [f"  {name:<20}\"{kind}\"{' ' * max(1, 12 - len(kind))}\"{desc}\"" for name, (kind, desc) in POOL_STATS.items()]
    lines += ["", "server stats:"]
    lines += [f"  {name:<20}\"{kind}\"{' ' * max(1, 12 - len(kind))}\"{desc}\"" for name, (kind, desc) in SERVER_STATS.items()]
    return "\n".join(lines)


def _setup_logging(verbosity: int, output: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(output) if output else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("corenet")
    root.handlers[:] = [handler]
    root.setLevel(log_level(verbosity))
    root.propagate = False


def _daemonize() -> None:
    # Classic double fork: the first child leaves the session, the second
    # can never reacquire a controlling terminal.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    os.umask(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"This is corenet-proxy-{__version__} (nutcracker 0.5.0 compatible)")
        return 0
    if args.describe_stats:
        print(_describe_stats())
        return 0
    if args.workers != 1:
        print(f"{PROG}: --workers {args.workers}: multiple workers are not implemented yet; use 1", file=sys.stderr)
        return 2
    if args.demo:
        from corenet.demo import run_demo

        return run_demo(args)
    conf_file = os.path.abspath(args.conf_file)
    try:
        pools = load_config(conf_file)
    except ConfigError as exc:
        if args.test_conf:
            print(f"{PROG}: configuration file '{args.conf_file}' syntax is invalid", file=sys.stderr)
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.test_conf:
        try:
            _check_plugins(pools)
        except ConfigError as exc:
            print(f"{PROG}: configuration file '{args.conf_file}' syntax is invalid", file=sys.stderr)
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        print(f"{PROG}: configuration file '{args.conf_file}' syntax is ok", file=sys.stderr)
        return 0
    _setup_logging(args.verbose, args.output and os.path.abspath(args.output))
    from corenet.proxy import Proxy, ProxyOptions

    options = ProxyOptions(
        stats_addr=args.stats_addr,
        stats_port=args.stats_port or None,
        mbuf_size=args.mbuf_size,
        event_backend=args.event_backend,
    )
    try:
        proxy = Proxy(pools, options, version=__version__)
        proxy.start()
    except (ConfigError, PluginError, BackendError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: cannot listen: {exc}", file=sys.stderr)
        return 1
    if args.daemonize:
        _daemonize()
    pid_file = args.pid_file and os.path.abspath(args.pid_file)
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    logging.getLogger("corenet").log(
        NOTICE, "corenet-proxy-%s started on pid %d, event backend %s", __version__, os.getpid(), proxy.backend.name
    )
    try:
        proxy.run()
    except CorenetError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
    return 0


def _check_plugins(pools: Mapping[str, PoolConfig]) -> None:
    """Check that every pool's protocol, hash and distribution exist."""
    from corenet._plugins import Plugins

    plugins = Plugins()
    for pool in pools.values():
        for registry, name, key in (
            (plugins.protocols, pool.protocol, "redis"),
            (plugins.hash_functions, pool.hash, "hash"),
            (plugins.distributions, pool.distribution, "distribution"),
        ):
            if name not in registry:
                known = ", ".join(sorted(registry))
                raise ConfigError(f"pool '{pool.name}' (line {pool.line}), key '{key}': \"{name}\" is not a valid {registry.kind} (known: {known})")
