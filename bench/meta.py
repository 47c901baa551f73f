"""Meta multi-get through corenet-proxy vs memcached directly: ``python -m bench.meta``.

A client that wants many keys at once has two ways to ask memcached:
classic ``get k1 ... kN`` (which the proxy fans out, one ``get`` per server,
and merges), or a pipeline of ``mg <key> v k q`` ended by ``mn`` (the meta
multi-get Dalli 4 sends: the proxy forwards each ``mg`` to its server without
``q``, drops the misses' ``EN`` and answers ``mn`` itself in order).  This
benchmark measures both, and the same pipeline without ``q``, against one
memcached holding every key (``direct``) and against corenet-proxy over
``--backends`` memcached (``corenet``).

Every scenario asks for the same keys, ``--depth`` per multi-get, half of
them stored (``--hit-ratio``); a client process keeps ``--window`` multi-gets
in flight on one connection for ``--seconds`` and reports keys per second and
the latency of a window's round trip.  The proxy's CPU time per key comes
from ``/proc``.  Everything started is stopped by PID at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from corenet.proxy.harness import CorenetProxy, Memcached, memcache_raw, pool_config

if TYPE_CHECKING:
    from collections.abc import Sequence

SCENARIOS = ("meta-q", "meta", "get")
TARGETS = ("direct", "corenet")
VALUE = b"v" * 32
MAX_WINDOWS = 1_000_000  # a bound on the client loop besides its duration


@dataclass
class Result:
    scenario: str
    target: str
    keys_per_s: float
    p50_ms: float
    p99_ms: float
    proxy_us_per_key: float | None


def multi_get(scenario: str, keys: Sequence[bytes]) -> tuple[bytes, bytes]:
    """One multi-get of ``keys`` in ``scenario``'s form, and the bytes ending its reply."""
    if scenario == "get":
        return b"get " + b" ".join(keys) + b"\r\n", b"END\r\n"
    quiet = b" q" if scenario == "meta-q" else b""
    return b"".join(b"mg %s v k%s\r\n" % (k, quiet) for k in keys) + b"mn\r\n", b"MN\r\n"


def key_names(n: int) -> list[bytes]:
    return [b"bench:meta:%08d" % i for i in range(n)]


# -- the client (a child process, so that it does not share the proxy's core) ----------


def client(port: int, scenario: str, depth: int, window: int, seconds: float, seed: int) -> None:
    rng = random.Random(seed)
    names = key_names(depth * 64)
    batches = []
    for _ in range(16):
        gets = [multi_get(scenario, rng.sample(names, depth)) for _ in range(window)]
        batches.append(b"".join(g for g, _ in gets))
    end = multi_get(scenario, names[:1])[1]
    latencies: list[float] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        start = time.perf_counter()
        deadline = start + seconds
        for i in range(MAX_WINDOWS):
            sent = time.perf_counter()
            if sent >= deadline:
                break
            sock.sendall(batches[i % len(batches)])
            seen = 0
            tail = b""
            while seen < window:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                joined = tail + chunk
                seen += joined.count(end) - tail.count(end)
                tail = joined[-(len(end) - 1) :]
            latencies.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - start
    latencies.sort()
    print(
        json.dumps(
            {
                "keys": len(latencies) * window * depth,
                "elapsed": elapsed,
                "p50": latencies[len(latencies) // 2],
                "p99": latencies[int(len(latencies) * 0.99)],
            }
        )
    )


# -- the driver ------------------------------------------------------------------------


def preload(address: str, names: Sequence[bytes], hit_ratio: float) -> None:
    stored = names[: int(len(names) * hit_ratio)]
    load = b"".join(b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(VALUE), VALUE) for k in stored)
    assert memcache_raw(address, load + b"mn\r\n", until=b"MN\r\n") == b"MN\r\n"


