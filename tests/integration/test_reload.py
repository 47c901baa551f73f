"""Live configuration reload, against real redis-servers and memcacheds.

redis-py clients run SET/GET/MGET loops through the proxy while the test
rewrites the configuration and reloads it (SIGUSR1, ``POST /-/reload`` and
``--watch-config``).  Every client keeps its one connection and never sees
an error; backends that stay in the configuration are not reconnected
(counted by the backends themselves); after each reload, keys land where
nutcracker started on the new file puts them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.integration.test_limits import rss_bytes
from tests.servers import (
    assert_nutcracker_finds,
    dump_config,
    encode_command,
    free_port,
    metrics_page,
    poll_until,
    pool_config,
    read_until,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.servers import CorenetProxy, Memcached, Nutcracker, RedisServer

LOOPBACK = "127.0.0.1"


def _client(address: str) -> redis_py.Redis:
    host, port = address.rsplit(":", 1)
    # One connection and no retry: a dropped connection is an error here,
    # not something redis-py quietly repairs.
    return redis_py.Redis(
        host=host,
        port=int(port),
        single_connection_client=True,
        socket_timeout=10,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        driver_info=None,
    )


class Traffic:
    """Client threads running SET/GET/MGET pipelines until stopped.

    Values name their key, so a reply meant for another request is caught;
    a GET may miss (None) when a reload moved its key between the SET and
    the GET, never return another key's value.
    """

    def __init__(self, address: str, clients: int = 4) -> None:
        self.errors: list[str] = []
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(address, n), daemon=True)
            for n in range(clients)
        ]
        for thread in self._threads:
            thread.start()

    def _run(self, address: str, n: int) -> None:
        client = _client(address)
        try:
            client.ping()
            sock = client.connection._sock  # type: ignore[union-attr]
            i = 0
            deadline = time.monotonic() + 120  # bounded whatever the test does
            while not self._stop.is_set() and time.monotonic() < deadline:
                keys = [b"c%d:%d:%d" % (n, i, j) for j in range(5)]
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, b"v-" + key)
                pipe.get(keys[0])
                pipe.mget(keys)
                replies = pipe.execute()
                self._check(keys, replies)
                i += 1
            if client.connection._sock is not sock:  # type: ignore[union-attr]
                self._error(f"client {n} reconnected")
        except Exception as exc:
            self._error(f"client {n}: {exc!r}")
        finally:
            client.close()

    def _check(self, keys: list[bytes], replies: list[Any]) -> None:
        sets, get, mget = replies[:5], replies[5], replies[6]
        ok = all(r is True for r in sets)
        ok = ok and get in (None, b"v-" + keys[0])
        ok = ok and len(mget) == 5
        ok = ok and all(v in (None, b"v-" + k) for k, v in zip(keys, mget, strict=True))
        with self._lock:
            self.requests += 7
            if not ok:
                self.errors.append(f"wrong replies for {keys[0]!r}: {replies!r}")

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


@pytest.fixture
def traffic() -> Iterator[Callable[[str], Traffic]]:
    started: list[Traffic] = []

    def start(address: str) -> Traffic:
        t = Traffic(address)
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


def _write(proxy: CorenetProxy, config: dict[str, Any]) -> None:
    # Written aside and renamed, as deploy tools do: never half a file.
    tmp = proxy.config_path + ".new"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dump_config(config))
    os.replace(tmp, proxy.config_path)


def _http_reload(metrics_port: int) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://{LOOPBACK}:{metrics_port}/-/reload", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _signal_reload(proxy: CorenetProxy) -> dict[str, Any]:
    before = proxy.stats()
    assert proxy.pid is not None
    os.kill(proxy.pid, signal.SIGUSR1)

    def moved() -> dict[str, Any] | None:
        now = proxy.stats()
        done = (
            now["config_generation"] != before["config_generation"]
            or now["reload_failures"] != before["reload_failures"]
        )
        return now if done else None

    return poll_until(moved, "a reload after SIGUSR1", timeout=10)[0]


def _connections_received(server: RedisServer) -> int:
    client = redis_py.Redis(host=LOOPBACK, port=server.port, driver_info=None)
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


def _placement_matches_nutcracker(
    proxy_address: str,
    config: dict[str, Any],
    pool: str,
    nutcracker_factory: Callable[..., Nutcracker],
    tag: str,
) -> None:
    body = {**config[pool], "listen": f"{LOOPBACK}:{free_port()}"}
    keys = [f"place:{tag}:{i}".encode() for i in range(200)]
    assert_nutcracker_finds(proxy_address, {pool: body}, nutcracker_factory, keys)


def test_reload_sequence_keeps_every_client(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    nutcracker_factory: Callable[..., Nutcracker],
    traffic: Callable[[str], Traffic],
) -> None:
    r = redis_servers(4)
    addr = [s.address for s in r]
    alpha_listen = free_port()
    metrics_port = free_port()

    def alpha(servers: list[str], **keys: Any) -> dict[str, Any]:
        return pool_config("alpha", alpha_listen, servers, **keys)

    config = alpha([addr[0], addr[1]])
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    clients = traffic(proxy.address("alpha"))
    poll_until(lambda: clients.requests > 500, "traffic before the reloads")

    steps: list[tuple[str, dict[str, Any], list[RedisServer]]] = []
    steps.append(("add a server", alpha([addr[0], addr[1], addr[2]]), [r[0], r[1]]))
    steps.append(
        ("change a weight", alpha([f"{addr[0]}:1", f"{addr[1]}:2", f"{addr[2]}:1"]), [r[0], r[1]])
    )
    steps.append(("remove a server", alpha([f"{addr[1]}:2", f"{addr[2]}:1"]), [r[1], r[2]]))
    steps.append(
        ("change the hash", alpha([f"{addr[1]}:2", f"{addr[2]}:1"], hash="murmur"), [r[1], r[2]])
    )
    beta_port = free_port()
    with_beta = {
        **steps[-1][1],
        **pool_config("beta", beta_port, [addr[3]], distribution="modula", hash="md5"),
    }
    steps.append(("add a pool", with_beta, [r[1], r[2], r[3]]))
    moved_beta = {**with_beta, "beta": {**with_beta["beta"], "listen": f"{LOOPBACK}:{free_port()}"}}
    steps.append(("move a pool's listen", moved_beta, [r[1], r[2]]))
    steps.append(("remove a pool", steps[3][1], [r[1], r[2]]))

    for generation, (what, new_config, unchanged) in enumerate(steps, start=2):
        before = {s.port: _connections_received(s) for s in unchanged}
        _write(proxy, new_config)
        if generation % 2:
            status, body = _http_reload(metrics_port)
            assert status == 200 and body["applied"], (what, body)
            stats = proxy.stats()
        else:
            stats = _signal_reload(proxy)
        assert stats["config_generation"] == generation, what
        assert stats["reload_failures"] == 0, what
        seen = clients.requests
        poll_until(lambda seen=seen: clients.requests > seen + 200, f"traffic after: {what}")
        after = {s.port: _connections_received(s) for s in unchanged}
        # Our INFO connections count too: one each time we ask.
        assert {p: n - 1 for p, n in after.items()} == before, what
        assert not clients.errors, (what, clients.errors[:3])
        for pool in new_config:
            _placement_matches_nutcracker(
                proxy.address(pool) if pool == "alpha" else new_config[pool]["listen"],
                new_config,
                pool,
                nutcracker_factory,
                f"{generation}{pool}",
            )
        stats = proxy.stats()
        assert sorted(k for k, v in stats.items() if isinstance(v, dict)) == sorted(new_config)

    # An invalid file: nothing changes, the failure is counted and explained.
    good = steps[-1][1]
    bad = {"alpha": {**good["alpha"], "hash": "no_such_hash"}}
    _write(proxy, bad)
    status, body = _http_reload(metrics_port)
    assert status == 400 and not body["applied"]
    assert "no_such_hash" in body["error"] and ":" in body["error"]
    stats = proxy.stats()
    assert stats["reload_failures"] == 1
    assert stats["config_generation"] == len(steps) + 1

    # Fifty identical reloads: each one a generation, nothing reconnected.
    _write(proxy, good)
    before = {s.port: _connections_received(s) for s in (r[1], r[2])}
    for _ in range(50):
        status, body = _http_reload(metrics_port)
        assert status == 200, body
    after = {s.port: _connections_received(s) for s in (r[1], r[2])}
    assert {p: n - 1 for p, n in after.items()} == before
    stats = proxy.stats()
    assert stats["config_generation"] == 1 + len(steps) + 50
    assert stats["reloads"] == len(steps) + 50
    metrics = metrics_page(metrics_port)
    assert f"corenet_config_generation {1 + len(steps) + 50}.0" in metrics
    assert "corenet_reload_failures_total 1.0" in metrics
    clients.stop()
    assert not clients.errors, clients.errors[:3]
    assert clients.requests > 2000
    log = proxy.log_text()
    assert "reload failed, configuration unchanged" in log and "no_such_hash" in log
    assert "configuration reloaded: generation 2" in log


def test_removed_pool_answers_what_its_clients_sent_then_closes(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    (r,) = redis_servers(1)
    keep = pool_config("keep", None, [r.address])
    gone = pool_config("gone", None, [r.address])
    proxy = corenet_proxy_factory({**keep, **gone})
    client = _client(proxy.address("gone"))
    client.set(b"k", b"v")
    _write(proxy, keep)
    stats = _signal_reload(proxy)
    assert "gone" not in stats and "keep" in stats
    # The listener is gone at once; the connected client is closed once idle.
    with pytest.raises(redis_py.ConnectionError):
        client.get(b"k")
    client.close()


def test_watch_config_reloads_on_content_change_only(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    r = redis_servers(2)
    config = pool_config("alpha", None, [r[0].address])
    proxy = corenet_proxy_factory(config, ["--watch-config"])
    os.utime(proxy.config_path)  # touched, same bytes: no reload
    time.sleep(2.5)
    assert proxy.stats()["config_generation"] == 1
    config["alpha"]["servers"].append(f"{r[1].address}:1")
    _write(proxy, config)
    stats, _ = poll_until(
        lambda: (s := proxy.stats())["config_generation"] == 2 and s,
        "a reload after the file changed",
    )
    assert r[1].address in "".join(stats["alpha"])


def test_memcache_pool_reload(
    memcached_servers: Callable[..., list[Memcached]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    nutcracker_factory: Callable[..., Nutcracker],
) -> None:
    m = memcached_servers(2)
    config = pool_config("mc", None, [m[0].address], redis=False)
    proxy = corenet_proxy_factory(config)
    client = proxy.memcache_client()
    for i in range(100):
        assert client.set(f"k{i}", f"v{i}", noreply=False)
    config["mc"]["servers"].append(f"{m[1].address}:1")
    _write(proxy, config)
    stats = _signal_reload(proxy)
    assert stats["config_generation"] == 2 and len(stats["mc"]) > 1
    # The same client connection goes on, over the new distribution.
    for i in range(100, 300):
        assert client.set(f"k{i}", f"v{i}", noreply=False)
        assert client.get(f"k{i}") == f"v{i}".encode()
    client.close()
    # Every key is where nutcracker started on the new file looks for it.
    body = {**config["mc"], "listen": f"{LOOPBACK}:{free_port()}"}
    nutcracker = nutcracker_factory({"mc": body})
    reader = nutcracker.memcache_client()
    try:
        for i in range(100, 300):
            assert reader.get(f"k{i}") == f"v{i}".encode(), i
    finally:
        reader.close()


def test_reload_with_workers(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    traffic: Callable[[str], Traffic],
) -> None:
    r = redis_servers(3)
    alpha = pool_config("alpha", None, [r[0].address, r[1].address])
    proxy = corenet_proxy_factory(alpha, ["--workers", "2"])
    clients = traffic(proxy.address("alpha"))
    poll_until(lambda: clients.requests > 500, "traffic before the reload")
    before = {s.port: _connections_received(s) for s in (r[0], r[1])}

    beta_address = f"{LOOPBACK}:{free_port()}"
    grown = {
        "alpha": {**alpha["alpha"], "servers": [*alpha["alpha"]["servers"], f"{r[2].address}:1"]},
        **pool_config("beta", beta_address, [r[2].address]),
    }
    _write(proxy, grown)
    stats = _signal_reload(proxy)
    assert stats["config_generation"] == 2 and stats["reload_failures"] == 0
    assert r[2].address in stats["alpha"] and "beta" in stats
    # Every worker serves the new pool: enough connections reach both.
    for i in range(20):
        client = _client(beta_address)
        try:
            assert client.set(b"b%d" % i, b"x") is True
        finally:
            client.close()
    seen = clients.requests
    poll_until(lambda: clients.requests > seen + 200, "traffic after the reload")
    after = {s.port: _connections_received(s) for s in (r[0], r[1])}
    assert {p: n - 1 for p, n in after.items()} == before

    # An address in use: nothing changes in any worker, the failure is counted.
    taken = socket.create_server((LOOPBACK, 0))
    try:
        port = taken.getsockname()[1]
        _write(proxy, {**grown, **pool_config("gamma", port, [r[2].address])})
        stats = _signal_reload(proxy)
        assert stats["reload_failures"] == 1 and stats["config_generation"] == 2
        assert "gamma" not in stats
    finally:
        taken.close()

    _write(proxy, alpha)
    stats = _signal_reload(proxy)
    assert stats["config_generation"] == 3 and "beta" not in stats
    _assert_refused(beta_address)
    clients.stop()
    assert not clients.errors, clients.errors[:3]


def parse(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _assert_refused(address: str) -> None:
    """Nothing listens on ``address`` any more."""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(parse(address), timeout=2).close()


def _rss_kib(pid: int) -> int:
    return rss_bytes(pid) // 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_two_hundred_identical_reloads_grow_memory_by_at_most_8_mib(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    r = redis_servers(2)
    metrics_port = free_port()
    config = {
        **pool_config("alpha", None, [r[0].address, r[1].address], server_connections=2),
        **pool_config("beta", None, [r[1].address], hash="murmur", distribution="modula"),
    }
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    client = proxy.client("alpha")
    client.mset({b"k%d" % i: b"v" for i in range(200)})
    for _ in range(20):  # warm up: whatever is allocated once is allocated
        assert _http_reload(metrics_port)[0] == 200
    assert proxy.pid is not None
    start = _rss_kib(proxy.pid)
    for _ in range(200):
        assert _http_reload(metrics_port)[0] == 200
        client.get(b"k1")
    grown = _rss_kib(proxy.pid) - start
    client.close()
    assert proxy.stats()["config_generation"] == 221
    assert grown <= 8 * 1024, f"RSS grew by {grown} KiB over 200 reloads"
    print(f"RSS growth over 200 identical reloads: {grown} KiB")


def test_option_changes_apply_to_connected_clients(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    (r,) = redis_servers(1, extra_args=["--requirepass", "s3cret"])
    config = pool_config("alpha", None, [r.address])
    proxy = corenet_proxy_factory(config)
    # A raw connection: redis-py would reconnect after an authentication error.
    conn = socket.create_connection(parse(proxy.address()), timeout=10)

    def ask(*args: bytes) -> bytes:
        conn.sendall(encode_command(*args))
        return read_until(conn, lambda data: data.endswith(b"\r\n"))

    try:
        # The backend wants a password the pool does not give yet.
        assert ask(b"GET", b"k").startswith(b"-NOAUTH")
        config["alpha"]["redis_auth"] = "s3cret"
        config["alpha"]["deny_commands"] = ["flushall"]
        _write(proxy, config)
        assert _signal_reload(proxy)["config_generation"] == 2
        # The backend connection was replaced (AUTH first); the client, already
        # in, stays in, as with CONFIG SET requirepass on a Redis server.
        assert ask(b"SET", b"k", b"v") == b"+OK\r\n"
        assert ask(b"GET", b"k") == b"$1\r\nv\r\n"
        assert b"not allowed" in ask(b"FLUSHALL")
    finally:
        conn.close()
    # A new client must now authenticate.
    fresh = _client(proxy.address())
    try:
        with pytest.raises(redis_py.AuthenticationError):
            fresh.get(b"k")
    finally:
        fresh.close()


def test_twemproxy_reload_scenarios_new_listen_port_and_pools_swapped(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    # twemproxy's tests/test_system/test_reload.py, which nutcracker skips:
    # SIGUSR1 after the listen port changed, and pools added and removed.
    r = redis_servers(2)
    old_port, new_port = free_port(), free_port()
    config = {
        **pool_config("alpha", old_port, [r[0].address]),
        **pool_config("beta", None, [r[1].address]),
    }
    proxy = corenet_proxy_factory(config)
    old_client = _client(f"{LOOPBACK}:{old_port}")
    assert old_client.set(b"k", b"old") is True
    swapped = {
        **pool_config("alpha", new_port, [r[0].address]),
        **pool_config("gamma", None, [r[1].address]),
    }
    _write(proxy, swapped)
    stats = _signal_reload(proxy)
    assert {k for k, v in stats.items() if isinstance(v, dict)} == {"alpha", "gamma"}
    new_client = _client(f"{LOOPBACK}:{new_port}")
    try:
        assert new_client.get(b"k") == b"old"
    finally:
        new_client.close()
    _assert_refused(f"{LOOPBACK}:{old_port}")
    _assert_refused(config["beta"]["listen"])
    gamma = _client(swapped["gamma"]["listen"])
    try:
        assert gamma.ping() is True
    finally:
        gamma.close()
    old_client.close()
