"""The load generators: redis-benchmark and memcaslap (memaslap), their command lines and output.

Each run is bounded: a fixed number of requests (``-n`` / ``-x``) and a
subprocess timeout.  Parsers are pure functions so they can be tested on
canned output.
"""

from __future__ import annotations

import csv
import re
import subprocess
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "LoadResult",
    "log2_percentile",
    "memcaslap_argv",
    "memcaslap_config",
    "parse_memcaslap",
    "parse_redis_benchmark_csv",
    "redis_benchmark_argv",
    "run_load",
]

#: Keys per MGET / memcache multi-get in the ``mget10`` test.
MGET_KEYS = 10


@dataclass
class LoadResult:
    """What one load-generator run reported (``ok`` False: see ``error``)."""

    ok: bool
    ops: float | None = None  # requests per second (an MGET of 10 keys is one request)
    avg_ms: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0  # requests the load generator made, warm-up included
    keys: int = 0  # keys those requests touched
    wall_s: float = 0.0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def redis_benchmark_argv(
    binary: str, port: int, test: str, *, requests: int, clients: int, depth: int, keyspace: int
) -> list[str]:
    """redis-benchmark command line for ``get``, ``set`` or ``mget10`` against 127.0.0.1:port."""
    argv = [
        binary,
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-c",
        str(clients),
        "-n",
        str(requests),
        "-r",
        str(keyspace),
        "-P",
        str(depth),
        "--csv",
    ]
    if test in ("get", "set"):
        return [*argv, "-t", test]
    if test == "mget10":
        return [*argv, "MGET", *(["key:__rand_int__"] * MGET_KEYS)]
    raise ValueError(f"unknown redis test {test!r}")


def parse_redis_benchmark_csv(text: str) -> dict[str, float]:
    """The last data row of redis-benchmark ``--csv`` output as floats.

    Redis 7's header is ``test,rps,avg_latency_ms,min_latency_ms,p50_latency_ms,
    p95_latency_ms,p99_latency_ms,max_latency_ms``.  Raises ValueError when no
    row is found.
    """
    rows = [row for row in csv.reader(line for line in text.splitlines() if line.startswith('"'))]
    header: list[str] | None = None
    data: list[str] | None = None
    for row in rows:
        if row and row[0] == "test":
            header = row
        elif header is not None and len(row) == len(header):
            data = row
    if header is None or data is None:
        raise ValueError(f"no CSV result in redis-benchmark output: {text[-300:]!r}")
    values: dict[str, float] = {}
    for name, value in zip(header[1:], data[1:], strict=True):
        try:
            values[name] = float(value)
        except ValueError:
            continue
    if "rps" not in values:
        raise ValueError(f"no rps column in redis-benchmark output: {text[-300:]!r}")
    return values


def memcaslap_config(test: str) -> str:
    """memcaslap ``-F`` file: 30-byte keys, 3-byte values, only sets or only gets."""
    set_prop, get_prop = ("1.0", "0.0") if test == "set" else ("0.0", "1.0")
    return f"key\n30 30 1\nvalue\n3 3 1\ncmd\n0 {set_prop}\n1 {get_prop}\n"


def memcaslap_argv(
    binary: str,
    port: int,
    test: str,
    config_path: str,
    *,
    requests: int,
    clients: int,
    threads: int,
    window: str,
) -> list[str]:
    """memcaslap command line for ``get``, ``set`` or ``mget10`` against 127.0.0.1:port.

    ``requests`` counts commands: memaslap's ``-x`` counts keys, so a
    multi-get test asks for ``requests * 10`` of them.  ``-S 3600s`` makes it
    print the latency histogram at the end without any periodic report.
    """
    keys = requests * MGET_KEYS if test == "mget10" else requests
    argv = [
        binary,
        "-s",
        f"127.0.0.1:{port}",
        "-T",
        str(threads),
        "-c",
        str(clients),
        "-x",
        str(keys),
        "-w",
        window,
        "-F",
        config_path,
        "-S",
        "3600s",
    ]
    if test == "mget10":
        argv += ["-d", str(MGET_KEYS)]
    elif test not in ("get", "set"):
        raise ValueError(f"unknown memcache test {test!r}")
    return argv


_MC_BLOCK = re.compile(r"^(Get|Set|Total) Statistics \((\d+) events\)\s*$", re.MULTILINE)
_MC_FIELD = re.compile(r"^\s+(Min|Max|Avg|Geo|Std):\s+([\d.]+)\s*$")
_MC_DIST = re.compile(r"^\s+(\d+):((?:\s+\d+)+)\s*$")
_MC_RUN = re.compile(r"^Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", re.MULTILINE)
_MC_COUNTER = re.compile(r"^(cmd_get|cmd_set|get_misses): (\d+)\s*$", re.MULTILINE)


