"""corenet-proxy against nutcracker and the bare backends: ``python -m bench.run``.

Starts ``--backends`` redis-servers (and as many memcached) on 127.0.0.1 free
ports, fills every Redis backend with the whole keyspace, starts nutcracker
(``-v 4``) and corenet-proxy (``-v 4``) with the same pool configuration
(fnv1a_64, ketama) and runs redis-benchmark and memcaslap against direct /
nutcracker / corenet in turn, ``--repeat`` times.  Prints a table of medians
(ops/s, p50/p99 latency, proxy CPU per request, ratios), the machine, the
acceptance bars of issue #23 and one ``SUMMARY`` line; writes every raw run and
the medians to a JSON file and, with matplotlib installed, a PNG.

Everything started is stopped by PID at the end, also on Ctrl-C, SIGTERM or
an exception.  See bench/README.md and docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _report
from bench._clients import memcache_stats, redis_command, redis_info, redis_populate
from bench._loadgen import (
    MGET_KEYS,
    LoadResult,
    memcaslap_argv,
    memcaslap_config,
    parse_memcaslap,
    parse_redis_benchmark_csv,
    redis_benchmark_argv,
    run_load,
)
from corenet.proxy.harness import CorenetProxy, Memcached, Nutcracker, RedisServer, dump_config
from corenet.proxy.harness import pool_config as harness_pool_config
from corenet.testing.process import (
    Process,
    ProcessGroup,
    ServerStartError,
    connect,
    find_binary,
    free_port,
    machine_busy_seconds,
    rss_bytes,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGETS = _report.TARGETS
REDIS_TESTS = ("get", "set", "mget10")
MC_TESTS = ("get", "set", "mget10")
SCHEMA = 1

#: Default requests per redis-benchmark run: (test, depth) -> -n.  Sized so one
#: run through the slowest target lasts a few seconds on a 2-core machine.
DEFAULT_REQUESTS = {
    ("get", 1): 50_000,
    ("set", 1): 50_000,
    ("mget10", 1): 20_000,
    ("get", 16): 200_000,
    ("set", 16): 200_000,
    ("mget10", 16): 40_000,
}
DEFAULT_MC_REQUESTS = {"get": 100_000, "set": 100_000, "mget10": 30_000}
QUICK = {
    "requests": 2_000,
    "mc_requests": 2_000,
    "keyspace": 10_000,
    "repeat": 1,
    "clients": 4,
    "idle": 200,
}

Json = dict[str, Any]
Server = RedisServer | Memcached
ProxyProcess = Nutcracker | CorenetProxy


# --------------------------------------------------------------------------
# options


@dataclass
class Options:
    """Parsed command line."""

    quick: bool = False
    repeat: int = 3
    requests: int | None = None
    mc_requests: int | None = None
    clients: int = 50
    backends: int = 2
    keyspace: int = 1_000_000
    tests: list[str] = field(default_factory=lambda: list(REDIS_TESTS))
    depths: list[int] = field(default_factory=lambda: [1, 16])
    memcache: bool = True
    mc_tests: list[str] = field(default_factory=lambda: list(MC_TESTS))
    targets: list[str] = field(default_factory=lambda: list(TARGETS))
    corenet_args: list[str] = field(default_factory=list)
    corenet_cmd: list[str] | None = None
    out: str = "bench/results/latest.json"
    plot: str | None = "docs/performance.png"
    timeout: float = 180.0
    keep_logs: bool = False
    render: str | None = None
    idle: int = 10_000


def _csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Command line -> Options (``--quick`` changes the defaults not given explicitly)."""
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark corenet-proxy against nutcracker and the bare backends.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny counts (smoke test): 2000 requests, 10000 keys, 4 clients, 1 rep; "
        "writes to the temp directory and no plot unless --out/--plot are given",
    )
    p.add_argument("--repeat", type=int, help="repetitions per configuration (default 3)")
    p.add_argument(
        "--requests",
        type=int,
        help="requests per redis-benchmark run, every test and depth (default: "
        "get/set 50000 at depth 1, 200000 at 16; mget10 20000 / 40000)",
    )
    p.add_argument(
        "--mc-requests",
        type=int,
        help="commands per memcaslap run (default get/set 100000, mget10 30000)",
    )
    p.add_argument("--clients", type=int, help="concurrent connections (default 50)")
    p.add_argument("--backends", type=int, default=2, help="redis-servers and memcacheds (2)")
    p.add_argument("--keyspace", type=int, help="distinct redis keys (default 1000000)")
    p.add_argument(
        "--tests", default=",".join(REDIS_TESTS), help="redis tests: get,set,mget10 (empty: none)"
    )
    p.add_argument("--depths", default="1,16", help="redis pipeline depths (default 1,16)")
    p.add_argument(
        "--memcache",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the memcache tests (default on)",
    )
    p.add_argument("--mc-tests", default=",".join(MC_TESTS), help="memcache tests")
    p.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help="which of direct,nutcracker,corenet to measure (default all)",
    )
    p.add_argument(
        "--corenet-args",
        default="",
        help='extra corenet-proxy arguments, one string: --corenet-args="-m 32768"',
    )
    p.add_argument(
        "--corenet-cmd",
        help="command that starts corenet-proxy, one string (default: this Python "
        "with -m corenet, run in the repository root); a custom command runs "
        "in a scratch directory: --corenet-cmd='env PYTHONPATH=/x python -m "
        "corenet'",
    )
    p.add_argument("--out", help="result JSON (default bench/results/latest.json)")
    p.add_argument("--plot", help="PNG to write (default docs/performance.png; 'none' to skip)")
    p.add_argument(
        "--timeout",
        type=float,
        default=180.0,
        help="seconds before one load-generator run is killed (default 180)",
    )
    p.add_argument(
        "--idle",
        type=int,
        help="idle client connections opened to each proxy after its phase, to measure "
        "the memory they cost (default 10000, --quick 200; 0: skip)",
    )
    p.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the work directory with configs and process logs",
    )
    p.add_argument(
        "--render",
        metavar="JSON",
        help="do not measure: print the table of an existing result file "
        "(and rewrite --plot if given)",
    )
    a = p.parse_args(argv)
    q = a.quick
    opts = Options(
        quick=q,
        repeat=a.repeat if a.repeat is not None else (QUICK["repeat"] if q else 3),
        requests=a.requests if a.requests is not None else (QUICK["requests"] if q else None),
        mc_requests=(
            a.mc_requests if a.mc_requests is not None else (QUICK["mc_requests"] if q else None)
        ),
        clients=a.clients if a.clients is not None else (QUICK["clients"] if q else 50),
        backends=a.backends,
        keyspace=a.keyspace if a.keyspace is not None else (QUICK["keyspace"] if q else 1_000_000),
        tests=_csv_list(a.tests),
        depths=[int(d) for d in _csv_list(a.depths)],
        memcache=a.memcache,
        mc_tests=_csv_list(a.mc_tests),
        targets=_csv_list(a.targets),
        corenet_args=shlex.split(a.corenet_args),
        corenet_cmd=shlex.split(a.corenet_cmd) if a.corenet_cmd else None,
        out=a.out
        or (
            os.path.join(tempfile.gettempdir(), "corenet-bench-quick.json")
            if q
            else "bench/results/latest.json"
        ),
        plot=None
        if (a.plot or "").lower() == "none"
        else (a.plot or (None if q or a.render else "docs/performance.png")),
        timeout=a.timeout,
        keep_logs=a.keep_logs,
        render=a.render,
        idle=a.idle if a.idle is not None else (QUICK["idle"] if q else 10_000),
    )
    for name, chosen, known in (
        ("--tests", opts.tests, REDIS_TESTS),
        ("--mc-tests", opts.mc_tests, MC_TESTS),
        ("--targets", opts.targets, TARGETS),
    ):
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            p.error(f"{name}: unknown {', '.join(unknown)} (known: {', '.join(known)})")
    if opts.repeat < 1 or opts.clients < 1 or opts.backends < 1 or opts.keyspace < 1:
        p.error("--repeat, --clients, --backends and --keyspace must be positive")
    if any(d < 1 for d in opts.depths):
        p.error("--depths must be positive")
    return opts


