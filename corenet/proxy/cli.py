"""``corenet-proxy``: nutcracker's command line, plus corenet's own flags.

Checked against Debian's nutcracker 0.5.0 (see docs/operations.md):
``-h``, ``-V`` and ``-D`` print a version header (``This is ...``, the event
backend, a blank line) and then the usage or the stats description, all on
stderr, and exit 0; a bad option prints the reason and the usage on stderr
and exits 1; ``-t`` prints ``... configuration file 'F' syntax is ok`` (exit
0) or ``... is invalid`` (exit 1) on stderr.  Beyond nutcracker, ``-t`` (and
a failed start) also prints why: file, line, pool and key.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING, NoReturn

from corenet import __version__
from corenet.errors import ConfigError, CorenetError, PluginError
from corenet.proxy.app import NOTICE
from corenet.proxy.config import PoolConfig, load_config
from corenet.proxy.logs import PROG, LogSetup, log_level
from corenet.proxy.stats import NUTCRACKER_VERSION, POOL_STATS, SERVER_STATS
from corenet.proxy.workers import MAX_WORKERS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from corenet.proxy.app import Proxy

__all__ = ["LogSetup", "build_parser", "log_level", "main"]

logger = logging.getLogger("corenet.cli")


# -- the command line ----------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse with nutcracker's error behaviour: the reason and a short usage
    on stderr, exit 1 (the whole help is ``-h``)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}\n")
        self.print_usage(sys.stderr)
        sys.stderr.write(f"Try '{self.prog} -h' for the options.\n")
        self.exit(1)


def _number(flag: str) -> Callable[[str], int]:
    def convert(text: str) -> int:
        if not text.isdigit():
            raise argparse.ArgumentTypeError(f"option {flag} requires a number")
        return int(text)

    return convert


def _port(flag: str) -> Callable[[str], int]:
    def convert(text: str) -> int:
        value = _number(flag)(text)
        if value > 65535:
            raise argparse.ArgumentTypeError(f"option {flag} value {value} is not a valid port")
        return value

    return convert


def _mbuf_size(text: str) -> int:
    value = int(_number("-m")(text))
    if not 512 <= value <= 16 * 1024 * 1024:
        raise argparse.ArgumentTypeError("mbuf size must be between 512 and 16777216 bytes")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("drain timeout must be between 0 and 3600 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        add_help=False,
        description="A Redis/memcache sharding proxy that reads nutcracker.yml "
        "and takes nutcracker's flags.",
    )
    add = parser.add_argument
    switch = functools.partial(add, action="store_true")
    switch("-h", "--help", help="this help")
    switch("-V", "--version", help="show version and exit")
    switch("-t", "--test-conf", help="test configuration for syntax errors and exit")
    switch("-d", "--daemonize", help="run as a daemon")
    switch("-D", "--describe-stats", help="print stats description and exit")
    add(
        "-v",
        "--verbose",
        type=_number("-v"),
        default=5,
        metavar="N",
        help="set logging level (default: 5, min: 0, max: 11)",
    )
    add("-o", "--output", metavar="FILE", help="set logging file (default: stderr)")
    add(
        "-c",
        "--conf-file",
        default="conf/nutcracker.yml",
        metavar="FILE",
        help="set configuration file (default: conf/nutcracker.yml)",
    )
    add(
        "-s",
        "--stats-port",
        type=_port("-s"),
        default=22222,
        metavar="PORT",
        help="set stats monitoring port (default: 22222; 0 turns it off)",
    )
    add(
        "-a",
        "--stats-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="set stats monitoring ip (default: 127.0.0.1; nutcracker's is 0.0.0.0)",
    )
    add(
        "-i",
        "--stats-interval",
        type=_number("-i"),
        default=30000,
        metavar="MS",
        help="set stats aggregation interval in msec (default: 30000): the stats port "
        "serves one snapshot for that long (0: a fresh one per reader)",
    )
    add("-p", "--pid-file", metavar="FILE", help="set pid file (default: off)")
    add(
        "-m",
        "--mbuf-size",
        type=_mbuf_size,
        default=16384,
        metavar="N",
        help="set size of mbuf chunk in bytes (default: 16384)",
    )
    add(
        "--metrics-addr",
        default="127.0.0.1",
        metavar="ADDR",
        help="Prometheus /metrics address (default: 127.0.0.1)",
    )
    add(
        "--metrics-port",
        type=_port("--metrics-port"),
        default=None,
        metavar="PORT",
        help="Prometheus /metrics port (default: off)",
    )
    add(
        "--drain-timeout",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="on SIGTERM, wait at most S seconds for in-flight requests (default: 5)",
    )
    add(
        "--event-backend",
        default=None,
        metavar="NAME",
        help="event backend: auto, epoll, kqueue, poll, select or a plugin's "
        "(default: $CORENET_EVENT_BACKEND or auto)",
    )
    add(
        "--workers",
        type=_number("--workers"),
        default=1,
        metavar="N",
        help="worker processes sharing every listener, under a supervisor that restarts "
        "them and sums their stats (default: 1, a single process; see docs/operations.md)",
    )
    switch(
        "--watch-config",
        help="reload the configuration file (-c) when its content changes, checked every "
        "second; SIGUSR1 reloads it at any time (see docs/operations.md)",
    )
    add(
        "--explain",
        nargs=2,
        metavar=("POOL", "KEY"),
        help="print how POOL (from -c) routes KEY: hashed bytes, hash, continuum point, server",
    )
    switch(
        "--demo",
        help=(
            "start two local redis-servers (and two memcacheds when installed) and serve "
            "them on 127.0.0.1:22121 (and 22122); needs redis-server"
        ),
    )
    return parser


def _backend_name(name: str | None) -> str:
    try:
        from corenet.event import select_backend
        from corenet.proxy.plugins import load_plugins

        backend = select_backend(name, load_plugins().event_backends)
    except (CorenetError, OSError):
        return "unknown"
    try:
        return backend.name
    finally:
        backend.close()


def _version_header(event_backend: str | None) -> str:
    return (
        f"This is {PROG}-{__version__} (nutcracker-{NUTCRACKER_VERSION} compatible)\n"
        f"async event backend: {_backend_name(event_backend)}\n"
    )


def _describe_stats() -> str:
    """nutcracker's ``-D`` text: ``  name<pad to 20>"description"`` per figure."""
    lines = ["pool stats:"]
    lines += [f'  {name:<20}"{desc}"' for name, (_, desc) in POOL_STATS.items()]
    lines += ["", "server stats:"]
    lines += [f'  {name:<20}"{desc}"' for name, (_, desc) in SERVER_STATS.items()]
    return "\n".join(lines) + "\n"


