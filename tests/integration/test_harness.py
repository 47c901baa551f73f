"""The real-process harness (corenet.testing.process, corenet.proxy.harness and
corenet.proxy.fixtures, as tests/servers.py and tests/conftest.py use them)
against the real binaries."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import textwrap
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from corenet.proxy.stats import HEADER_FIELDS, POOL_STATS, SERVER_STATS
from corenet.testing import process
from tests import servers
from tests.conftest import need_binary
from tests.servers import (
    CorenetProxy,
    Memcached,
    Nutcracker,
    Process,
    RedisServer,
    ServerPool,
    ServerStartError,
    count_resp_replies,
    dump_config,
    encode_command,
    memcache_client,
    memcache_raw,
    pool_config,
    redis_raw,
    resp_reply_end,
    running_processes,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def assert_dead(pid: int | None) -> None:
    """The PID was reaped: no process, not even a zombie, has it."""
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def spread_keys(n: int) -> list[bytes]:
    # nutcracker's fnv1a_64 multiplies by the small prime 0x1b3 last, so keys
    # differing only in their last byte ("k1", "k2", ...) hash close together
    # and often all land on one server: use well-mixed keys.
    return [b"key:" + hashlib.sha1(b"%d" % i).hexdigest().encode() for i in range(n)]


@pytest.fixture
def binaries(pytestconfig: pytest.Config) -> None:
    """For tests that start servers themselves instead of through the fixtures."""
    for name in ("redis-server", "memcached", "nutcracker"):
        need_binary(pytestconfig, name)


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 held by us, to make servers collide with it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((servers.LOOPBACK, 0))
        sock.listen(1)
        yield sock


def ports_then_real(first: int) -> Callable[[], int]:
    """A free_port replacement handing out ``first`` once, then real free ports."""
    real = process.free_port
    handed: list[int] = []

    def fake() -> int:
        port = first if not handed else real()
        handed.append(port)
        return port

    return fake


# --------------------------------------------------------------------------
# pure helpers

line_text = st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
resp_replies = st.recursive(
    st.one_of(
        line_text.map(lambda b: b"+" + b + b"\r\n"),
        line_text.map(lambda b: b"-ERR " + b + b"\r\n"),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: b":%d\r\n" % i),
        st.binary(max_size=40).map(lambda b: b"$%d\r\n%s\r\n" % (len(b), b)),
        st.just(b"$-1\r\n"),
        st.just(b"*-1\r\n"),
    ),
    lambda children: st.lists(children, max_size=5).map(
        lambda items: b"*%d\r\n" % len(items) + b"".join(items)
    ),
    max_leaves=20,
)


@given(st.lists(resp_replies, min_size=1, max_size=5), st.data())
def test_count_resp_replies_counts_complete_replies(
    replies: list[bytes], data: st.DataObject
) -> None:
    wire = b"".join(replies)
    assert count_resp_replies(wire) == len(replies)
    # any strict prefix of the last reply leaves it uncounted
    cut = data.draw(st.integers(0, len(replies[-1]) - 1))
    assert count_resp_replies(wire[: len(wire) - len(replies[-1]) + cut]) == len(replies) - 1
    assert resp_reply_end(replies[0]) == len(replies[0])


def test_count_resp_replies_vectors() -> None:
    assert count_resp_replies(b"") == 0
    assert count_resp_replies(b"+OK\r\n:1\r\n$3\r\nfoo\r\n") == 3
    assert count_resp_replies(b"*2\r\n$1\r\na\r\n*1\r\n$-1\r\n") == 1
    assert count_resp_replies(b"*2\r\n$1\r\na\r\n*1\r\n") == 0
    assert count_resp_replies(b"$3\r\nfoo\r") == 0
    assert count_resp_replies(b"*0\r\n*-1\r\n$0\r\n\r\n") == 3
    with pytest.raises(ValueError, match="RESP2 type"):
        count_resp_replies(b"?what\r\n")
    with pytest.raises(ValueError, match="CRLF"):
        count_resp_replies(b"$1\r\nab\r\n")


def test_encode_command() -> None:
    assert encode_command("SET", b"k", 12) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"


def test_pool_config_shape() -> None:
    cfg = pool_config(
        "alpha",
        22121,
        ["127.0.0.1:7000", "127.0.0.1:7001:3", "127.0.0.1:7002:1 named", "/tmp/r.sock"],
        hash="murmur",
        timeout=400,
    )
    assert cfg == {
        "alpha": {
            "listen": "127.0.0.1:22121",
            "redis": True,
            "hash": "murmur",
            "distribution": "ketama",
            "timeout": 400,
            "servers": [
                "127.0.0.1:7000:1",
                "127.0.0.1:7001:3",
                "127.0.0.1:7002:1 named",
                "/tmp/r.sock:1",
            ],
        }
    }
    assert yaml.safe_load(dump_config(cfg)) == cfg
    memcache = pool_config("beta", None, ["127.0.0.1:11211"], redis=False)
    assert memcache["beta"]["redis"] is False
    assert memcache["beta"]["listen"].startswith("127.0.0.1:")


# --------------------------------------------------------------------------
# backends


def test_two_redis_servers_set_get(
    redis_servers: Callable[..., list[RedisServer]],
) -> None:
    first, second = redis_servers(2)
    assert first.address != second.address
    assert first.address == f"127.0.0.1:{first.port}"
    with first.client() as c1, second.client() as c2:
        assert c1.set(b"k", b"one") is True
        assert c2.set(b"k", b"two") is True
        assert c1.get(b"k") == b"one"
        assert c2.get(b"k") == b"two"
        assert c2.set(b"only-two", b"x") is True
    assert first.keys_count() == 1
    assert second.keys_count() == 2
    assert first.raw_command("GET", "k") == b"$3\r\none\r\n"
    assert first.raw_command("GET", "missing") == b"$-1\r\n"


def test_redis_raw_is_byte_exact(redis_server: RedisServer) -> None:
    assert redis_server.keys_count() == 0
    payload = (
        encode_command("PING")
        + encode_command("SET", "k", "v")
        + encode_command("GET", "k")
        + encode_command("DEL", "k", "nope")
        + encode_command("MGET", "k", "nope")
    )
    reply = redis_raw(redis_server.address, payload, expect_replies=5)
    assert reply == b"+PONG\r\n+OK\r\n$1\r\nv\r\n:1\r\n*2\r\n$-1\r\n$-1\r\n"
    # inline commands and read-to-EOF after QUIT
    assert redis_raw(redis_server.address, b"PING\r\nQUIT\r\n") == b"+PONG\r\n+OK\r\n"
    with pytest.raises(servers.RawReplyTimeout) as excinfo:
        redis_raw(redis_server.address, b"PING\r\n", expect_replies=2, timeout=0.3)
    assert excinfo.value.data == b"+PONG\r\n"


@pytest.mark.usefixtures("binaries")
def test_server_pool_resets_and_replaces_servers() -> None:
    pool: ServerPool[RedisServer] = ServerPool(RedisServer)
    try:
        (server,) = pool.acquire(1)
        with server.client() as client:
            client.set(b"k", b"v")
            client.eval("return 1", 0)
        pool.release([server])
        (again,) = pool.acquire(1)
        assert again is server
        assert server.keys_count() == 0
        assert (
            server.raw_command("SCRIPT", "EXISTS", hashlib.sha1(b"return 1").hexdigest())
            == b"*1\r\n:0\r\n"
        )
        # a changed configuration is not handed out again
        assert server.raw_command("CONFIG", "SET", "maxmemory", "1000000") == b"+OK\r\n"
        pool.release([server])
        assert not server.alive()
        assert_dead(server.pid)
        # nor is a dead server
        (fresh,) = pool.acquire(1)
        assert fresh is not server
        fresh.stop()
        pool.release([fresh])
        (newest,) = pool.acquire(1)
        assert newest is not fresh
        assert newest.alive()
    finally:
        pool.close()
    assert pool.started
    for started in pool.started:
        assert_dead(started.pid)


def test_memcached_set_get(memcached_servers: Callable[..., list[Memcached]]) -> None:
    first, second = memcached_servers(2)
    assert first.address != second.address
    with (
        closing(memcache_client(first.address)) as m1,
        closing(memcache_client(second.address)) as m2,
    ):
        assert m1.set("k", b"one", noreply=False) is True
        assert m2.set("k", b"two", noreply=False) is True
        assert m1.get("k") == b"one"
        assert m2.get("k") == b"two"
    reply = memcache_raw(first.address, b"set r 5 0 2\r\nhi\r\nget r k\r\n", until=b"END\r\n")
    assert reply == b"STORED\r\nVALUE r 5 2\r\nhi\r\nVALUE k 0 3\r\none\r\nEND\r\n"


# --------------------------------------------------------------------------
# nutcracker


def test_nutcracker_redis_pool(
    redis_servers: Callable[..., list[RedisServer]],
    nutcracker_factory: Callable[..., Nutcracker],
) -> None:
    backends = redis_servers(2)
    cfg = pool_config("alpha", None, [b.address for b in backends])
    proxy = nutcracker_factory(cfg, ["-i", "100"])  # stats aggregate every 100 ms
    assert proxy.alive()
    assert proxy.pools == ["alpha"]
    keys = spread_keys(40)
    with proxy.client() as client:
        assert client.ping() is True
        for key in keys:
            assert client.set(key, key[::-1]) is True
        for key in keys:
            assert client.get(key) == key[::-1]
        assert client.mget(keys[:5]) == [k[::-1] for k in keys[:5]]
    counts = [b.keys_count() for b in backends]
    assert sum(counts) == len(keys)
    assert all(counts), counts  # sharded over both servers

    def requests_seen() -> bool:
        pool_stats = proxy.stats()["alpha"]
        return sum(int(pool_stats[b.address]["requests"]) for b in backends) >= 2 * len(keys)

    assert servers.wait_for(requests_seen, timeout=5)
    stats = proxy.stats()
    # corenet.proxy.stats's field lists name what nutcracker really reports.
    for name in HEADER_FIELDS:
        assert name in stats, name
    assert stats["service"] == "nutcracker"
    assert stats["version"] == "0.5.0"
    pool = stats["alpha"]
    for name in POOL_STATS:
        assert name in pool, name
    for backend in backends:
        for name in SERVER_STATS:
            assert name in pool[backend.address], name


def test_nutcracker_memcache_pool(
    memcached_servers: Callable[..., list[Memcached]],
    nutcracker_factory: Callable[..., Nutcracker],
) -> None:
    backends = memcached_servers(2)
    cfg = pool_config("mc", None, [b.address for b in backends], redis=False)
    proxy = nutcracker_factory(dump_config(cfg))  # YAML text works too
    keys = [k.decode() for k in spread_keys(40)]
    with closing(proxy.memcache_client()) as client:
        for key in keys:
            assert client.set(key, key.encode(), noreply=False) is True
        assert client.get_many(keys) == {key: key.encode() for key in keys}
    found = []
    for backend in backends:
        with closing(memcache_client(backend.address)) as direct:
            found.append(direct.get_many(keys))
    assert sorted(k for part in found for k in part) == sorted(keys)
    assert all(found)
    assert "mc" in proxy.stats()


@pytest.mark.usefixtures("binaries")
def test_stop_reaps_every_pid(redis_server: RedisServer) -> None:
    redis_proc = RedisServer()
    mc = Memcached()
    nc = Nutcracker(pool_config("p", None, [redis_server.address]))
    procs: list[Process] = [redis_proc, mc, nc]
    pids = [proc.pid for proc in procs]
    assert all(proc.alive() for proc in procs)
    assert set(procs) <= set(running_processes())
    for proc in procs:
        assert proc.stop() is not None
        assert not proc.alive()
        assert not os.path.exists(proc.tmpdir)
        assert proc.stop() == proc.returncode  # idempotent
    for pid in pids:
        assert_dead(pid)
    assert not set(procs) & set(running_processes())
    assert "nutcracker-0.5.0" in nc.log_tail()  # the log survives stop()
    with pytest.raises(RuntimeError, match="stopped"):
        redis_proc.start()


@pytest.mark.usefixtures("binaries")
def test_context_manager_stops() -> None:
    with RedisServer() as server:
        pid = server.pid
        assert server.raw_command("PING") == b"+PONG\r\n"
    assert_dead(pid)


@pytest.mark.usefixtures("binaries")
def test_invalid_nutcracker_config_fails_with_log_tail(redis_server: RedisServer) -> None:
    cfg = pool_config("bad", None, [redis_server.address], hash="no_such_hash")
    with pytest.raises(ServerStartError) as excinfo:
        Nutcracker(cfg)
    error = excinfo.value
    assert 'directive "hash" is not a valid hash' in str(error)
    assert error.returncode == 1
    assert_dead(error.pid)
    assert not [p for p in running_processes() if p.pid == error.pid]


@pytest.mark.usefixtures("binaries")
def test_nutcracker_taken_stats_port_is_retried(
    redis_server: RedisServer,
    listening_socket: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = pool_config("alpha", None, [redis_server.address])
    taken = listening_socket.getsockname()[1]
    monkeypatch.setattr(process, "free_port", ports_then_real(taken))
    with Nutcracker(cfg) as proxy:
        assert len(proxy.pids) == 2
        assert proxy.stats_port != taken
        assert proxy.stats()["service"] == "nutcracker"
        assert "Address already in use" in proxy.log_text()
    for pid in proxy.pids:
        assert_dead(pid)


@pytest.mark.usefixtures("binaries")
def test_nutcracker_taken_listen_port_moves_pool(
    redis_server: RedisServer, listening_socket: socket.socket
) -> None:
    taken = listening_socket.getsockname()[1]
    cfg = pool_config("alpha", taken, [redis_server.address])
    with Nutcracker(cfg) as proxy:
        assert len(proxy.pids) == 2
        assert proxy.address("alpha") != f"127.0.0.1:{taken}"
        assert cfg["alpha"]["listen"] == f"127.0.0.1:{taken}"  # the caller's dict is untouched
        assert redis_raw(proxy.address(), encode_command("PING"), expect_replies=1) == b"+PONG\r\n"


@pytest.mark.usefixtures("binaries")
def test_redis_taken_port_is_retried(
    listening_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = listening_socket.getsockname()[1]
    monkeypatch.setattr(process, "free_port", ports_then_real(taken))
    with RedisServer() as server:
        assert server.port != taken
        assert len(server.pids) == 2
    assert_dead(server.pids[0])
    assert_dead(server.pids[1])


@pytest.mark.usefixtures("binaries")
def test_fixed_taken_port_fails(listening_socket: socket.socket) -> None:
    taken = listening_socket.getsockname()[1]
    with pytest.raises(ServerStartError, match="Address already in use") as excinfo:
        RedisServer(port=taken)
    assert_dead(excinfo.value.pid)


# --------------------------------------------------------------------------
# the Process machinery with scripted children


def test_not_ready_in_time_is_killed() -> None:
    script = "import time; print('child says hi', flush=True); time.sleep(60)"
    with pytest.raises(ServerStartError, match="not ready after 0.5s") as excinfo:
        Process([sys.executable, "-c", script], ready=lambda proc: False, start_timeout=0.5)
    assert "child says hi" in excinfo.value.log_tail
    assert_dead(excinfo.value.pid)


def test_exit_during_start_is_reported() -> None:
    script = "import sys; print('boom: bad things', file=sys.stderr); sys.exit(3)"
    with pytest.raises(ServerStartError, match="exited with status 3") as excinfo:
        Process([sys.executable, "-c", script], ready=lambda proc: False)
    assert "boom: bad things" in str(excinfo.value)
    assert excinfo.value.returncode == 3


def test_stop_escalates_to_sigkill() -> None:
    script = textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("child-" + "ready", flush=True)
        time.sleep(60)
    """)
    proc = Process(
        [sys.executable, "-c", script],
        ready=lambda p: "child-ready" in p.log_text(),
        start_timeout=10,
    )
    try:
        assert proc.alive()
        assert proc.stop(timeout=0.3) == -signal.SIGKILL
    finally:
        proc.stop()
    assert_dead(proc.pid)