# --------------------------------------------------------------------------
# cases and targets


@dataclass(frozen=True)
class Case:
    """One configuration: protocol, test, pipeline depth and requests per run."""

    protocol: str  # "redis" or "memcache"
    test: str  # "get", "set" or "mget10"
    depth: int
    requests: int

    @property
    def label(self) -> str:
        """``get@1`` for redis, ``mc-get`` for memcache."""
        return f"{self.test}@{self.depth}" if self.protocol == "redis" else f"mc-{self.test}"

    @property
    def keys_per_request(self) -> int:
        """Keys one request touches."""
        return MGET_KEYS if self.test == "mget10" else 1


def build_cases(opts: Options) -> list[Case]:
    """Redis cases (depth-major, so depth 1 rows come first), then memcache cases."""
    cases = [
        Case(
            "redis",
            test,
            depth,
            opts.requests
            if opts.requests is not None
            else DEFAULT_REQUESTS.get(
                (test, depth), DEFAULT_REQUESTS[(test, 16 if depth > 1 else 1)]
            ),
        )
        for depth in opts.depths
        for test in opts.tests
    ]
    if opts.memcache:
        cases += [
            Case(
                "memcache",
                test,
                1,
                opts.mc_requests if opts.mc_requests is not None else DEFAULT_MC_REQUESTS[test],
            )
            for test in opts.mc_tests
        ]
    return cases


