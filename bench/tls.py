"""TLS scenario: ``python -m bench.tls``.

Starts two redis-servers that listen both on a plain port and on a
``--tls-port``, makes a throw-away CA (``corenet.testing.tls``), and runs
redis-benchmark (``set`` then ``get``, depth 1 and 16, 50 clients;
``--tls --cacert`` where the target speaks TLS) against:

* ``redis`` and ``redis-tls``: the first backend directly, plain and TLS;
* ``corenet``: corenet-proxy without TLS (the reference for the ratios);
* ``corenet-tls-client``: the same pool with ``tls_cert`` (plain backends);
* ``corenet-tls-both``: ``tls_cert`` and ``server_tls`` (TLS backends);
* ``nutcracker`` and ``nutcracker-stunnel``: nutcracker 0.5.0, plain and
  behind ``stunnel`` (TLS terminated in front of it), when both are installed.

The three corenet pools are one corenet-proxy process (``-v 4``), each
with its two named servers, so placement is the same.  Targets take turns
in every round (``--repeat`` rounds); the table shows medians, proxy CPU
per request, and the ratios to ``corenet``, with the issue's bar: TLS on
both sides at depth 16 >= 0.5x the same proxy without TLS (exit status 1
if missed; ``--quick`` runs are too short to judge, every connection's
handshake dominates them).  Raw runs and medians go to
``bench/results/tls.json``.  Everything started is stopped by
PID at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import _report
from bench._loadgen import parse_redis_benchmark_csv, redis_benchmark_argv, run_load
from corenet.proxy.harness import CorenetProxy, Nutcracker, RedisServer, pool_config
from corenet.testing.process import LOOPBACK, Process, ProcessGroup, find_binary, free_port
from corenet.testing.tls import ServerTLS, make_test_pki

if TYPE_CHECKING:
    from collections.abc import Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = ("set", "get")
REQUESTS = {1: 40_000, 16: 200_000}
KEYSPACE = 100_000
BAR = 0.5

Json = dict[str, Any]


class Stunnel(Process):
    """stunnel in server mode: TLS on ``accept``, plain text to ``connect``."""

    kind = "stunnel"

    def __init__(self, port: int, connect: str, cert: str, key: str, **kwargs: Any) -> None:
        self.connect = connect
        self.cert, self.key = cert, key
        binary = find_binary("stunnel4") or find_binary("stunnel") or "stunnel"
        super().__init__([binary], port=port, **kwargs)

    def _command(self) -> list[str]:
        conf = os.path.join(self.tmpdir, "stunnel.conf")
        with open(conf, "w", encoding="ascii") as fh:
            fh.write(
                "foreground = yes\npid =\n[redis]\n"
                f"accept = {LOOPBACK}:{self.port}\nconnect = {self.connect}\n"
                f"cert = {self.cert}\nkey = {self.key}\n"
            )
        return [*self._argv, conf]  # type: ignore[misc]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, one round")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--depths", default="1,16")
    parser.add_argument("--out", default="bench/results/tls.json")
    args = parser.parse_args(argv)
    args.depths = [int(d) for d in args.depths.split(",")]
    if args.quick:
        args.repeat = 1
    return args


def _benchmark(
    binary: str, port: int, test: str, depth: int, args: argparse.Namespace, ca: str | None
) -> Json:
    requests = 2_000 if args.quick else REQUESTS.get(depth, 100_000)
    argv = redis_benchmark_argv(
        binary, port, test, requests=requests, clients=args.clients, depth=depth, keyspace=KEYSPACE
    )
    if ca is not None:
        argv += ["--tls", "--cacert", ca]
    status, out, err, wall = run_load(argv, timeout=300)
    if status != 0:
        return {"ok": False, "error": (err or out)[-300:], "requests": requests}
    values = parse_redis_benchmark_csv(out)
    return {
        "ok": True,
        "ops": values["rps"],
        "p50_ms": values.get("p50_latency_ms"),
        "p99_ms": values.get("p99_latency_ms"),
        "requests": requests,
        "wall_s": wall,
    }


def measure(args: argparse.Namespace, workdir: str) -> Json:
    bench_binary = find_binary("redis-benchmark")
    if bench_binary is None:
        raise SystemExit("bench.tls: redis-benchmark is not installed")
    pki = make_test_pki(os.path.join(workdir, "pki"))
    tls = ServerTLS(pki.server_cert, pki.server_key, pki.ca, "optional")
    runs: list[Json] = []
    with ProcessGroup() as group:
        plain_ports = [free_port() for _ in range(2)]
        backends = [
            group.start(RedisServer(tls=tls, extra_args=["--port", str(p)], start=False))
            for p in plain_ports
        ]
        plain = [f"{LOOPBACK}:{p}:1 s{i}" for i, p in enumerate(plain_ports)]
        secure = [f"{b.address}:1 s{i}" for i, b in enumerate(backends)]
        certs = {"tls_cert": pki.server_cert, "tls_key": pki.server_key}
        config: Json = {}
        config.update(pool_config("plain", None, plain))
        config.update(pool_config("tls_client", None, plain, **certs))
        config.update(
            pool_config("tls_both", None, secure, **certs, server_tls=True, server_tls_ca=pki.ca)
        )
        corenet = group.start(CorenetProxy(config, ["-v", "4"], start=False))
        # name, port, CA (None: plain text), the proxy processes whose CPU counts
        targets: list[tuple[str, int, str | None, list[Process]]] = [
            ("redis", plain_ports[0], None, []),
            ("redis-tls", backends[0].port, pki.ca, []),
            ("corenet", _port(corenet.address("plain")), None, [corenet]),
            ("corenet-tls-client", _port(corenet.address("tls_client")), pki.ca, [corenet]),
            ("corenet-tls-both", _port(corenet.address("tls_both")), pki.ca, [corenet]),
        ]
        notes = []
        if find_binary("nutcracker") and (find_binary("stunnel4") or find_binary("stunnel")):
            nut = group.start(
                Nutcracker(pool_config("plain", None, plain), verbosity=4, start=False)
            )
            tunnel = group.start(
                Stunnel(free_port(), nut.address(), pki.server_cert, pki.server_key, start=False)
            )
            targets += [
                ("nutcracker", _port(nut.address()), None, [nut]),
                ("nutcracker-stunnel", tunnel.port, pki.ca, [nut, tunnel]),
            ]
        else:
            notes.append("nutcracker or stunnel4 not installed: no nutcracker rows")
        for round_no in range(args.repeat):
            for depth in args.depths:
                for test in TESTS:
                    for name, port, ca, procs in targets:
                        cpu0 = _cpu(procs)
                        result = _benchmark(bench_binary, port, test, depth, args, ca)
                        cpu1 = _cpu(procs)
                        if cpu0 is not None and cpu1 is not None and result["ok"]:
                            result["proxy_cpu_us"] = (cpu1 - cpu0) / result["requests"] * 1e6
                        result.update(target=name, test=test, depth=depth, round=round_no)
                        runs.append(result)
                        print(_line(result), flush=True)
    return {"runs": runs, "notes": notes}


def _cpu(procs: list[Process]) -> float | None:
    """CPU seconds of ``procs`` so far (None: nothing to measure, or unknown)."""
    seconds = [proc.cpu_seconds() for proc in procs]
    if not seconds or any(s is None for s in seconds):
        return None
    return sum(s for s in seconds if s is not None)


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def _line(run: Json) -> str:
    head = f"{run['target']:<20} {run['test']:<4} P{run['depth']:<3}"
    if not run["ok"]:
        return f"{head} FAILED {run['error']}"
    cpu = f"  cpu {run['proxy_cpu_us']:.1f} us/req" if "proxy_cpu_us" in run else ""
    return f"{head} {run['ops']:>12,.0f} ops/s  p50 {run['p50_ms']} ms{cpu}"


def summarize(result: Json) -> Json:
    cells: dict[tuple[str, int, str], list[Json]] = {}
    for run in result["runs"]:
        if run["ok"]:
            cells.setdefault((run["test"], run["depth"], run["target"]), []).append(run)
    rows = []
    for (test, depth, target), runs in sorted(cells.items()):
        cpu = [r["proxy_cpu_us"] for r in runs if "proxy_cpu_us" in r]
        rows.append(
            {
                "test": test,
                "depth": depth,
                "target": target,
                "ops": statistics.median(r["ops"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "proxy_cpu_us": statistics.median(cpu) if cpu else None,
                "runs": len(runs),
            }
        )
    ops = {(r["test"], r["depth"], r["target"]): r["ops"] for r in rows}
    for row in rows:
        base = ops.get((row["test"], row["depth"], "corenet"))
        row["vs_corenet"] = row["ops"] / base if base else None
    bars = [
        {
            "test": test,
            "depth": depth,
            "ratio": ops[(test, depth, "corenet-tls-both")] / ops[(test, depth, "corenet")],
        }
        for test in TESTS
        for depth in (16,)
        if (test, depth, "corenet-tls-both") in ops and (test, depth, "corenet") in ops
    ]
    for bar in bars:
        bar["pass"] = bar["ratio"] >= BAR
    return {"rows": rows, "bars": bars}


def render(summary: Json) -> str:
    lines = [
        f"{'test':<5}{'depth':>6}  {'target':<20}{'ops/s':>12}{'p50 ms':>9}"
        f"{'cpu us/req':>12}{'x corenet':>11}"
    ]
    for row in summary["rows"]:
        cpu = f"{row['proxy_cpu_us']:.1f}" if row["proxy_cpu_us"] is not None else "-"
        ratio = f"{row['vs_corenet']:.2f}" if row["vs_corenet"] is not None else "-"
        lines.append(
            f"{row['test']:<5}{row['depth']:>6}  {row['target']:<20}{row['ops']:>12,.0f}"
            f"{row['p50_ms']:>9.3f}{cpu:>12}{ratio:>11}"
        )
    for bar in summary["bars"]:
        verdict = "PASS" if bar["pass"] else "FAIL"
        lines.append(
            f"BAR {bar['test']} depth {bar['depth']}: TLS both sides / plain = "
            f"{bar['ratio']:.2f} (>= {BAR}) {verdict}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    with tempfile.TemporaryDirectory(prefix="corenet-bench-tls-") as workdir:
        result = measure(args, workdir)
    result["summary"] = summarize(result)
    result["machine"] = _report.machine_info({"redis-benchmark": find_binary("redis-benchmark")})
    result["git"] = _report.git_info(str(REPO_ROOT))
    result["settings"] = {
        "clients": args.clients,
        "depths": args.depths,
        "repeat": args.repeat,
        "keyspace": KEYSPACE,
        "quick": args.quick,
    }
    print(render(result["summary"]))
    for note in result["notes"]:
        print(f"note: {note}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if args.quick:  # too few requests per connection: handshakes dominate
        print("note: --quick figures are not judged")
        return 0
    bars = result["summary"]["bars"]
    return 0 if bars and all(bar["pass"] for bar in bars) else 1


if __name__ == "__main__":
    sys.exit(main())