def run_client(port: int, scenario: str, opts: argparse.Namespace, seed: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "bench.meta", "--client", str(port), "--scenario", scenario]
    argv += ["--depth", str(opts.depth), "--window", str(opts.window)]
    argv += ["--seconds", str(opts.seconds), "--seed", str(seed)]
    done = subprocess.run(argv, capture_output=True, check=True, timeout=opts.seconds + 60)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def measure(opts: argparse.Namespace) -> list[Result]:
    names = key_names(opts.depth * 64)
    single = Memcached(threads=4, memory_mb=256)
    backends: list[Memcached] = []
    proxy: CorenetProxy | None = None
    try:
        backends = [Memcached(threads=4, memory_mb=256) for _ in range(opts.backends)]
        config = pool_config("mc", None, [b.address for b in backends], redis=False)
        proxy = CorenetProxy(config, ["-v", "4"])
        port = {"direct": single.port, "corenet": int(proxy.address("mc").rsplit(":", 1)[1])}
        preload(single.address, names, opts.hit_ratio)
        preload(proxy.address("mc"), names, opts.hit_ratio)
        results = []
        for scenario in opts.scenarios:
            for target in TARGETS:
                runs = []
                for r in range(opts.repeat):
                    cpu0 = proxy.cpu_seconds(children=False)
                    run = run_client(port[target], scenario, opts, seed=r)
                    cpu1 = proxy.cpu_seconds(children=False)
                    cpu = None
                    if target == "corenet" and cpu0 is not None and cpu1 is not None:
                        cpu = (cpu1 - cpu0) / run["keys"] * 1e6
                    runs.append((run["keys"] / run["elapsed"], run["p50"], run["p99"], cpu))
                best = sorted(runs)[len(runs) // 2]  # the median run by throughput
                results.append(
                    Result(scenario, target, best[0], best[1] * 1e3, best[2] * 1e3, best[3])
                )
        return results
    finally:
        if proxy is not None:
            proxy.stop()
        for server in (*backends, single):
            server.stop()


def report(results: list[Result], opts: argparse.Namespace) -> str:
    lines = [
        f"meta multi-get: depth {opts.depth}, window {opts.window}, {opts.backends} backends, "
        f"hit ratio {opts.hit_ratio}, {opts.seconds}s x {opts.repeat} (median run)",
        f"{'scenario':8s} {'target':8s} {'keys/s':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
        f"{'proxy us/key':>12s}",
    ]
    for r in results:
        cpu = f"{r.proxy_us_per_key:12.2f}" if r.proxy_us_per_key is not None else f"{'-':>12s}"
        lines.append(
            f"{r.scenario:8s} {r.target:8s} {r.keys_per_s:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} "
            f"{cpu}"
        )
    by = {(r.scenario, r.target): r.keys_per_s for r in results}
    ratios = [
        f"{s} corenet/direct {by[s, 'corenet'] / by[s, 'direct']:.2f}"
        for s in opts.scenarios
        if (s, "direct") in by
    ]
    if ("meta-q", "corenet") in by and ("get", "corenet") in by:
        ratios.append(f"corenet meta-q/get {by['meta-q', 'corenet'] / by['get', 'corenet']:.2f}")
    lines.append("SUMMARY " + "; ".join(ratios))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", type=int, default=3)
    p.add_argument("--depth", type=int, default=16, help="keys per multi-get (16)")
    p.add_argument("--window", type=int, default=8, help="multi-gets in flight (8)")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--hit-ratio", type=float, default=0.5)
    p.add_argument("--scenarios", default=",".join(SCENARIOS))
    p.add_argument("--quick", action="store_true", help="0.3 s runs, once: a smoke test")
    p.add_argument("--out", help="also write the results as JSON here")
    p.add_argument("--client", type=int, help=argparse.SUPPRESS)
    p.add_argument("--scenario", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.client is not None:
        client(opts.client, opts.scenario, opts.depth, opts.window, opts.seconds, opts.seed)
        return 0
    opts.scenarios = [s for s in opts.scenarios.split(",") if s]
    unknown = set(opts.scenarios) - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios {sorted(unknown)} (known: {', '.join(SCENARIOS)})")
    if opts.quick:
        opts.seconds, opts.repeat = 0.3, 1
    results = measure(opts)
    print(report(results, opts))
    if opts.out:
        with open(opts.out, "w") as f:
            json.dump({"options": vars(opts), "results": [asdict(r) for r in results]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