# -- configuration -----------------------------------------------------------------


def check_plugins(pools: Mapping[str, PoolConfig], source: str) -> None:
    """Check the pools against the plugins (see :mod:`corenet.proxy.validate`).

    Raises:
        ConfigError: naming the file, line, pool and key.
    """
    from corenet.proxy.plugins import load_plugins
    from corenet.proxy.validate import check_pools

    check_pools(pools, load_plugins())


# -- daemon ------------------------------------------------------------------------


class _Daemon:
    """The daemon's end of the pipe the starting command waits on.

    The command that ran ``corenet-proxy -d`` exits only once the daemon has
    bound its listeners and written its pid file (status 0), or has failed
    to (status 1, with the reason on the command's stderr): unlike
    nutcracker, whose ``-d`` returns 0 before binding anything.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def _send(self, data: bytes) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, data)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1

    def ready(self) -> None:
        self._send(b"ok")

    def failed(self, message: str) -> None:
        self._send(message.encode("utf-8", "replace"))


def _daemonize() -> _Daemon:
    """Detach (double fork, new session, cwd /, std streams on /dev/null).

    Returns in the daemon only; the original process waits for the report
    of :class:`_Daemon` and exits with it.
    """
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        report = b"".join(chunks)
        if report == b"ok":
            os._exit(0)
        sys.stderr.write(
            report.decode("utf-8", "replace") or f"{PROG}: the daemon exited while starting\n"
        )
        sys.stderr.flush()
        os._exit(1)
    os.close(read_end)
    os.setsid()
    # The session leader's exit must not hang the daemon up.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    return _Daemon(write_end)


def _write_pid_file(path: str) -> None:
    # nutcracker: O_WRONLY|O_CREAT|O_TRUNC, mode 0644, the pid without a newline.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, str(os.getpid()).encode())
    finally:
        os.close(fd)


# -- main --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.help or args.version or args.describe_stats:
        # nutcracker prints all of this on stderr: -h and -D imply -V.
        text = _version_header(args.event_backend) + "\n"
        if args.help:
            text += parser.format_help() + "\n"
        if args.describe_stats:
            text += _describe_stats()
        sys.stderr.write(text)
        return 0
    if not 1 <= args.workers <= MAX_WORKERS:
        print(f"{PROG}: --workers must be between 1 and {MAX_WORKERS}", file=sys.stderr)
        return 1  # a bad value, like every other
    if args.workers > 1 and args.metrics_port:
        print(f"{PROG}: --metrics-port is not supported with --workers > 1", file=sys.stderr)
        return 1
    if args.demo:
        from corenet.proxy.demo import run_demo

        return run_demo(args)
    conf_file = os.path.abspath(args.conf_file)
    try:
        pools = load_config(conf_file)
        check_plugins(pools, conf_file)
    except (ConfigError, PluginError) as exc:
        print(f"{PROG}: configuration file '{args.conf_file}' syntax is invalid", file=sys.stderr)
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    if args.test_conf:
        print(f"{PROG}: configuration file '{args.conf_file}' syntax is ok", file=sys.stderr)
        return 0
    if args.explain:
        return _explain(pools, *args.explain)
    output = args.output and os.path.abspath(args.output)
    try:
        log = LogSetup(args.verbose, output)
    except OSError as exc:
        print(f"{PROG}: opening log file '{args.output}' failed: {exc.strerror}", file=sys.stderr)
        return 1
    daemon = _daemonize() if args.daemonize else None
    pid_file = args.pid_file and os.path.abspath(args.pid_file)
    try:
        return _serve(args, pools, log, daemon, pid_file)
    finally:
        if daemon is not None:
            daemon.failed(f"{PROG}: the daemon exited while starting\n")


def _explain(pools: Mapping[str, PoolConfig], pool_name: str, key: str) -> int:
    from corenet.proxy.explain import explain_key
    from corenet.proxy.plugins import load_plugins

    pool = pools.get(pool_name)
    if pool is None:
        print(f"{PROG}: no pool named '{pool_name}' (pools: {', '.join(pools)})", file=sys.stderr)
        return 1
    # The key as the shell gave it: undecodable bytes come back unchanged.
    print(explain_key(pool, load_plugins(), os.fsencode(key)))
    return 0


def _serve(
    args: argparse.Namespace,
    pools: Mapping[str, PoolConfig],
    log: LogSetup,
    daemon: _Daemon | None,
    pid_file: str | None,
) -> int:
    def fail(message: str) -> int:
        logger.error("%s", message)
        if daemon is not None:
            daemon.failed(f"{PROG}: {message}\n")
        elif log.output:
            print(f"{PROG}: {message}", file=sys.stderr)
        return 1

    from corenet.proxy.app import Proxy, ProxyOptions
    from corenet.proxy.workers import Supervisor

    options = ProxyOptions(
        stats_addr=args.stats_addr,
        stats_port=args.stats_port or None,
        stats_interval=args.stats_interval / 1000,
        mbuf_size=args.mbuf_size,
        event_backend=args.event_backend,
        metrics_addr=args.metrics_addr,
        metrics_port=args.metrics_port,
        drain_timeout=args.drain_timeout,
        config_file=os.path.abspath(args.conf_file),
        watch_config=args.watch_config,
    )
    proxy: Proxy | Supervisor | None = None
    try:
        if args.workers > 1:
            # Workers close the -d start-up pipe: the starting command reads
            # it to EOF, which must come when the supervisor reports.
            proxy = Supervisor(
                pools,
                options,
                args.workers,
                version=__version__,
                log=log,
                close_in_workers=[daemon.fd] if daemon is not None else [],
            )
            backend = (
                f"{_backend_name(args.event_backend)} "
                f"({args.workers} workers, {proxy.mode} listeners)"
            )
        else:
            proxy = Proxy(pools, options, version=__version__, log=log)
            backend = proxy.backend.name
        proxy.start()
    except CorenetError as exc:  # ConfigError, PluginError, BackendError; a worker's failure
        if proxy is not None:
            proxy.close()
        return fail(str(exc))
    except OSError as exc:
        if proxy is not None:
            proxy.close()
        # Pool and stats listeners name themselves; anything else says what failed.
        named = exc.strerror is not None and "cannot listen on" in exc.strerror
        return fail(str(exc.strerror) if named else f"cannot listen: {exc}")
    if pid_file:
        try:
            _write_pid_file(pid_file)
        except OSError as exc:
            proxy.close()
            return fail(f"opening pid file '{pid_file}' failed: {exc.strerror}")
    try:
        logger.log(
            NOTICE,
            "%s-%s (nutcracker-%s compatible) started on pid %d, event backend %s",
            PROG,
            __version__,
            NUTCRACKER_VERSION,
            os.getpid(),
            backend,
        )
        if daemon is not None:
            # After the start line, so that it is in the log once `-d` returns.
            daemon.ready()
        try:
            status = proxy.run()
        except CorenetError as exc:
            logger.critical("%s", exc)
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
        logger.log(NOTICE, "%s-%s stopped", PROG, __version__)
        return status
    finally:
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError as exc:
                logger.warning(
                    "unlink of pid file '%s' failed, ignored: %s", pid_file, exc.strerror
                )
