"""corenet-proxy's user-space instructions per request, counted by callgrind.

    .venv/bin/python -m bench.instructions    # redis get, set, mget10; depth 1 and 16
    .venv/bin/python -m bench.instructions --tests get --depths 16

Throughput on a shared 2-core machine moves by 10-20 % from one run to the
next; an instruction count does not.  The proxy runs under ``valgrind
--tool=callgrind`` (about 50 times slower, so the request counts are small)
in front of two redis-servers; for each case redis-benchmark warms it up,
``callgrind_control -z`` zeroes the counters, a fixed number of requests is
sent and ``callgrind_control -d`` dumps them.  The figure is the instructions
the proxy process executed in user space (the interpreter, corenet's Python
and its C helpers) divided by the requests: the kernel's share (send, recv,
epoll) is not in it.  Run it on two commits to compare them.  Needs
valgrind, redis-server and redis-benchmark.
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

from bench._loadgen import redis_benchmark_argv
from corenet.proxy.harness import CorenetProxy, RedisServer, pool_config
from corenet.testing.process import ProcessGroup

if TYPE_CHECKING:
    from collections.abc import Sequence

REQUESTS = {1: 4_000, 16: 16_000}  # per case; MGET of 10 keys: a quarter of that


def _benchmark(port: int, test: str, depth: int, requests: int) -> None:
    argv = redis_benchmark_argv(
        "redis-benchmark", port, test, requests=requests, clients=10, depth=depth, keyspace=10**6
    )
    subprocess.run(argv, check=True, capture_output=True, timeout=600)


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
        servers = [group.start(RedisServer(start=False)) for _ in range(2)]
        config = pool_config("alpha", None, [s.address for s in servers])
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={work}/callgrind.out",
            sys.executable,
            "-m",
            "corenet",
        ]
        proxy = group.start(CorenetProxy(config, command=command, start=False, start_timeout=120))
        port = int(proxy.address("alpha").rpartition(":")[2])
        for test in tests:
            for depth in depths:
                requests = REQUESTS[depth] // (4 if test.startswith("mget") else 1)
                _benchmark(port, test, depth, requests // 4)  # warm up
                before = set(glob.glob(os.path.join(work, "callgrind.out*")))
                _callgrind_control("-z", proxy.pid)
                _benchmark(port, test, depth, requests)
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
    parser.add_argument("--tests", default="get,set,mget10", help="get, set and/or mget10")
    parser.add_argument("--depths", default="1,16", help="pipeline depths (1 and/or 16)")
    args = parser.parse_args(argv)
    tools = ("valgrind", "callgrind_control", "redis-benchmark")
    missing = [tool for tool in tools if not shutil.which(tool)]
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    tests = [t for t in args.tests.split(",") if t]
    depths = [int(d) for d in args.depths.split(",") if d]
    measure(tests, depths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