@dataclass
class Target:
    """Where the load goes: a backend directly, or a proxy (restarted if it died)."""

    name: str
    protocol: str
    proc: ProxyProcess | None = None  # the proxy; None for direct
    make: Callable[[], ProxyProcess] | None = None  # a new, unstarted proxy (restarts)
    direct_port: int = 0
    status: str = "ok"
    restarts: int = 0

    @property
    def port(self) -> int:
        """The port the load generator connects to."""
        if self.proc is None:
            return self.direct_port
        return int(self.proc.address().rpartition(":")[2])


def pool_config(name: str, port: int | None, servers: list[Server], *, redis: bool) -> Json:
    """The nutcracker.yml both proxies read (identical but for the listen port;
    ``None``: a free one)."""
    return harness_pool_config(
        name,
        port,
        [f"{s.address}:1 {s.name}" for s in servers],
        redis=redis,
        auto_eject_hosts=False,
    )


class Bench:
    """One benchmark session: processes, raw runs, statuses."""

    def __init__(self, opts: Options, workdir: str, group: ProcessGroup) -> None:
        self.opts = opts
        self.workdir = workdir
        self.group = group
        self.runs: list[Json] = []
        self.statuses: dict[str, dict[str, str]] = {}
        self.notes: list[str] = []
        self.idle: list[Json] = []  # memory of idle client connections, per proxy
        self._targets: list[Target] = []  # the targets of the current phase
        self.binaries: dict[str, str | None] = {
            name: find_binary(name)
            for name in ("redis-server", "redis-benchmark", "nutcracker", "memcached", "memcaslap")
        }

    # ---- messages

    def say(self, text: str) -> None:
        """Progress to stderr (stdout carries the report)."""
        print(text, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """Something odd worth keeping in the result file."""
        self.notes.append(text)
        self.say(f"note: {text}")

    # ---- processes

    def _directory(self, name: str) -> str:
        """Where a process keeps its config and log: in the work directory, so that
        ``--keep-logs`` keeps them."""
        return os.path.join(self.workdir, name)

    def _redis_server(self, index: int) -> RedisServer:
        name = f"redis{index}"
        return RedisServer(
            name=name, directory=self._directory(name), start=False, start_timeout=15.0
        )

    def _memcached(self, index: int) -> Memcached:
        # memcached's own default of 4 threads, and room for the keyspace
        name = f"memcached{index}"
        return Memcached(
            memory_mb=512,
            threads=4,
            name=name,
            directory=self._directory(name),
            start=False,
            start_timeout=15.0,
        )

    def corenet_command(self) -> tuple[list[str], str]:
        """corenet-proxy's command prefix and the directory it runs in."""
        if self.opts.corenet_cmd:
            return list(self.opts.corenet_cmd), self.workdir
        return [sys.executable, "-m", "corenet"], str(REPO_ROOT)

    def _proxy(self, kind: str, protocol: str, servers: list[Server]) -> ProxyProcess:
        """A new, unstarted nutcracker or corenet-proxy (``-v 4``) in front of ``servers``."""
        name = f"{kind}-{protocol}"
        config = pool_config(f"bench_{protocol}", None, servers, redis=protocol == "redis")
        options: dict[str, Any] = {
            "name": name,
            "directory": self._directory(name),
            "start": False,
            "start_timeout": 15.0,
        }
        if kind == "nutcracker":
            return Nutcracker(config, verbosity=4, **options)
        command, cwd = self.corenet_command()
        # the proxy as installed: plugins load as they would for a user
        return CorenetProxy(
            config,
            ["-v", "4", *self.opts.corenet_args],
            command=command,
            cwd=cwd,
            autoload_plugins=True,
            **options,
        )

    def _corenet_config_check(self, protocol: str, servers: list[Server]) -> str | None:
        """``corenet-proxy -t`` on the pool config; the reason it refuses it, or None."""
        path = os.path.join(self.workdir, f"check-{protocol}.yml")
        config = pool_config(f"bench_{protocol}", free_port(), servers, redis=protocol == "redis")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(dump_config(config))
        command, cwd = self.corenet_command()
        try:
            done = subprocess.run(
                [*command, "-t", "-c", path], cwd=cwd, capture_output=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"corenet-proxy -t: {exc}"
        if done.returncode != 0:
            text = (done.stderr + done.stdout).decode("utf-8", "replace").strip()
            return text.splitlines()[-1] if text else f"exit status {done.returncode}"
        return None

    def start_targets(self, protocol: str, servers: list[Server]) -> list[Target]:
        """direct (the first backend), nutcracker and corenet-proxy for ``protocol``."""
        status = self.statuses.setdefault(protocol, {})
        targets = []
        for name in TARGETS:
            if name not in self.opts.targets:
                status[name] = "not selected"
                continue
            target = Target(name, protocol)
            if name == "direct":
                target.direct_port = servers[0].port
            elif name == "nutcracker" and not self.binaries["nutcracker"]:
                target.status = "unavailable: nutcracker not installed"
            else:
                # a refused memcache pool is a missing feature; anything else is a failure
                failed = (
                    "unsupported: " if name == "corenet" and protocol == "memcache" else "failed: "
                )
                if name == "corenet":
                    reason = self._corenet_config_check(protocol, servers)
                    if reason is not None:
                        target.status = failed + reason
                if target.status == "ok":
                    target.make = functools.partial(self._proxy, name, protocol, servers)
                    try:
                        target.proc = self.group.start(target.make())
                    except ServerStartError as exc:
                        target.status = failed + str(exc).splitlines()[-1]
            status[name] = target.status
            if target.status != "ok":
                self.note(f"{protocol}: {name} {target.status}")
            targets.append(target)
        return targets

    def _ensure_running(self, target: Target) -> bool:
        """Restart a proxy that died (counted in ``restarts``); False if it cannot run."""
        if target.proc is None or target.make is None or target.proc.alive():
            return target.status == "ok"
        self.note(f"{target.proc.name} exited; log tail: {target.proc.log_text()[-300:]!r}")
        self.group.stop(target.proc)
        # a stopped process is not started again (its ports may be gone): a new one
        try:
            target.proc = self.group.start(target.make())
        except ServerStartError as exc:
            target.status = f"failed on restart: {str(exc).splitlines()[-1]}"
            self.statuses[target.protocol][target.name] = target.status
            self.note(f"{target.protocol}: {target.name} {target.status}")
            return False
        target.restarts += 1
        return True

    # ---- counters on the backends (did the requests reach them?)

    def _counters(self, protocol: str, servers: list[Server]) -> dict[str, int]:
        total: dict[str, int] = {}
        for server in servers:
            if protocol == "redis":
                info = redis_info(server.port, b"stats", b"commandstats")
                values = {
                    "hits": int(info.get("keyspace_hits", 0)),
                    "misses": int(info.get("keyspace_misses", 0)),
                }
                for cmd in ("get", "set", "mget"):
                    stat = info.get(f"cmdstat_{cmd}", "")
                    calls = stat.split(",")[0].partition("=")[2] if stat else "0"
                    values[f"{cmd}_calls"] = int(calls or 0)
            else:
                st = memcache_stats(server.port)
                values = {
                    "hits": int(st.get("get_hits", 0)),
                    "misses": int(st.get("get_misses", 0)),
                    "cmd_get": int(st.get("cmd_get", 0)),
                    "cmd_set": int(st.get("cmd_set", 0)),
                }
            for key, value in values.items():
                total[key] = total.get(key, 0) + value
        return total

    # ---- one run

    def run_one(
        self, rep: int, order: int, case: Case, target: Target, servers: list[Server]
    ) -> Json:
        """One load-generator run against ``target``; the raw record for the JSON file."""
        record: Json = {
            "rep": rep,
            "order": order,
            "protocol": case.protocol,
            "test": case.test,
            "depth": case.depth,
            "label": case.label,
            "target": target.name,
            "clients": self.opts.clients,
        }
        proxy = target.proc
        before = self._counters(case.protocol, servers)
        ours0 = self._our_cpu(servers)
        busy0 = machine_busy_seconds()
        cpu0 = proxy.cpu_seconds() if proxy is not None else None
        alive = proxy.alive if proxy is not None else None
        if case.protocol == "redis":
            result = self._redis_load(case, target.port, alive)
        else:
            result = self._memcache_load(case, target.port, alive)
        cpu1 = proxy.cpu_seconds() if proxy is not None else None
        busy1 = machine_busy_seconds()
        ours1 = self._our_cpu(servers)
        after = self._counters(case.protocol, servers)
        if busy0 is not None and busy1 is not None and result.wall_s > 0:
            # how much of the machine something other than this benchmark used meanwhile
            ncpu = os.cpu_count() or 1
            other = max(0.0, (busy1 - busy0) - (ours1 - ours0))
            record["machine_busy_share"] = (busy1 - busy0) / (result.wall_s * ncpu)
            record["other_cpu_share"] = other / (result.wall_s * ncpu)
        if proxy is not None and not proxy.alive():
            result.ok = False
            result.error = (result.error or "") + f" proxy exited: {proxy.log_text()[-300:]!r}"
        record.update({k: v for k, v in asdict(result).items() if k != "notes"})
        if result.notes:
            record["notes"] = result.notes
        delta = {k: after[k] - before.get(k, 0) for k in after}
        record["backend"] = delta
        record["backend_check"] = self._check_backend(case, result, delta, record)
        if cpu0 is not None and cpu1 is not None and result.requests:
            cpu = cpu1 - cpu0
            record["cpu_s"] = cpu
            record["cpu_us_per_req"] = cpu / result.requests * 1e6
            record["cpu_us_per_key"] = cpu / result.keys * 1e6 if result.keys else None
        else:
            record["cpu_s"] = record["cpu_us_per_req"] = record["cpu_us_per_key"] = None
        return record

    def _our_cpu(self, servers: list[Server]) -> float:
        """CPU seconds so far of the backends, running proxies and reaped load generators."""
        total = 0.0
        proxies: list[Process] = [t.proc for t in self._targets if t.proc is not None]
        for proc in [*servers, *proxies]:
            if proc.alive():
                total += proc.cpu_seconds() or 0.0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return total + usage.ru_utime + usage.ru_stime

    def _check_backend(
        self, case: Case, result: LoadResult, delta: dict[str, int], record: Json
    ) -> bool:
        """Whether the backends saw the keys/commands the load generator claims to have sent."""
        if not result.ok:
            return True
        if case.protocol == "redis":
            if case.test == "set":
                seen, expected = delta["set_calls"], result.requests
            else:
                seen, expected = delta["hits"] + delta["misses"], result.keys
            slack = max(expected // 100, self.opts.clients * case.depth * case.keys_per_request)
            record["backend_hit_ratio"] = (
                delta["hits"] / (delta["hits"] + delta["misses"])
                if case.test != "set" and seen
                else None
            )
        else:
            # memcached counts every key of a multi-get in cmd_get; warm-up SETs in cmd_set
            seen, expected = delta["cmd_get"] + delta["cmd_set"], result.keys
            slack = max(expected // 100, self.opts.clients * 2 * case.keys_per_request)
        record["backend_seen"], record["backend_expected"] = seen, expected
        ok = abs(seen - expected) <= slack
        if not ok:
            self.note(
                f"{case.label} via {record['target']} rep {record['rep']}: backends saw "
                f"{seen} keys/commands, the load generator reports {expected}"
            )
        return ok

    def _redis_load(self, case: Case, port: int, alive: Callable[[], bool] | None) -> LoadResult:
        binary = self.binaries["redis-benchmark"] or "redis-benchmark"
        argv = redis_benchmark_argv(
            binary,
            port,
            case.test,
            requests=case.requests,
            clients=self.opts.clients,
            depth=case.depth,
            keyspace=self.opts.keyspace,
        )
        rc, out, err, wall = run_load(argv, self.opts.timeout, keep_going=alive)
        result = LoadResult(
            ok=False,
            wall_s=wall,
            requests=case.requests,
            keys=case.requests * case.keys_per_request,
        )
        stderr = [
            line
            for line in err.splitlines()
            if line.strip() and "Could not fetch server CONFIG" not in line
        ]
        result.notes = stderr[-5:]
        if rc is None:
            result.error = (
                f"killed after {wall:.0f}s (timeout {self.opts.timeout:.0f}s, or the proxy exited)"
            )
            return result
        try:
            values = parse_redis_benchmark_csv(out)
        except ValueError as exc:
            why = " | ".join(stderr[-3:]) if stderr else str(exc)
            result.error = f"exit status {rc}: {why}"
            return result
        if rc != 0:
            result.notes.append(f"exit status {rc}")
        result.ok = rc == 0
        result.ops = values["rps"]
        result.avg_ms = values.get("avg_latency_ms")
        result.p50_ms = values.get("p50_latency_ms")
        result.p99_ms = values.get("p99_latency_ms")
        if not result.ok:
            result.error = f"exit status {rc}; stderr: {' | '.join(stderr[-3:])}"
        return result

    def _memcache_load(self, case: Case, port: int, alive: Callable[[], bool] | None) -> LoadResult:
        binary = self.binaries["memcaslap"] or "memcaslap"
        config_path = os.path.join(self.workdir, f"memcaslap-{case.test}.cfg")
        if not os.path.exists(config_path):
            with open(config_path, "w", encoding="ascii") as fh:
                fh.write(memcaslap_config(case.test))
        threads = max(1, min(2, os.cpu_count() or 1, self.opts.clients))
        argv = memcaslap_argv(
            binary,
            port,
            case.test,
            config_path,
            requests=case.requests,
            clients=self.opts.clients,
            threads=threads,
            window="1k",
        )
        rc, out, err, wall = run_load(argv, self.opts.timeout, keep_going=alive)
        result = LoadResult(ok=False, wall_s=wall)
        lines = [line for line in (err + out).splitlines() if "Failed" in line or "rror" in line]
        result.notes = sorted(set(lines))[:5]
        if rc is None:
            result.error = (
                f"killed after {wall:.0f}s (timeout {self.opts.timeout:.0f}s, or the proxy exited)"
            )
            return result
        try:
            values = parse_memcaslap(out, case.test)
        except ValueError as exc:
            result.error = f"exit status {rc}: {exc}"
            return result
        warmup_sets = int(values["cmd_set"]) if case.test != "set" else 0
        result.ok = rc == 0 and values["events"] > 0
        result.ops = values["ops"]
        result.avg_ms = values["avg_us"] / 1000
        result.p50_ms = values["p50_us"] / 1000 if "p50_us" in values else None
        result.p99_ms = values["p99_us"] / 1000 if "p99_us" in values else None
        # CPU per request counts memaslap's warm-up SETs as requests: both proxies see them
        result.requests = int(values["events"]) + warmup_sets
        result.keys = int(values["cmd_get"]) + int(values["cmd_set"])
        if values["get_misses"]:
            result.notes.append(f"memcaslap get_misses {int(values['get_misses'])}")
        if not result.ok:
            result.error = f"exit status {rc}"
        return result

    # ---- phases

    def _run_cases(self, cases: list[Case], targets: list[Target], servers: list[Server]) -> None:
        for rep in range(self.opts.repeat):
            for index, case in enumerate(cases):
                rot = (rep + index) % len(targets) if targets else 0
                ordered = targets[rot:] + targets[:rot]
                for order, target in enumerate(ordered):
                    if not self._ensure_running(target):
                        continue
                    record = self.run_one(rep, order, case, target, servers)
                    self.runs.append(record)
                    self._progress(record)

    def _progress(self, r: Json) -> None:
        if r["ok"]:
            cpu = (
                f" cpu {r['cpu_us_per_req']:.1f} us/req"
                if r.get("cpu_us_per_req") is not None
                else ""
            )
            p99 = f"{r['p99_ms']:.2f}" if r.get("p99_ms") is not None else "-"
            self.say(
                f"  rep {r['rep'] + 1} {r['label']:<10} {r['target']:<10} "
                f"{r['ops']:>11,.0f} ops/s  p99 {p99} ms{cpu}"
                + ("" if r.get("backend_check", True) else "  (backend count mismatch)")
            )
        else:
            self.say(
                f"  rep {r['rep'] + 1} {r['label']:<10} {r['target']:<10} FAILED: {r.get('error')}"
            )

    def _idle_memory(self, protocol: str, target: Target) -> Json:
        """Open ``--idle`` client connections to ``target``'s proxy, each
        answered once (so its buffers exist), and read the proxy's RSS growth."""
        record: Json = {"protocol": protocol, "target": target.name, "connections": 0}
        proc = target.proc
        assert proc is not None and proc.pid is not None
        request = b"PING\r\n" if protocol == "redis" else b"version\r\n"
        before = rss_bytes(proc.pid)
        socks: list[socket.socket] = []
        try:
            # extend() keeps the connections made before one that failed.
            address = ("127.0.0.1", target.port)
            socks.extend(connect(address, 10) for _ in range(self.opts.idle))
            for sock in socks:
                sock.sendall(request)
            for sock in socks:
                sock.recv(64)
            time.sleep(0.5)  # RSS is read by the kernel's accounting, a moment late
            after = rss_bytes(proc.pid)
        except OSError as exc:
            record["error"] = f"after {len(socks)} connections: {exc}"
            self.note(f"{protocol}: {target.name} idle connections: {record['error']}")
            return record
        finally:
            for sock in socks:
                sock.close()
        record["connections"] = len(socks)
        if before is not None and after is not None:
            record["rss_growth_mib"] = round((after - before) / 2**20, 1)
            record["kib_per_connection"] = round((after - before) / 1024 / len(socks), 2)
            self.say(
                f"  {protocol} {target.name:<10} {len(socks):,} idle connections: RSS "
                f"+{record['rss_growth_mib']} MiB ({record['kib_per_connection']} KiB each)"
            )
        return record

    def redis_phase(self, cases: list[Case]) -> None:
        """Start redis backends, fill them, start the proxies, run the redis cases, stop."""
        binaries = ("redis-server", "redis-benchmark")
        self._phase("redis", cases, binaries, self._redis_server, self._fill_redis)

    def memcache_phase(self, cases: list[Case]) -> None:
        """Start memcached backends and the proxies, run the memcache cases, stop."""

        def started(servers: list[Server]) -> None:
            self.say(f"memcache: {len(servers)} memcached on ports {_ports(servers)}")

        self._phase("memcache", cases, ("memcached", "memcaslap"), self._memcached, started)

    def _fill_redis(self, servers: list[Server]) -> None:
        t0 = time.monotonic()
        for server in servers:
            redis_command(server.port, b"FLUSHALL")
            redis_populate(server.port, self.opts.keyspace)
        self.say(
            f"redis: {len(servers)} backends on ports {_ports(servers)}, each filled with "
            f"{self.opts.keyspace:,} keys in {time.monotonic() - t0:.1f}s"
        )

    def _phase(
        self,
        protocol: str,
        cases: list[Case],
        binaries: tuple[str, ...],
        backend: Callable[[int], Server],
        started: Callable[[list[Server]], None],
    ) -> None:
        """One protocol's phase: ``backend(i)`` servers (``started`` is told of
        them), the proxies in front of them, the cases; then all of it stops."""
        if not cases:
            return
        missing = [b for b in binaries if not self.binaries[b]]
        if missing:
            self.note(f"{protocol} tests skipped: {', '.join(missing)} not installed")
            self.statuses[protocol] = dict.fromkeys(TARGETS, f"unavailable: {missing[0]}")
            return
        try:
            servers = [self.group.start(backend(i)) for i in range(self.opts.backends)]
            started(servers)
            self._targets = self.start_targets(protocol, servers)
            self._run_cases(cases, [t for t in self._targets if t.status == "ok"], servers)
            for target in self._targets:
                if target.proc is not None and target.status == "ok" and self.opts.idle > 0:
                    self.idle.append(self._idle_memory(protocol, target))
        finally:
            # this phase's backends and proxies (restarted ones too), newest first
            self.group.close()
            self._targets = []


def _ports(servers: list[Server]) -> str:
    return ", ".join(str(s.port) for s in servers)


# --------------------------------------------------------------------------
# main


def _settings(opts: Options, cases: list[Case]) -> Json:
    return {
        "quick": opts.quick,
        "repeat": opts.repeat,
        "clients": opts.clients,
        "backends": opts.backends,
        "keyspace": opts.keyspace,
        "tests": opts.tests,
        "depths": opts.depths,
        "memcache": opts.memcache,
        "mc_tests": opts.mc_tests,
        "targets": opts.targets,
        "corenet_args": opts.corenet_args,
        "corenet_cmd": opts.corenet_cmd or ["python", "-m", "corenet"],
        "nutcracker_verbosity": 4,
        "corenet_verbosity": 4,
        "hash": "fnv1a_64",
        "distribution": "ketama",
        "timeout_s": opts.timeout,
        "requests": {c.label: c.requests for c in cases},
        "memcaslap": {
            "threads": max(1, min(2, os.cpu_count() or 1, opts.clients)),
            "window": "1k",
            "key_bytes": 30,
            "value_bytes": 3,
        },
    }


def render(result: Json) -> str:
    """The human report of a result: table, machine, bars, notes (no summary line)."""
    parts = [
        _report.format_table(result["results"]),
        "",
        "ratios within each repetition, median [min-max]:",
        _report.format_paired(result["results"]),
        "",
        _report.format_machine(result["machine"], result["git"]),
        "",
        "acceptance bars (issue #23):",
        _report.format_bars(result["bars"]),
    ]
    idle = [r for r in result.get("idle_connections", []) if "rss_growth_mib" in r]
    if idle:
        parts += ["", "idle client connections (proxy RSS growth):"]
        parts += [
            f"  {r['protocol']} {r['target']}: {r['connections']:,} connections "
            f"+{r['rss_growth_mib']} MiB ({r['kib_per_connection']} KiB each)"
            for r in idle
        ]
    if result.get("notes"):
        parts += ["", "notes:", *[f"  - {n}" for n in result["notes"]]]
    return "\n".join(parts)


def _write_outputs(result: Json, opts: Options) -> None:
    out = Path(opts.out)
    if not out.is_absolute():
        out = REPO_ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    print(f"\nresults written to {out}", file=sys.stderr)
    if opts.plot:
        plot = Path(opts.plot)
        if not plot.is_absolute():
            plot = REPO_ROOT / plot
        skipped = _report.write_plot(result, str(plot))
        print(skipped or f"plot written to {plot}", file=sys.stderr)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def measure(opts: Options) -> Json:
    """Run the whole benchmark and return the result document."""
    cases = build_cases(opts)
    started = dt.datetime.now(dt.UTC)
    if opts.idle:
        # The idle-connection check needs a descriptor per connection, here
        # and in the proxies, which inherit the limit.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = opts.idle + 4096 if hard == resource.RLIM_INFINITY else min(hard, opts.idle + 4096)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    workdir = tempfile.mkdtemp(prefix="corenet-bench-")
    keep = opts.keep_logs
    group = ProcessGroup()
    bench = Bench(opts, workdir, group)
    machine = _report.machine_info(bench.binaries)
    git = _report.git_info(str(REPO_ROOT))
    command, cwd = bench.corenet_command()
    machine["versions"]["corenet-proxy"] = _report.tool_version([*command, "-V"], cwd=cwd)
    if opts.corenet_cmd:
        git["corenet_cmd"] = shlex.join(opts.corenet_cmd)
    bench.say(_report.format_machine(machine, git))
    try:
        bench.redis_phase([c for c in cases if c.protocol == "redis"])
        bench.memcache_phase([c for c in cases if c.protocol == "memcache"])
    except BaseException:
        keep = True
        raise
    finally:
        group.close()
        if keep:
            bench.say(f"configs and process logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    finished = dt.datetime.now(dt.UTC)
    case_dicts = [
        {
            "protocol": c.protocol,
            "test": c.test,
            "depth": c.depth,
            "label": c.label,
            "requests": c.requests,
        }
        for c in cases
    ]
    rows = _report.aggregate(bench.runs, case_dicts, bench.statuses)
    applicable = (
        not opts.quick and opts.clients == 50 and opts.backends == 2 and opts.keyspace >= 1_000_000
    )
    bars = _report.evaluate_bars(rows, applicable)
    result: Json = {
        "schema": SCHEMA,
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 1),
        "command": ["python", "-m", "bench.run", *sys.argv[1:]],
        "git": git,
        "machine": machine,
        "settings": _settings(opts, cases),
        "statuses": bench.statuses,
        "results": rows,
        "bars": bars,
        "summary": _report.summary_line(rows, bars),
        "notes": bench.notes,
        "idle_connections": bench.idle,
        "processes": group.history,
        "runs": bench.runs,
    }
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: measure (or ``--render``), print the report, write JSON and PNG."""
    opts = parse_args(argv)
    if opts.render:
        result = json.loads(Path(opts.render).read_text(encoding="utf-8"))
        # recompute the derived parts from the raw runs (older files gain newer columns)
        cases = [
            {k: row[k] for k in ("protocol", "test", "depth", "label", "requests")}
            for row in result["results"]
        ]
        result["results"] = _report.aggregate(result["runs"], cases, result["statuses"])
        result["bars"] = _report.evaluate_bars(
            result["results"], result["bars"][0]["applicable"] if result["bars"] else False
        )
        result["summary"] = _report.summary_line(result["results"], result["bars"])
        print(render(result))
        print(result["summary"])
        if opts.plot:
            skipped = _report.write_plot(result, opts.plot)
            print(skipped or f"plot written to {opts.plot}", file=sys.stderr)
        return 0
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = measure(opts)
    except KeyboardInterrupt as exc:
        print(
            f"interrupted{f' by {exc}' if str(exc) else ''}: every process it started was stopped",
            file=sys.stderr,
        )
        return 130
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)
    print(render(result))
    _write_outputs(result, opts)
    print(result["summary"], flush=True)
    if not _report.corenet_measured(result["results"]):
        # Bars "met 0/N" from a proxy that never ran is a failure, not a result.
        print("corenet-proxy could not be measured in any case", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
