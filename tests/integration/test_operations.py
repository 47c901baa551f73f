"""Operating corenet-proxy like nutcracker: stats, -t, signals, metrics, sockets, pools.

Where nutcracker has a behaviour, the test runs Debian's nutcracker next to
corenet-proxy and compares; where corenet goes beyond it (SIGTERM drains,
``/metrics``), the test checks the documented behaviour.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import need_binary
from tests.servers import (
    DaemonFiles,
    encode_command,
    exited,
    free_port,
    memcache_client,
    poll_until,
    pool_config,
    read_until,
    redis_client,
    redis_raw,
    wait_for,
)
from tests.servers import run_corenet as run_cli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from tests.servers import CorenetProxy, Memcached, Nutcracker, RedisServer


HEADER_STRINGS = {"service", "source", "version"}


@pytest.fixture
def short_tmp() -> Iterator[str]:
    """A short directory for unix sockets (sun_path is 108 bytes at most)."""
    path = tempfile.mkdtemp(prefix="cn-ops-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# stats: layout, types and counters against nutcracker


RELOAD_FIGURES = ("config_generation", "reload_last", "reloads", "reload_failures")


def _shape(stats: dict[str, Any]) -> list[Any]:
    """Key order and nesting of a stats object, with each leaf's type."""
    return [
        (key, _shape(value) if isinstance(value, dict) else type(value).__name__)
        for key, value in stats.items()
    ]


@pytest.fixture
def each_proxy(
    corenet_proxy_factory: Callable[..., CorenetProxy],
    nutcracker_factory: Callable[..., Nutcracker],
) -> Callable[..., Iterator[CorenetProxy | Nutcracker]]:
    """``for proxy in each_proxy(config, flush=backends):`` the config served by
    nutcracker (stats every 100 ms), then by corenet-proxy; each one is
    stopped, and the ``flush`` redis backends emptied, before the next."""

    def each(
        config: dict[str, Any], *, flush: Sequence[RedisServer] = ()
    ) -> Iterator[CorenetProxy | Nutcracker]:
        for factory, extra in ((nutcracker_factory, ["-i", "100"]), (corenet_proxy_factory, [])):
            proxy = factory(config, extra)
            yield proxy
            proxy.stop()
            for backend in flush:
                backend.client().flushall()

    return each