def log2_percentile(dist: dict[int, int], fraction: float) -> float:
    """Approximate percentile (us) from memaslap's log2 histogram.

    Bucket ``i`` counts latencies ``t`` with ``2**(i-1) < t <= 2**i`` us (bucket
    0: ``t <= 1``); the value is interpolated linearly inside the bucket, so it
    is only as good as the histogram (a factor of two per bucket).
    """
    total = sum(dist.values())
    if total <= 0:
        raise ValueError("empty histogram")
    rank = fraction * total
    seen = 0
    for i in sorted(dist):
        count = dist[i]
        if count and seen + count >= rank:
            low = 0.0 if i == 0 else float(2 ** (i - 1))
            high = float(2**i)
            return low + (high - low) * (rank - seen) / count
        seen += count
    return float(2 ** max(dist))


def parse_memcaslap(text: str, test: str) -> dict[str, float]:
    """memcaslap's final report -> ops, latency (us) and counters for ``test``.

    Keys: ``events`` (commands of the measured kind: a multi-get is one),
    ``run_s`` (precise run time, Ops / TPS: memaslap's own warm-up SETs are
    not inside it), ``ops`` (events / run_s), ``avg_us``, ``p50_us``, ``p99_us``
    (the last two from the log2 histogram), ``cmd_get`` (keys fetched),
    ``cmd_set`` (warm-up included), ``get_misses``.
    """
    wanted = "Set" if test == "set" else "Get"
    blocks: dict[str, tuple[int, int]] = {}
    matches = list(_MC_BLOCK.finditer(text))
    for n, match in enumerate(matches):
        end = matches[n + 1].start() if n + 1 < len(matches) else len(text)
        blocks[match.group(1)] = (match.start(), end)
    if wanted not in blocks:
        raise ValueError(f"no '{wanted} Statistics' block in memcaslap output: {text[-300:]!r}")
    start, end = blocks[wanted]
    block = text[start:end].splitlines()
    events = int(_MC_BLOCK.match(block[0]).group(2))  # type: ignore[union-attr]
    fields: dict[str, float] = {}
    dist: dict[int, int] = {}
    for line in block[1:]:
        if m := _MC_FIELD.match(line):
            fields[m.group(1)] = float(m.group(2))
        elif m := _MC_DIST.match(line):
            first = int(m.group(1))
            for k, count in enumerate(m.group(2).split()):
                dist[first + k] = int(count)
    run = _MC_RUN.search(text)
    if run is None:
        raise ValueError(f"no 'Run time' line in memcaslap output: {text[-300:]!r}")
    ops_all, tps_all = int(run.group(2)), int(run.group(3))
    run_s = ops_all / tps_all if tps_all else float(run.group(1))
    counters = {name: float(value) for name, value in _MC_COUNTER.findall(text)}
    result = {
        "events": float(events),
        "run_s": run_s,
        "ops": events / run_s if run_s > 0 else 0.0,
        "avg_us": fields.get("Avg", 0.0),
        "cmd_get": counters.get("cmd_get", 0.0),
        "cmd_set": counters.get("cmd_set", 0.0),
        "get_misses": counters.get("get_misses", 0.0),
    }
    if dist:
        result["p50_us"] = log2_percentile(dist, 0.50)
        result["p99_us"] = log2_percentile(dist, 0.99)
    return result


def run_load(
    argv: list[str], timeout: float, *, keep_going: Callable[[], bool] | None = None
) -> tuple[int | None, str, str, float]:
    """Run a load generator; returns (exit status, stdout, stderr, wall seconds).

    The exit status is None when the run was killed: after ``timeout``
    seconds, or as soon as ``keep_going()`` returns False (the proxy under
    test died: a load generator facing a dead proxy can spin until killed).
    """
    started = time.monotonic()
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        out = err = b""
        while True:
            try:
                out, err = proc.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                late = time.monotonic() - started > timeout
                if late or (keep_going is not None and not keep_going()):
                    proc.kill()
                    out, err = proc.communicate()
                    return (
                        None,
                        out.decode("utf-8", "replace"),
                        err.decode("utf-8", "replace"),
                        time.monotonic() - started,
                    )
            except BaseException:
                proc.kill()
                raise
    return (
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
        time.monotonic() - started,
    )