FAKE_PROXY = textwrap.dedent("""
    import json, os, socket, sys, time, yaml
    args = sys.argv[1:]
    conf = yaml.safe_load(open(args[args.index("-c") + 1]))
    if "fail" in conf:
        print("fake proxy: cannot start", file=sys.stderr)
        sys.exit(2)
    socks = []
    for pool in conf.values():
        host, port = pool["listen"].rsplit(":", 1)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        s.listen()
        socks.append(s)
    env = os.environ.get("CORENET_DISABLE_PLUGIN_AUTOLOAD")
    print(json.dumps({"argv": args, "env": env}), flush=True)
    time.sleep(60)
""")


def test_corenet_proxy_command_line_and_env(
    tmp_path: Path, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    script = tmp_path / "fake_proxy.py"
    script.write_text(FAKE_PROXY)
    assert CorenetProxy({}, start=False).command == [sys.executable, "-m", "corenet"]
    cfg = {**pool_config("a", None, ["127.0.0.1:1"]), **pool_config("b", None, ["127.0.0.1:2"])}
    proxy = corenet_proxy_factory(
        cfg,
        ["-v", "6"],
        command=[sys.executable, str(script)],
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert proxy.env is not None
    assert proxy.env["CORENET_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    line = next(x for x in proxy.log_text().splitlines() if x.startswith("{"))
    seen = yaml.safe_load(line)
    assert seen == {
        "argv": [
            "-c",
            proxy.config_path,
            "-s",
            str(proxy.stats_port),
            "-a",
            "127.0.0.1",
            "-i",
            "0",
            "-v",
            "6",
        ],
        "env": "1",
    }
    assert yaml.safe_load(Path(proxy.config_path).read_text()) == cfg
    assert {proxy.address("a"), proxy.address("b")} == {cfg["a"]["listen"], cfg["b"]["listen"]}


def test_corenet_proxy_early_exit(tmp_path: Path) -> None:
    script = tmp_path / "fake_proxy.py"
    script.write_text(FAKE_PROXY)
    cfg = {**pool_config("a", None, ["127.0.0.1:1"]), "fail": {}}
    with pytest.raises(ServerStartError, match="fake proxy: cannot start") as excinfo:
        CorenetProxy(cfg, command=[sys.executable, str(script)])
    assert_dead(excinfo.value.pid)


def test_need_binary_skips_or_fails(
    pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("corenet.proxy.fixtures.find_binary", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("CORENET_REQUIRE_SERVERS", raising=False)
    if not pytestconfig.getoption("--require-servers"):
        with pytest.raises(pytest.skip.Exception, match="not installed"):
            need_binary(pytestconfig, "redis-server")
    monkeypatch.setenv("CORENET_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match="servers are required"):
        need_binary(pytestconfig, "redis-server")
    monkeypatch.delenv("CORENET_REQUIRE_SERVERS")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="servers are required"):
        need_binary(pytestconfig, "redis-server")


@pytest.mark.usefixtures("binaries")
def test_unparsable_listen_fails_with_log_tail(redis_server: RedisServer) -> None:
    cfg = pool_config("bad", "no-port-here", [redis_server.address])
    with pytest.raises(ServerStartError, match="exited with status 1") as excinfo:
        Nutcracker(cfg)
    assert 'directive "listen" has an invalid "hostname:port"' in excinfo.value.log_tail
    assert_dead(excinfo.value.pid)


# --------------------------------------------------------------------------
# the generic Process on ports, groups, the benchmark's and demo's needs

LISTENER = textwrap.dedent("""
    import socket, sys, time
    s = socket.socket()
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
    print("listening", flush=True)
    time.sleep(60)
""")


def test_callable_argv_gets_a_free_port_and_a_retry(
    listening_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = listening_socket.getsockname()[1]
    monkeypatch.setattr(process, "free_port", ports_then_real(taken))
    with Process(lambda port: [sys.executable, "-c", LISTENER, str(port)]) as proc:
        assert len(proc.pids) == 2  # the first attempt lost the port
        assert proc.port not in (0, taken)
        assert "Address already in use" in proc.log_text()
        assert process.owns_port(proc.pid, proc.port)
        assert proc.summary() == {
            "name": "process",
            "pid": proc.pid,
            "port": proc.port,
            "argv": [sys.executable, "-c", LISTENER, str(proc.port)],
        }
    for pid in proc.pids:
        assert_dead(pid)


def test_a_port_served_by_another_pid_is_named(listening_socket: socket.socket) -> None:
    taken = listening_socket.getsockname()[1]
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(ServerStartError, match="not through a socket of PID") as excinfo:
        Process(sleeper, port=taken, start_timeout=0.5)
    assert_dead(excinfo.value.pid)


def test_free_port_prefers_a_free_preferred_port(listening_socket: socket.socket) -> None:
    wanted = process.free_port()
    assert process.free_port(wanted) == wanted
    taken = listening_socket.getsockname()[1]
    other = process.free_port(taken)
    assert other != taken
    assert process.port_is_free(other)


def test_group_stops_newest_first_and_keeps_history(tmp_path: Path) -> None:
    order = tmp_path / "order"
    script = textwrap.dedent(f"""
        import signal, sys, time
        def bye(*_):
            open({str(order)!r}, "a").write(sys.argv[1] + "\\n")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("child-" + "up", flush=True)
        time.sleep(60)
    """)
    with process.ProcessGroup() as group:
        procs = [
            group.start(
                Process(
                    [sys.executable, "-c", script, name],
                    ready=lambda p: "child-up" in p.log_text(),
                    name=name,
                    start=False,
                )
            )
            for name in ("first", "second")
        ]
        assert all(proc.alive() for proc in procs)
        assert procs[0].cpu_seconds() is not None
    assert order.read_text().split() == ["second", "first"]
    assert [entry["name"] for entry in group.history] == ["first", "second"]
    assert [entry["pid"] for entry in group.history] == [proc.pid for proc in procs]
    for proc in procs:
        assert_dead(proc.pid)
        assert proc.cpu_seconds() is None


def test_a_given_directory_is_kept(tmp_path: Path) -> None:
    directory = tmp_path / "logs"
    script = "print('kept log line', flush=True)"
    proc = Process([sys.executable, "-c", script], directory=str(directory))
    assert servers.wait_for(lambda: not proc.alive(), timeout=10)
    proc.stop()
    assert "kept log line" in (directory / "process.log").read_text()


def test_corenet_proxy_can_autoload_plugins(
    tmp_path: Path, corenet_proxy_factory: Callable[..., CorenetProxy]
) -> None:
    script = tmp_path / "fake_proxy.py"
    script.write_text(FAKE_PROXY)
    proxy = corenet_proxy_factory(
        pool_config("a", None, ["127.0.0.1:1"]),
        command=[sys.executable, str(script)],
        env={"PATH": os.environ.get("PATH", ""), "CORENET_DISABLE_PLUGIN_AUTOLOAD": "1"},
        autoload_plugins=True,
    )
    assert proxy.env is not None
    assert "CORENET_DISABLE_PLUGIN_AUTOLOAD" not in proxy.env
    line = next(x for x in proxy.log_text().splitlines() if x.startswith("{"))
    assert yaml.safe_load(line)["env"] is None
    assert proxy.summary()["port"] == int(proxy.address().rpartition(":")[2])