@pytest.fixture
def alpha_proxy(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> Callable[..., CorenetProxy]:
    """``alpha_proxy(*args)``: corenet-proxy started with ``args``, its pool
    ``alpha`` in front of ``redis_server``."""

    def start(*args: str) -> CorenetProxy:
        return corenet_proxy_factory(pool_config("alpha", None, [redis_server.address]), list(args))

    return start


def _settled_stats(proxy: CorenetProxy | Nutcracker) -> dict[str, Any]:
    """Stats once no client is connected and two reads agree.

    nutcracker (run with ``-i 100``) publishes figures up to two intervals
    old, so its two reads are 0.25 s apart: if they agree, the first was
    already fresh.  corenet's figures are live.
    """
    interval = 0.25 if proxy.kind == "nutcracker" else 0.02
    previous: dict[str, Any] | None = None
    for _ in range(100):
        stats = proxy.stats()
        figures = {k: v for k, v in stats.items() if k not in ("uptime", "timestamp")}
        idle = all(v["client_connections"] == 0 for v in stats.values() if isinstance(v, dict))
        if idle and figures == previous:
            return stats
        previous = figures
        time.sleep(interval)
    raise AssertionError(f"stats of {proxy.describe()} never settled: {previous}")


def _key(i: int) -> str:
    # Well-mixed names: fnv1a_64 puts names differing in their last byte
    # close together on the ketama ring.
    return "key:" + hashlib.sha1(str(i).encode()).hexdigest()[:10]


def _redis_workload(address: str) -> None:
    client = redis_client(address)
    try:
        for i in range(20):
            assert client.set(_key(i), f"value-{i}") is True
            assert client.get(_key(i)) == f"value-{i}".encode()
        assert client.mget([_key(i) for i in range(10)])[3] == b"value-3"
        assert client.delete(*[_key(i) for i in range(10, 15)]) == 5
        assert client.ping() is True  # answered by the proxy: no server request
        pipe = client.pipeline(transaction=False)
        for _ in range(30):
            pipe.incr("counter")
        assert pipe.execute()[-1] == 30
    finally:
        client.close()
    # A raw client that sends a pipeline and closes.
    payload = b"".join(encode_command("GET", _key(i)) for i in range(5))
    assert redis_raw(address, payload, expect_replies=5).count(b"$7\r\nvalue-") == 5


def _memcache_workload(address: str) -> None:
    client = memcache_client(address)
    try:
        assert client.set("mkey", b"1", noreply=False) is True
        client.set("nkey", b"22")  # noreply: a request without a response
        assert client.get("mkey") == b"1"
        assert client.get_many(["mkey", "nkey", "absent"]) == {"mkey": b"1", "nkey": b"22"}
        assert client.delete("mkey", noreply=False) is True
    finally:
        client.close()


@pytest.mark.parametrize(
    "second",
    ["redis", "memcache"],
)
def test_stats_match_nutcracker(
    second: str,
    redis_servers: Callable[..., list[RedisServer]],
    memcached_servers: Callable[..., list[Memcached]],
    each_proxy: Callable[..., Iterator[CorenetProxy | Nutcracker]],
) -> None:
    reds = redis_servers(3)
    config = pool_config("alpha", None, [reds[0].address, reds[1].address])
    if second == "redis":
        config.update(pool_config("be", None, [reds[2].address]))
        workload = _redis_workload
    else:
        config.update(pool_config("be", None, [memcached_servers(1)[0].address], redis=False))
        workload = _memcache_workload
    results = {}
    for proxy in each_proxy(config, flush=reds):
        before = _settled_stats(proxy)
        _redis_workload(proxy.address("alpha"))
        workload(proxy.address("be"))
        after = _settled_stats(proxy)
        results[proxy.kind] = (before, after)
    (nc_before, nc_after), (cn_before, cn_after) = results["nutcracker"], results["corenet-proxy"]

    # Same keys, same nesting, same order (pools by name length: "be" first),
    # same value types; corenet's reload figures are four top-level numbers
    # right after nutcracker's header.
    assert list(cn_after)[7:] == [*RELOAD_FIGURES, "be", "alpha"]
    assert all(type(cn_after[key]) is int for key in RELOAD_FIGURES)
    for key in RELOAD_FIGURES:
        del cn_after[key], cn_before[key]
    assert _shape(cn_after) == _shape(nc_after)
    for key in HEADER_STRINGS:
        assert isinstance(cn_after[key], str)
    assert cn_after["service"] == nc_after["service"] == "nutcracker"
    assert cn_after["source"] == nc_after["source"] == socket.gethostname()
    assert cn_after["version"] == nc_after["version"] == "0.5.0"
    assert abs(cn_after["timestamp"] - time.time()) < 10
    assert 0 <= cn_after["uptime"] < 60

    # Counters moved by the same amounts (the harness's readiness probes
    # are in "before"), gauges are equal; fragments are corenet's own.
    def delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in after.items():
            if isinstance(value, dict):
                out[key] = delta(before[key], value)
            elif key in (
                "total_connections",
                "client_eof",
                "client_err",
                "requests",
                "request_bytes",
                "responses",
                "response_bytes",
                "server_eof",
                "server_err",
                "server_timedout",
                "forward_error",
                "server_ejects",
            ):
                out[key] = value - before[key]
            elif key not in ("uptime", "timestamp", "fragments"):
                out[key] = value
        return out

    ours, theirs = delta(cn_before, cn_after), delta(nc_before, nc_after)
    if second == "memcache":
        # nutcracker re-encodes a multi-key get as "get k1 k2 k3 \r\n" (a
        # space before the CRLF) even for one server; corenet forwards the
        # client's bytes.  One such get in the workload: one byte.
        server = next(k for k, v in ours["be"].items() if isinstance(v, dict))
        assert theirs["be"][server]["request_bytes"] - ours["be"][server]["request_bytes"] in (0, 1)
        ours["be"][server]["request_bytes"] = theirs["be"][server]["request_bytes"]
    assert ours == theirs
    assert nc_after["alpha"]["fragments"] == 0  # nutcracker never counts them
    assert cn_after["alpha"]["fragments"] >= 2  # the MGET and DEL spanned both servers
    responses = sum(s["responses"] for s in cn_after["alpha"].values() if isinstance(s, dict))
    assert responses >= 20 * 2 + 30 + 5


def test_stats_on_a_refused_connect_match_nutcracker(
    each_proxy: Callable[..., Iterator[CorenetProxy | Nutcracker]],
) -> None:
    # nutcracker counts the request at forward time (requests, request_bytes),
    # the failed connection as server_err, and the error reply it makes as
    # forward_error.
    config = pool_config("alpha", None, [f"127.0.0.1:{free_port()}:1 down"])
    figures = {}
    for proxy in each_proxy(config):
        before = _settled_stats(proxy)
        reply = redis_raw(proxy.address(), encode_command("GET", "k"), expect_replies=1)
        assert reply.startswith(b"-ERR Connection refused")
        after = _settled_stats(proxy)
        figures[proxy.kind] = {
            key: after["alpha"]["down"][key] - before["alpha"]["down"][key]
            for key in ("server_err", "requests", "request_bytes", "responses")
        }
        figures[proxy.kind]["forward_error"] = (
            after["alpha"]["forward_error"] - before["alpha"]["forward_error"]
        )
    assert figures["nutcracker"] == {
        "server_err": 1,
        "requests": 1,
        "request_bytes": 20,  # *2 $3 GET $1 k
        "responses": 0,
        "forward_error": 1,
    }
    assert figures["corenet-proxy"] == figures["nutcracker"]


def test_stats_bytes_are_nutcracker_layout(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    config = pool_config("alpha", None, [redis_server.address, "127.0.0.1:1:1 down"])
    proxy = corenet_proxy_factory(config)
    with socket.create_connection(("127.0.0.1", proxy.stats_port), timeout=5) as sock:
        data = read_until(sock)
    assert data.startswith(b'{"service":"nutcracker", "source":"')
    assert b', "alpha": {"client_eof":' in data
    # Servers in nutcracker's order ("down" is shorter), "},"-joined.
    assert b'"out_queue_bytes":0},"' + redis_server.address.encode() + b'": {' in data
    assert data.endswith(b"}}}\n")
    stats = json.loads(data)
    assert list(stats["alpha"])[6:] == ["down", redis_server.address]  # nutcracker's server order
    for pool in (v for v in stats.values() if isinstance(v, dict)):
        for value in pool.values():
            for leaf in value.values() if isinstance(value, dict) else [value]:
                assert type(leaf) is int


# --------------------------------------------------------------------------
# -t against nutcracker

_SERVER = "  servers:\n    - 127.0.0.1:6379:1\n"
_TEST_CONF_CASES = {
    "good": "alpha:\n  listen: 127.0.0.1:{p}\n  redis: true\n" + _SERVER,
    "bad_hash": "alpha:\n  listen: 127.0.0.1:{p}\n  redis: true\n  hash: sha9\n" + _SERVER,
    "unknown_key": "alpha:\n  listen: 127.0.0.1:{p}\n  colour: blue\n" + _SERVER,
    "zero_weight": "alpha:\n  listen: 127.0.0.1:{p}\n  redis: true\n"
    + _SERVER.replace(":1\n", ":0\n"),
    "dup_listen": (
        "a:\n  listen: 127.0.0.1:{p}\n  redis: true\n"
        + _SERVER
        + "b:\n  listen: 127.0.0.1:{p}\n  redis: true\n"
        + _SERVER.replace("6379", "6380")
    ),
    "no_servers": "alpha:\n  listen: 127.0.0.1:{p}\n  redis: true\n",
    "bad_yaml": "alpha:\n  listen: [\n",
    "empty": "",
}
_REASONS = {
    "bad_hash": ":4: pool 'alpha', key 'hash': \"sha9\" is not a valid hash function",
    "unknown_key": ":3: pool 'alpha', key 'colour': directive \"colour\" is unknown",
    "zero_weight": ":4: pool 'alpha', key 'servers': server \"127.0.0.1:6379:0\" has a zero weight",
    "dup_listen": ":6: pool 'b', key 'listen': \"127.0.0.1:",
    "no_servers": ":1: pool 'alpha', key 'servers': directive \"servers\" is missing",
    "bad_yaml": ":3: invalid YAML",
    "empty": ": configuration file has no pools",
}


@pytest.mark.parametrize("case", [*_TEST_CONF_CASES, "missing"])
def test_test_conf_verdict_and_status_match_nutcracker(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    nutcracker = need_binary(request.config, "nutcracker")
    name = f"{case}.yml"
    if case != "missing":
        (tmp_path / name).write_text(_TEST_CONF_CASES[case].format(p=free_port()))
    theirs = subprocess.run(
        [nutcracker, "-t", "-c", name],
        capture_output=True,
        text=True,
        timeout=10,
        cwd=tmp_path,
        check=False,
    )
    ours = run_cli("-t", "-c", name, cwd=tmp_path)
    assert ours.returncode == theirs.returncode == (0 if case == "good" else 1)
    assert ours.stdout == theirs.stdout == ""
    # The verdict line is nutcracker's, after the program name.
    verdict = theirs.stderr.splitlines()[0].removeprefix("nutcracker: ")
    assert ours.stderr.splitlines()[0] == f"corenet-proxy: {verdict}"
    # Beyond nutcracker: the reason, with the file and line.
    if case == "missing":
        assert f"{tmp_path / name}: cannot read configuration file" in ours.stderr
    elif case != "good":
        assert f"{tmp_path / name}{_REASONS[case]}" in ours.stderr
    else:
        assert len(ours.stderr.splitlines()) == 1


@pytest.mark.parametrize("flag", ["-D", "-V", "-h"])
def test_info_flags_like_nutcracker(flag: str, request: pytest.FixtureRequest) -> None:
    nutcracker = need_binary(request.config, "nutcracker")
    theirs = subprocess.run(
        [nutcracker, flag], capture_output=True, text=True, timeout=10, check=False
    )
    ours = run_cli(flag)
    # Everything on stderr, nothing on stdout, exit 0; the same header shape.
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout == ""
    our_lines, their_lines = ours.stderr.splitlines(), theirs.stderr.splitlines()
    assert our_lines[0].startswith("This is corenet-proxy-")
    assert their_lines[0] == "This is nutcracker-0.5.0"
    assert our_lines[1].startswith("async event backend: ")
    assert our_lines[2] == their_lines[2] == ""
    if flag == "-D":
        # The stats description is nutcracker's, byte for byte.
        assert our_lines[3:] == their_lines[3:]


def test_failed_start_prints_verdict_and_reason(tmp_path: Path) -> None:
    conf = tmp_path / "c.yml"
    conf.write_text(_TEST_CONF_CASES["bad_hash"].format(p=free_port()))
    result = run_cli("-c", str(conf), "-s", "0")
    assert result.returncode == 1
    assert f"configuration file '{conf}' syntax is invalid" in result.stderr
    assert '"sha9" is not a valid hash function' in result.stderr


# --------------------------------------------------------------------------
# signals: SIGTERM drains (foreground and -d -p), SIGHUP, SIGTTIN/SIGTTOU


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@contextlib.contextmanager
def _slow_backend(redis_server: RedisServer, seconds: float) -> Iterator[None]:
    """Block ``redis_server`` for ``seconds`` with DEBUG SLEEP on a direct connection."""
    host, port = redis_server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as direct:
        direct.sendall(encode_command("DEBUG", "SLEEP", str(seconds)))
        time.sleep(0.05)  # the server is now asleep
        yield
        direct.settimeout(10)
        assert direct.recv(64) == b"+OK\r\n"


def _drain_scenario(redis_server: RedisServer, address: str, terminate: Callable[[], None]) -> None:
    """A request in flight to a sleeping backend still gets its reply after SIGTERM."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(encode_command("SET", "warm", "up"))  # opens the server connection
        assert client.recv(64) == b"+OK\r\n"
        with _slow_backend(redis_server, 0.7):
            client.sendall(encode_command("SET", "drained", "yes"))
            time.sleep(0.05)  # forwarded, waiting at the server
            started = time.monotonic()
            terminate()
            # The listener closes at once, while the request is in flight.
            assert wait_for(lambda: _refused(int(port)), timeout=2)
            assert time.monotonic() - started < 0.55
            assert client.recv(64) == b"+OK\r\n"
            # ...and the drained client is closed after its last reply.
            assert client.recv(64) == b""
    assert redis_server.raw_command("GET", "drained") == b"$3\r\nyes\r\n"


def test_sigterm_drains_in_flight_requests_and_exits_0(
    redis_server: RedisServer, alpha_proxy: Callable[..., CorenetProxy], tmp_path: Path
) -> None:
    pid_file = tmp_path / "proxy.pid"
    proxy = alpha_proxy("-p", str(pid_file))
    assert pid_file.read_text() == str(proxy.pid)  # nutcracker's format: no newline
    _drain_scenario(redis_server, proxy.address(), lambda: proxy.send_signal(signal.SIGTERM))
    assert proxy.wait(timeout=5) == 0
    assert not pid_file.exists()
    log = proxy.log_text()
    assert "signal 15 (SIGTERM) received, draining" in log
    assert "draining 1 requests of " in log  # (and 1 or 2 clients: _refused may connect first)
    assert "drained, exiting" in log


def test_sigterm_drain_is_bounded(
    redis_server: RedisServer, alpha_proxy: Callable[..., CorenetProxy]
) -> None:
    proxy = alpha_proxy("--drain-timeout", "0.2")
    host, port = proxy.address().rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(encode_command("SET", "warm", "up"))
        assert client.recv(64) == b"+OK\r\n"
        with _slow_backend(redis_server, 0.7):
            client.sendall(encode_command("GET", "warm"))
            time.sleep(0.05)
            started = time.monotonic()
            proxy.send_signal(signal.SIGTERM)
            assert proxy.wait(timeout=5) == 0
            assert time.monotonic() - started < 0.6
            assert client.recv(64) == b""  # closed without the reply
    assert "drain timed out with 1 requests outstanding" in proxy.log_text()


def test_sigint_exits_at_once_with_status_1(
    alpha_proxy: Callable[..., CorenetProxy], tmp_path: Path
) -> None:
    pid_file = tmp_path / "proxy.pid"
    proxy = alpha_proxy("-p", str(pid_file))
    proxy.send_signal(signal.SIGINT)
    assert proxy.wait(timeout=5) == 1  # nutcracker exits 1 on SIGINT
    assert not pid_file.exists()
    assert "signal 2 (SIGINT) received, exiting" in proxy.log_text()


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    return wait_for(lambda: exited(pid), timeout=timeout)


def test_daemon_writes_pid_file_drains_on_sigterm_and_removes_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    daemon = DaemonFiles.write(tmp_path, pool_config("alpha", port, [redis_server.address]))
    pid_file, log = daemon.pid_file, daemon.log
    result = run_cli(*daemon.args())
    assert result.returncode == 0, result.stderr
    # The command returns once the daemon is ready: pid file written, port bound.
    pid = int(pid_file.read_text())
    try:
        assert pid != os.getpid()
        assert f"started on pid {pid}" in log.read_text()
        _drain_scenario(redis_server, f"127.0.0.1:{port}", lambda: os.kill(pid, signal.SIGTERM))
        assert _wait_gone(pid)
        assert not pid_file.exists()
        assert "drained, exiting" in log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        assert _wait_gone(pid)


def test_daemon_start_failure_is_reported_by_the_command(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        conf = tmp_path / "c.yml"
        conf.write_text(
            f"alpha:\n  listen: 127.0.0.1:{port}\n  redis: true\n  servers:\n    - 127.0.0.1:1:1\n"
        )
        pid_file = tmp_path / "proxy.pid"
        result = run_cli("-d", "-c", str(conf), "-p", str(pid_file), "-s", "0")
    assert result.returncode == 1
    assert "cannot listen" in result.stderr
    assert not pid_file.exists()


def test_sighup_reopens_a_moved_log_file(
    alpha_proxy: Callable[..., CorenetProxy], tmp_path: Path
) -> None:
    log = tmp_path / "proxy.log"
    proxy = alpha_proxy("-o", str(log))
    assert wait_for(lambda: "started on pid" in log.read_text())
    rotated = tmp_path / "proxy.log.1"
    log.rename(rotated)  # what logrotate does before its postrotate kill -HUP
    proxy.send_signal(signal.SIGHUP)
    assert wait_for(log.exists)
    proxy.send_signal(signal.SIGTTIN)
    assert wait_for(lambda: "up log level to 6" in log.read_text())
    assert "signal 1 (SIGHUP) received, reopening log file" in rotated.read_text()
    assert "SIGTTIN" not in rotated.read_text()
    assert oct(log.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sigttin_sigttou_change_verbosity(
    alpha_proxy: Callable[..., CorenetProxy], tmp_path: Path
) -> None:
    log = tmp_path / "proxy.log"
    proxy = alpha_proxy("-o", str(log), "-v", "5")
    info_line = "INFO pool alpha: client fd"  # a protocol error, logged at INFO

    def bad_request() -> None:
        reply = redis_raw(proxy.address(), b"*1\r\n$x\r\n")  # the proxy answers and closes
        assert reply.startswith(b"-ERR Protocol error")

    bad_request()
    assert info_line not in log.read_text()  # INFO is above -v 5 (notice)
    proxy.send_signal(signal.SIGTTIN)
    assert wait_for(lambda: "up log level to 6" in log.read_text())
    bad_request()
    assert log.read_text().count(info_line) == 1
    proxy.send_signal(signal.SIGTTOU)
    assert wait_for(lambda: "down log level to 5" in log.read_text())
    bad_request()
    assert log.read_text().count(info_line) == 1
    # Down to 0 (emergencies only), the level line is still written, as
    # nutcracker's log_safe does; at 0 another SIGTTOU changes nothing.
    for level in (4, 3, 2, 1, 0):
        proxy.send_signal(signal.SIGTTOU)
        assert wait_for(lambda level=level: f"down log level to {level}" in log.read_text())
    proxy.send_signal(signal.SIGTTOU)
    assert wait_for(lambda: log.read_text().count("signal 22 (SIGTTOU) received") == 7)
    assert log.read_text().count("down log level to") == 6


# --------------------------------------------------------------------------
# Prometheus /metrics


def _scrape(port: int, path: str = "/metrics") -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        body = response.read().decode()
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def test_metrics_endpoint_parses_and_moves_with_traffic(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    reds = redis_servers(2)
    metrics_port = free_port()
    config = pool_config("alpha", None, [r.address for r in reds])
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    gauge = ("corenet_pool_client_connections", (("pool", "alpha"),))
    # The harness's readiness probe may still be closing: wait until it is gone.
    before, _ = poll_until(
        lambda: (lambda page: page if page[gauge] == 0 else None)(_scrape(metrics_port)),
        "the readiness probe's connection to close",
    )

    def server_total(samples: dict[str, Any], name: str) -> float:
        return sum(
            v for (n, labels), v in samples.items() if n == name and ("pool", "alpha") in labels
        )

    assert (
        before[("corenet_build_info", (("nutcracker_version", "0.5.0"), ("version", "0.1.0")))] == 1
    )
    for red in reds:
        labels = (("pool", "alpha"), ("server", red.address))
        for name in (
            "corenet_server_requests_total",
            "corenet_server_in_queue",
            "corenet_server_ejected",
        ):
            assert (name, labels) in before
    client = proxy.client()
    for i in range(50):
        client.set(_key(i), "x")
    assert len(client.mget([_key(i) for i in range(50)])) == 50
    during = _scrape(metrics_port)
    assert during[("corenet_pool_client_connections", (("pool", "alpha"),))] == 1
    client.close()
    assert wait_for(
        lambda: (
            _scrape(metrics_port)[("corenet_pool_client_connections", (("pool", "alpha"),))] == 0
        )
    )
    after = _scrape(metrics_port)
    assert (
        server_total(after, "corenet_server_requests_total")
        - server_total(before, "corenet_server_requests_total")
        == 52
    )
    assert server_total(after, "corenet_server_responses_total") == server_total(
        after, "corenet_server_requests_total"
    )
    assert after[("corenet_pool_fragments_total", (("pool", "alpha"),))] == 2
    assert (
        after[("corenet_pool_client_eof_total", (("pool", "alpha"),))]
        > before[("corenet_pool_client_eof_total", (("pool", "alpha"),))]
    )
    assert (
        after[("corenet_connections_opened_total", ())]
        > before[("corenet_connections_opened_total", ())]
    )
    # The same figures as the nutcracker stats port.
    stats = proxy.stats()
    for red in reds:
        labels = (("pool", "alpha"), ("server", red.address))
        assert (
            after[("corenet_server_requests_total", labels)]
            == stats["alpha"][red.address]["requests"]
        )
    assert after[("corenet_connections", ())] == stats["curr_connections"]
    # Other paths and methods.
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/nope", timeout=5)
    missing.value.close()
    assert missing.value.code == 404
    post = urllib.request.Request(
        f"http://127.0.0.1:{metrics_port}/metrics", data=b"x", method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=5)
    refused.value.close()
    assert refused.value.code == 405


def test_metrics_latency_histogram_counts_requests(
    alpha_proxy: Callable[..., CorenetProxy],
) -> None:
    metrics_port = free_port()
    proxy = alpha_proxy("--metrics-port", str(metrics_port))
    client = proxy.client()
    for i in range(20):
        client.set(f"h{i}", "x")
    client.ping()  # answered locally: not observed
    client.close()
    samples = _scrape(metrics_port)
    assert samples[("corenet_pool_request_duration_seconds_count", (("pool", "alpha"),))] == 20
    assert (
        samples[
            ("corenet_pool_request_duration_seconds_bucket", (("le", "+Inf"), ("pool", "alpha")))
        ]
        == 20
    )
    assert 0 < samples[("corenet_pool_request_duration_seconds_sum", (("pool", "alpha"),))] < 20


def test_latency_histogram_renders_cumulative_buckets() -> None:
    from prometheus_client import generate_latest

    from corenet.proxy.app import Proxy, ProxyOptions
    from corenet.proxy.config import parse_config
    from corenet.proxy.metrics import (
        LATENCY_BUCKETS,
        LatencyHistogram,
        ProxyCollector,
        build_registry,
    )

    config = parse_config(
        "alpha:\n  listen: 127.0.0.1:1\n  redis: true\n  servers:\n    - 127.0.0.1:2:1\n"
    )
    proxy = Proxy(config, ProxyOptions(stats_port=None, metrics_port=1), version="9.9")
    try:
        histogram = proxy.pools[0].latency  # type: ignore[attr-defined]
        assert isinstance(histogram, LatencyHistogram)
        for seconds in (0.00005, 0.0001, 0.0003, 0.002, 7.0, 11.0):
            histogram.observe(seconds)
        body = generate_latest(
            build_registry(ProxyCollector(proxy.pools, version="9.9"), process_metrics=False)
        )
    finally:
        proxy.close()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    buckets = {
        s.labels["le"]: s.value
        for s in families["corenet_pool_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert len(buckets) == len(LATENCY_BUCKETS) + 1
    assert buckets["0.0001"] == 2  # bounds are inclusive
    assert buckets["0.0005"] == 3
    assert buckets["0.0025"] == 4
    assert buckets["10.0"] == 5
    assert buckets["+Inf"] == 6
    total = next(
        s.value
        for s in families["corenet_pool_request_duration_seconds"].samples
        if s.name.endswith("_sum")
    )
    assert total == pytest.approx(18.00245)


# --------------------------------------------------------------------------
# unix sockets, for pools and for backends


@pytest.mark.parametrize("perm", [0o666, 0o600, 0o640])
def test_unix_socket_listener_with_permissions(
    perm: int,
    short_tmp: str,
    redis_server: RedisServer,
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    path = os.path.join(short_tmp, "proxy.sock")
    proxy = corenet_proxy_factory(
        pool_config("alpha", f"{path} {perm:04o}", [redis_server.address])
    )
    mode = os.stat(path).st_mode
    assert mode & 0o777 == perm
    client = redis_client(path)
    try:
        assert client.set("over-unix", "1") is True
        assert client.get("over-unix") == b"1"
    finally:
        client.close()
    assert redis_server.raw_command("GET", "over-unix") == b"$1\r\n1\r\n"
    proxy.stop()
    assert not os.path.exists(path)  # removed on exit (nutcracker leaves it)


def test_unix_socket_backend_matches_nutcracker(
    short_tmp: str,
    redis_servers: Callable[..., list[RedisServer]],
    each_proxy: Callable[..., Iterator[CorenetProxy | Nutcracker]],
) -> None:
    backend_path = os.path.join(short_tmp, "redis.sock")
    (red,) = redis_servers(1, extra_args=["--unixsocket", backend_path, "--unixsocketperm", "700"])
    config = pool_config("alpha", None, [f"{backend_path}:1"])
    stats = {}
    for proxy in each_proxy(config):
        client = proxy.client()
        try:
            assert client.set(f"via-{proxy.kind}", "1") is True
            assert client.get(f"via-{proxy.kind}") == b"1"
        finally:
            client.close()
        clients = red.raw_command("CLIENT", "LIST").decode()
        assert f"addr={backend_path}:0" in clients
        assert "flags=U" in clients
        stats[proxy.kind] = _settled_stats(proxy)
    # nutcracker names a socket server "path:" (the empty port); so does corenet.
    assert (
        list(stats["corenet-proxy"]["alpha"])[6:]
        == list(stats["nutcracker"]["alpha"])[6:]
        == [f"{backend_path}:"]
    )
    assert red.keys_count() == 2


# --------------------------------------------------------------------------
# several pools in one process


def test_multiple_pools_route_independently_like_nutcracker(
    redis_servers: Callable[..., list[RedisServer]],
    each_proxy: Callable[..., Iterator[CorenetProxy | Nutcracker]],
) -> None:
    reds = redis_servers(4)
    config = pool_config("ketama", None, [reds[0].address, reds[1].address])
    config.update(
        pool_config(
            "modula",
            None,
            [f"{reds[2].address}:1", f"{reds[3].address}:2"],
            hash="md5",
            distribution="modula",
            hash_tag="{}",
        )
    )
    names = [_key(i) for i in range(120)] + [f"{{tag}}:{i}" for i in range(10)]
    placements = {}
    for proxy in each_proxy(config, flush=reds):
        for pool in ("ketama", "modula"):
            client = proxy.client(pool)
            pipe = client.pipeline(transaction=False)
            for key in names:
                pipe.set(f"{pool}/{key}", pool)
            assert all(pipe.execute())
            client.close()
        placement = [sorted(k.decode() for k in r.client().keys("*")) for r in reds]
        placements[proxy.kind] = placement
    ours = placements["corenet-proxy"]
    assert ours == placements["nutcracker"]
    # Each pool's keys stay on its own servers, spread over both of them...
    assert all(k.startswith("ketama/") for k in ours[0] + ours[1])
    assert all(k.startswith("modula/") for k in ours[2] + ours[3])
    assert min(len(ours[0]), len(ours[1]), len(ours[2]), len(ours[3])) > 10
    # ...and the hash tag keeps {tag} keys together in the modula pool.
    tagged = [i for i in (2, 3) if any("{tag}" in k for k in ours[i])]
    assert len(tagged) == 1


def test_redis_and_memcache_pools_in_one_process(
    redis_server: RedisServer,
    memcached_server: Memcached,
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    config = pool_config("cache", None, [memcached_server.address], redis=False)
    config.update(pool_config("store", None, [redis_server.address]))
    proxy = corenet_proxy_factory(config)
    _redis_workload(proxy.address("store"))
    _memcache_workload(proxy.address("cache"))
    stats = proxy.stats()
    assert stats["cache"][memcached_server.address]["requests"] > 0
    assert stats["store"][redis_server.address]["requests"] > 0
