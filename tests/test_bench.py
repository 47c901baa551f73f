"""Smoke test of the benchmark command: ``python -m bench.run --quick`` end to end.

Runs the real thing with tiny counts (a few seconds): backends, nutcracker and
corenet-proxy on loopback, redis-benchmark and memcaslap.  Checks the exit
status, the summary line and the shape of the JSON result file, and that every
process the benchmark started is gone.  It does not judge the figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench._report import BARS
from corenet.testing.process import cpu_seconds, exited, wait_for
from tests.conftest import need_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
LABELS = [
    "get@1",
    "set@1",
    "mget10@1",
    "get@16",
    "set@16",
    "mget10@16",
    "mc-get",
    "mc-set",
    "mc-mget10",
]
TARGETS = ["direct", "nutcracker", "corenet"]


def need_bench_tools(request: pytest.FixtureRequest) -> None:
    """Skip (or, with CORENET_REQUIRE_SERVERS, fail) without bench.run's programs."""
    for name in ("redis-server", "redis-benchmark", "nutcracker", "memcached", "memcaslap"):
        need_binary(request.config, name)


def run_bench(module: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE --quick *args`` from the checkout; fails the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return done


@pytest.mark.posix_only
def test_quick_run_writes_well_formed_result(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    need_bench_tools(request)
    out = tmp_path / "result.json"
    done = run_bench("bench.run", "--out", str(out), "--plot", "none", timeout=90)
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("SUMMARY corenet/nutcracker ops: get@1 "), done.stdout[-2000:]
    assert "| test | direct ops/s |" in done.stdout

    result = json.loads(out.read_text(encoding="utf-8"))
    for key in (
        "schema",
        "started",
        "finished",
        "duration_s",
        "command",
        "git",
        "machine",
        "settings",
        "statuses",
        "results",
        "bars",
        "summary",
        "notes",
        "processes",
        "runs",
    ):
        assert key in result, key
    assert result["summary"] == last
    assert result["settings"]["quick"] is True
    assert {"cpu_model", "cpus", "kernel", "python", "versions"} <= set(result["machine"])
    assert [row["label"] for row in result["results"]] == LABELS
    assert len(result["bars"]) == len(BARS)
    for row in result["results"]:
        assert set(row["targets"]) == set(TARGETS)
        for ratios in (row["ratios"], row["paired"]):
            assert {
                "ops_corenet_nutcracker",
                "ops_corenet_direct",
                "cpu_corenet_nutcracker",
            } <= set(ratios)
        for target in ("direct", "nutcracker"):
            cell = row["targets"][target]
            assert cell["status"] == "ok", (row["label"], target, cell)
            assert cell["ops"] > 0
            assert cell["p99_ms"] is not None
        assert row["targets"]["nutcracker"]["cpu_us_per_req"] is not None
        corenet = row["targets"]["corenet"]
        # corenet may be unsupported (memcache) or failing while it is being
        # worked on: then it has a reason and no figures
        if corenet["status"] == "ok":
            assert corenet["ops"] > 0
        else:
            assert corenet["ops"] is None
    runs = result["runs"]
    assert runs, "no raw runs recorded"
    for run in runs:
        assert {
            "rep",
            "label",
            "target",
            "ok",
            "ops",
            "p50_ms",
            "p99_ms",
            "requests",
            "cpu_us_per_req",
            "backend_check",
        } <= set(run)
        if run["ok"]:
            assert run["backend_check"], run
    # idle connections were opened to each proxy and their memory read
    idle = {(r["protocol"], r["target"]): r for r in result["idle_connections"]}
    for protocol in ("redis", "memcache"):
        record = idle[(protocol, "corenet")]
        assert record["connections"] == 200, record
        assert isinstance(record["rss_growth_mib"], float) and "kib_per_connection" in record
    # every process the benchmark started was stopped and reaped
    assert result["processes"]
    for proc in result["processes"]:
        assert proc["pid"] is None or exited(proc["pid"]), proc


# --------------------------------------------------------------------------
# the parsers, on canned output (no servers)

REDIS_BENCHMARK_CSV = (
    '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",'
    '"p99_latency_ms","max_latency_ms"\n'
    '"GET","44345.90","0.737","0.288","0.719","0.959","1.631","3.919"\n'
)

MEMCASLAP_GET = """servers: 127.0.0.1:17011
Get Statistics (3000 events)
   Min:        19
   Max:     18748
   Avg:       808
   Geo:    362.64
   Std:   2266.95
   Log2 Dist:
       4:        0        2       48      168
       8:      504     1811      269       21
      12:       78       24       57       18

Total Statistics (3000 events)
   Min:        19
   Avg:       808

cmd_get: 3000
cmd_set: 51200
get_misses: 0

Run time: 0.1s Ops: 54200 TPS: 685521 Net_rate: 37.2M/s
"""


def test_parse_redis_benchmark_csv() -> None:
    from bench._loadgen import parse_redis_benchmark_csv

    values = parse_redis_benchmark_csv("WARNING: noise\n" + REDIS_BENCHMARK_CSV)
    assert values["rps"] == pytest.approx(44345.90)
    assert values["p50_latency_ms"] == pytest.approx(0.719)
    assert values["p99_latency_ms"] == pytest.approx(1.631)
    with pytest.raises(ValueError, match="no CSV result"):
        parse_redis_benchmark_csv("Error: Connection reset by peer\n")


def test_parse_memcaslap_and_log2_percentile() -> None:
    from bench._loadgen import log2_percentile, parse_memcaslap

    values = parse_memcaslap(MEMCASLAP_GET, "get")
    assert values["events"] == 3000
    assert values["run_s"] == pytest.approx(54200 / 685521)
    assert values["ops"] == pytest.approx(3000 / (54200 / 685521))
    assert values["cmd_set"] == 51200
    # bucket i holds (2**(i-1), 2**i] us: the median (rank 1500) is in bucket 9 (256, 512]
    assert 256 < values["p50_us"] <= 512
    assert 8192 < values["p99_us"] <= 16384  # rank 2970 falls in bucket 14
    assert log2_percentile({0: 10}, 0.5) == pytest.approx(0.5)
    assert log2_percentile({3: 1, 4: 1}, 1.0) == pytest.approx(16.0)
    with pytest.raises(ValueError, match="no 'Set Statistics'"):
        parse_memcaslap(MEMCASLAP_GET, "set")


def test_cpu_seconds_counts_live_children() -> None:
    # With --workers the proxy's CPU is in its children: the benchmark adds them.
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    child = subprocess.Popen([sys.executable, "-c", burn + "time.sleep(60)"])
    try:
        assert wait_for(lambda: (cpu_seconds(child.pid) or 0.0) >= 0.3, timeout=20)
        alone = cpu_seconds(os.getpid())
        with_children = cpu_seconds(os.getpid(), children=True)
        assert alone is not None and with_children is not None
        assert with_children - alone >= 0.3
    finally:
        child.kill()
        child.wait()


@pytest.mark.posix_only
def test_meta_bench_quick_run_reports_every_scenario(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    need_binary(request.config, "memcached")
    out = tmp_path / "meta.json"
    done = run_bench("bench.meta", "--out", str(out), timeout=120)
    assert done.stdout.strip().splitlines()[-1].startswith("SUMMARY meta-q corenet/direct ")
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    cells = {(r["scenario"], r["target"]) for r in results}
    assert cells == {(s, t) for s in ("meta-q", "meta", "get") for t in ("direct", "corenet")}
    for r in results:
        assert r["keys_per_s"] > 0
        assert (r["proxy_us_per_key"] is not None) == (r["target"] == "corenet")


@pytest.mark.posix_only
def test_a_run_that_cannot_measure_corenet_exits_non_zero(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Issue 15, item 7: a proxy that never starts (here: a command that
    # exits at once; in a python without the package, an ImportError) gave
    # "bars met 0/N" and exit status 0.
    need_bench_tools(request)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--corenet-cmd=false",
            "--out",
            str(tmp_path / "result.json"),
            "--plot",
            "none",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "corenet-proxy could not be measured in any case" in done.stderr


def test_allocs_counts_the_objects_a_request_holds() -> None:
    # bench/allocs.py: a GET in a pipeline of 16 is its Msg, its bytes, its
    # key and its end offset, then its reply; a regression to many more
    # objects per request shows here (the figures are exact counts, not times).
    from bench import allocs

    router = allocs._router()
    get16, _, mget16, *_ = allocs.workloads(16)
    figures = allocs.measure(get16, router)
    assert 3 <= figures["framed"] <= 6, figures
    assert 0.9 <= figures["replies"] <= 2, figures
    assert figures["completed"] <= 8, figures
    split = allocs.measure(mget16, router)
    assert split["completed"] <= 10, split  # fragments and their replies let go
