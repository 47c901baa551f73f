"""corenet-proxy's user-space instructions per request, counted by callgrind.

    .venv/bin/python -m bench.instructions    # redis get, set, mget10; depth 1 and 16
    .venv/bin/python -m bench.instructions --tests get --depths 16
    .venv/bin/python -m bench.instructions --tests mc-get,mc-set,mc-mget10   # memcache

Throughput on a shared 2-core machine moves by 10-20 % from one run to the
next; an instruction count does not.  The proxy runs under ``valgrind
--tool=callgrind`` (about 50 times slower, so the request counts are small)
in front of two redis-servers; for each case redis-benchmark warms it up,
``callgrind_control -z`` zeroes the counters, a fixed number of requests is
sent and ``callgrind_control -d`` dumps them.  The figure is the instructions
the proxy process executed in user space (the interpreter, corenet's Python
and its C helpers) divided by the requests: the kernel's share (send, recv,
epoll) is not in it.  Run it on two commits to compare them.  Needs
valgrind, redis-server and redis-benchmark.  The memcache cases (``mc-get``,
``mc-set``, ``mc-mget10``: memcaslap, one request at a time per connection,
as in ``bench.run``) run the proxy in front of two memcacheds instead; their
requests are counted from memcaslap's report (its warm-up SETs included,
a 10-key multi-get as one request).  They need memcached and memcaslap.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING

from bench._loadgen import memcaslap_argv, memcaslap_config, parse_memcaslap, redis_benchmark_argv
from corenet.proxy.harness import CorenetProxy, Memcached, RedisServer, pool_config
from corenet.testing.process import ProcessGroup

if TYPE_CHECKING:
    from collections.abc import Sequence

REQUESTS = {1: 4_000, 16: 16_000}  # per case; MGET of 10 keys: a quarter of that
MC_REQUESTS = 4_000  # memcache: commands of the measured kind, per case (multi-gets: a quarter)


def _benchmark(port: int, test: str, depth: int, requests: int, work: str) -> int:
    """Send ``requests`` of ``test`` through the proxy; returns how many it made."""
    if not test.startswith("mc-"):
        argv = redis_benchmark_argv(
            "redis-benchmark",
            port,
            test,
            requests=requests,
            clients=10,
            depth=depth,
            keyspace=10**6,
        )
        subprocess.run(argv, check=True, capture_output=True, timeout=600)
        return requests
    kind = test[3:]
    config = os.path.join(work, f"{kind}.cfg")
    with open(config, "w", encoding="utf-8") as fh:
        fh.write(memcaslap_config(kind))
    argv = memcaslap_argv(
        "memcaslap", port, kind, config, requests=requests, clients=10, threads=1, window="1k"
    )
    done = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600)
    report = parse_memcaslap(done.stdout, kind)
    # Every command memcaslap sent went through the proxy: its warm-up SETs too.
    return int(report["cmd_set"] + (report["events"] if kind != "set" else 0))


def _callgrind_control(action: str, pid: int | None) -> None:
    """Zero (``-z``) or dump (``-d``) the counters of the process under callgrind."""
    subprocess.run(["callgrind_control", action, str(pid)], check=True, capture_output=True)


def _total_instructions(out_dir: str, since: set[str]) -> int | None:
    """The ``totals:`` (or ``summary:``) line of a dump written after ``since``, if any yet."""
    fresh = sorted(set(glob.glob(os.path.join(out_dir, "callgrind.out*"))) - since)
    for path in reversed(fresh):
        with open(path, encoding="utf-8", errors="replace") as dump:
            for line in dump:
                if line.startswith(("totals:", "summary:")):
                    return int(line.split()[1])
    return None


def measure(tests: Sequence[str], depths: Sequence[int]) -> list[tuple[str, int]]:
    work = tempfile.mkdtemp(prefix="corenet-instructions-")
    group = ProcessGroup()
    results: list[tuple[str, int]] = []
    try:
        redis = [group.start(RedisServer(start=False)) for _ in range(2)]
        memcache = (
            [group.start(Memcached(start=False)) for _ in range(2)]
            if any(t.startswith("mc-") for t in tests)
            else []
        )
        config = pool_config("alpha", None, [s.address for s in redis])
        if memcache:
            config.update(pool_config("beta", None, [s.address for s in memcache], redis=False))
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={work}/callgrind.out",
            sys.executable,
            "-m",
            "corenet",
        ]
        proxy = group.start(CorenetProxy(config, command=command, start=False, start_timeout=120))
        for test in tests:
            memcache_test = test.startswith("mc-")
            pool = "beta" if memcache_test else "alpha"
            port = int(proxy.address(pool).rpartition(":")[2])
            for depth in [1] if memcache_test else depths:
                size = MC_REQUESTS if memcache_test else REQUESTS[depth]
                requests = size // (4 if "mget" in test else 1)
                _benchmark(port, test, depth, requests // 4, work)  # warm up
                before = set(glob.glob(os.path.join(work, "callgrind.out*")))
                _callgrind_control("-z", proxy.pid)
                requests = _benchmark(port, test, depth, requests, work)
                _callgrind_control("-d", proxy.pid)
                total = None
                for _ in range(150):  # callgrind writes the dump a moment later: 30 s at most
                    total = _total_instructions(work, before)
                    if total is not None:
                        break
                    time.sleep(0.2)
                if total is None:
                    raise RuntimeError(f"callgrind wrote no dump in {work}")
                results.append((f"{test}@{depth}", total // requests))
                print(f"{test}@{depth}: {total // requests:,} instructions per request", flush=True)
    finally:
        group.close()
        shutil.rmtree(work, ignore_errors=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument(
        "--tests",
        default="get,set,mget10",
        help="get, set and/or mget10; mc-get, mc-set and/or mc-mget10 (memcache)",
    )
    parser.add_argument(
        "--depths", default="1,16", help="pipeline depths of the redis cases (1 and/or 16)"
    )
    args = parser.parse_args(argv)
    tests = [t for t in args.tests.split(",") if t]
    tools = ["valgrind", "callgrind_control", "redis-server", "redis-benchmark"]
    if any(t.startswith("mc-") for t in tests):
        tools += ["memcached", "memcaslap"]
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    depths = [int(d) for d in args.depths.split(",") if d]
    measure(tests, depths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
