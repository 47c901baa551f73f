"""TLS on both sides of the proxy, with real servers and real clients.

Certificates come from the session's ``pki`` fixture (the openssl CLI);
redis-server runs with ``--tls-port`` (``--port 0``), memcached with ``-Z``;
the clients are redis-py, redis-cli and pymemcache with TLS, and raw
sockets where the bytes matter.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from corenet.testing.process import ServerStartError
from corenet.testing.tls import ServerTLS, TLSFiles
from tests.servers import (
    LOOPBACK,
    encode_command,
    free_port,
    parse_address,
    pool_config,
    redis_client,
    redis_raw,
    resp_reply_end,
    spread_keys,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import redis

    from tests.servers import CorenetProxy, Memcached, RedisServer

MiB = 1 << 20


# --------------------------------------------------------------------------
# helpers


def client_ctx(pki: TLSFiles, *, cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki.ca)
    if cert:
        context.load_cert_chain(pki.client_cert, pki.client_key)
    return context


def tls_redis_py(address: str, pki: TLSFiles, *, cert: bool = False, **kw: Any) -> redis.Redis:
    """redis-py over TLS, verifying the proxy's certificate with the test CA."""
    options: dict[str, Any] = {"ssl": True, "ssl_ca_certs": pki.ca}
    if cert:
        options.update(ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key)
    return redis_client(address, **options, **kw)


def tls_raw(address: str, pki: TLSFiles, payload: bytes, replies: int) -> bytes:
    return redis_raw(address, payload, expect_replies=replies, timeout=20, tls=client_ctx(pki))


def accepting_tls(pki: TLSFiles) -> dict[str, str]:
    """Pool keys for a listener that speaks TLS only."""
    return {"tls_cert": pki.server_cert, "tls_key": pki.server_key}


def to_tls_servers(pki: TLSFiles) -> dict[str, Any]:
    """Pool keys for TLS to the servers, verified with the test CA."""
    return {"server_tls": True, "server_tls_ca": pki.ca}


@pytest.fixture
def tls_proxy(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy], pki: TLSFiles
) -> CorenetProxy:
    """corenet-proxy whose pool ``alpha`` speaks TLS only, in front of one redis-server."""
    config = pool_config("alpha", None, [redis_server.address], **accepting_tls(pki))
    return corenet_proxy_factory(config)


@pytest.fixture
def tls_redis(
    redis_servers: Callable[..., list[RedisServer]], pki: TLSFiles
) -> Callable[..., list[RedisServer]]:
    """``tls_redis(n=1, cert="server", extra_args=())``: redis-servers on a TLS-only port."""

    def start(n: int = 1, *, cert: str = "server", extra_args: tuple[str, ...] = ()) -> list[Any]:
        tls = ServerTLS(
            getattr(pki, f"{cert}_cert"), getattr(pki, f"{cert}_key"), pki.ca, "optional"
        )
        try:
            return redis_servers(n, tls=tls, extra_args=extra_args)
        except ServerStartError as exc:
            if "tls" in exc.log_tail.lower() and "bad directive" in exc.log_tail.lower():
                pytest.skip("this redis-server was built without TLS support")
            raise

    return start


def redis_cli(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("redis-cli")
    if binary is None:
        pytest.skip("redis-cli is not installed")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=20, check=False)


def host_port(address: str) -> list[str]:
    target = parse_address(address)
    assert isinstance(target, tuple)
    return ["-h", target[0], "-p", str(target[1])]


def pool_stats(proxy: CorenetProxy, pool: str = "alpha") -> dict[str, Any]:
    stats: dict[str, Any] = proxy.stats()[pool]
    return stats


def wait_stats(
    proxy: CorenetProxy, check: Callable[[dict[str, Any]], bool], seconds: float = 5.0
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    for _ in range(500):
        stats = pool_stats(proxy)
        if check(stats) or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)
    return pool_stats(proxy)


# --------------------------------------------------------------------------
# client side


def test_client_side_tls_with_redis_py_and_redis_cli(
    tls_proxy: CorenetProxy, pki: TLSFiles
) -> None:
    proxy = tls_proxy
    with tls_redis_py(proxy.address(), pki) as client:
        assert client.set("greeting", b"hello over TLS")
        assert client.get("greeting") == b"hello over TLS"
    cli = redis_cli("--tls", "--cacert", pki.ca, *host_port(proxy.address()), "GET", "greeting")
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == "hello over TLS"
    stats = wait_stats(proxy, lambda s: s["tls_connections"] == 0)
    assert stats["tls_handshake_failures"] == 0 and stats["tls_connections"] == 0
    # The servers are plain: their figures are nutcracker's 13, nothing added.
    (server,) = (v for v in stats.values() if isinstance(v, dict))
    assert "tls_connections" not in server and list(server)[-1] == "out_queue_bytes"


def test_plain_text_client_on_a_tls_port_is_closed_quickly(
    tls_proxy: CorenetProxy, pki: TLSFiles
) -> None:
    proxy = tls_proxy
    started = time.monotonic()
    with socket.create_connection(parse_address(proxy.address()), timeout=3) as sock:  # type: ignore[arg-type]
        sock.sendall(encode_command("PING"))
        received = b""
        for _ in range(10):
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    assert time.monotonic() - started < 2.0
    assert b"PONG" not in received  # an alert at most, then the close
    stats = wait_stats(proxy, lambda s: s["tls_handshake_failures"] >= 1)
    assert stats["tls_handshake_failures"] == 1
    assert stats["client_connections"] == 0


def test_a_silent_client_is_closed_by_the_handshake_timeout(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy], pki: TLSFiles
) -> None:
    config = pool_config(
        "alpha", None, [redis_server.address], tls_handshake_timeout=300, **accepting_tls(pki)
    )
    proxy = corenet_proxy_factory(config)
    with socket.create_connection(parse_address(proxy.address()), timeout=5) as sock:  # type: ignore[arg-type]
        started = time.monotonic()
        assert sock.recv(4096) == b""
        waited = time.monotonic() - started
    assert 0.2 < waited < 3.0
    stats = wait_stats(proxy, lambda s: s["tls_handshake_failures"] >= 1)
    assert stats["tls_handshake_failures"] == 1


def test_mutual_tls_refuses_a_client_without_a_certificate(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy], pki: TLSFiles
) -> None:
    config = pool_config("alpha", None, [redis_server.address], tls_ca=pki.ca, **accepting_tls(pki))
    proxy = corenet_proxy_factory(config)
    import redis as redis_py

    with tls_redis_py(proxy.address(), pki) as anonymous, pytest.raises(redis_py.ConnectionError):
        anonymous.ping()
    refused = redis_cli("--tls", "--cacert", pki.ca, *host_port(proxy.address()), "PING")
    assert "PONG" not in refused.stdout
    with tls_redis_py(proxy.address(), pki, cert=True) as known:
        assert known.ping()
    accepted = redis_cli(
        "--tls", "--cacert", pki.ca, "--cert", pki.client_cert, "--key", pki.client_key,
        *host_port(proxy.address()), "PING",
    )  # fmt: skip
    assert accepted.stdout.strip() == "PONG", accepted.stderr
    stats = wait_stats(proxy, lambda s: s["tls_handshake_failures"] >= 2)
    assert stats["tls_handshake_failures"] >= 2


# --------------------------------------------------------------------------
# both sides


def test_both_sides_large_values_and_deep_pipelines_arrive_intact(
    tls_redis: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    backends = tls_redis(2)
    config = pool_config(
        "alpha", None, [b.address for b in backends], **accepting_tls(pki), **to_tls_servers(pki)
    )
    metrics_port = free_port()
    proxy = corenet_proxy_factory(config, ["--metrics-port", str(metrics_port)])
    values = {f"big:{i}": bytes([i]) * 17 + bytes(range(256)) * (MiB // 256) for i in range(4)}
    # Raw bytes, 16 deep: SETs of 1 MiB, then the GETs, on one TLS connection.
    payload = b"".join(encode_command("SET", k, v) for k, v in values.items())
    payload += b"".join(encode_command("GET", k) for k in values) * 3
    reply = tls_raw(proxy.address(), pki, payload, len(values) * 4)
    expected = b"+OK\r\n" * len(values)
    expected += b"".join(b"$%d\r\n%s\r\n" % (len(v), v) for v in values.values()) * 3
    assert reply == expected
    # redis-py pipelines of 16 over TLS, many keys, both backends.
    names = spread_keys(640, "pipe")
    with tls_redis_py(proxy.address(), pki) as client:
        for start in range(0, len(names), 16):
            pipe = client.pipeline(transaction=False)
            for name in names[start : start + 16]:
                pipe.set(name, name.encode() * 50)
            assert pipe.execute() == [True] * 16
        pipe = client.pipeline(transaction=False)
        for name in names[:16]:
            pipe.get(name)
        assert pipe.execute() == [name.encode() * 50 for name in names[:16]]
    counts = [b.keys_count() for b in backends]
    assert sum(counts) == len(names) + len(values) and min(counts) > 0
    stats = pool_stats(proxy)
    servers = [v for v in stats.values() if isinstance(v, dict)]
    assert all(s["tls_connections"] >= 1 and s["tls_handshake_failures"] == 0 for s in servers)
    assert list(servers[0])[-2:] == ["tls_handshake_failures", "tls_connections"]
    samples = scrape(metrics_port)
    assert samples[("corenet_pool_tls_handshake_failures_total", (("pool", "alpha"),))] == 0
    server_name = next(k for k, v in stats.items() if isinstance(v, dict))
    labels = (("pool", "alpha"), ("server", server_name))
    assert samples[("corenet_server_tls_connections", labels)] >= 1


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


@pytest.mark.parametrize("protocol", [2, 3])
def test_both_sides_with_redis_auth_redis_db_and_resp3(
    protocol: int,
    tls_redis: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    (backend,) = tls_redis(1, extra_args=("--requirepass", "tls-secret-pw"))
    config = pool_config(
        "alpha",
        None,
        [backend.address],
        redis_auth="tls-secret-pw",
        redis_db=3,
        **accepting_tls(pki),
        **to_tls_servers(pki),
    )
    proxy = corenet_proxy_factory(config)
    # The proxy asks its clients for redis_auth too, as nutcracker does.
    with tls_redis_py(proxy.address(), pki, protocol=protocol, password="tls-secret-pw") as client:
        assert client.set("in-db-3", b"v")
        assert client.get("in-db-3") == b"v"
        assert client.hset("h", mapping={"a": "1"}) == 1
        assert client.hgetall("h") == {b"a": b"1"}
    check = b"".join(
        encode_command(*c) for c in (("AUTH", "tls-secret-pw"), ("SELECT", "3"), ("GET", "in-db-3"))
    )
    probe = ServerTLS(pki.server_cert, pki.server_key).probe_context()
    assert redis_raw(backend.address, check, expect_replies=3, tls=probe) == (
        b"+OK\r\n+OK\r\n$1\r\nv\r\n"
    )
    assert "tls-secret-pw" not in str(proxy.stats())
    assert "tls-secret-pw" not in proxy.log_text()


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        ("other_server", "certificate verify failed: unable to get local issuer certificate"),
        ("expired", "certificate verify failed: certificate has expired"),
    ],
)
def test_a_backend_certificate_that_does_not_verify_fails_clearly(
    cert: str,
    reason: str,
    tls_redis: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    (backend,) = tls_redis(1, cert=cert)
    config = pool_config("alpha", None, [backend.address], **to_tls_servers(pki))
    proxy = corenet_proxy_factory(config)
    address = proxy.address()
    first = redis_raw(address, encode_command("GET", "k"), expect_replies=1)
    assert first == f"-ERR TLS handshake failed: {reason}\r\n".encode()
    # While the reconnect backs off, requests fail at once with the same reason.
    again = redis_raw(address, encode_command("GET", "k"), expect_replies=1)
    assert again.startswith(b"-ERR TLS handshake failed")
    stats = pool_stats(proxy)
    (server,) = (v for v in stats.values() if isinstance(v, dict))
    assert server["tls_handshake_failures"] >= 1 and server["server_err"] >= 1
    assert server["tls_connections"] == 0 and server["server_connections"] == 0
    log = proxy.log_text()
    assert f"TLS handshake failed: {reason}" in log
    assert "PRIVATE KEY" not in log


@pytest.fixture
def mid_handshake_closer() -> Iterator[str]:
    """A backend that reads the ClientHello and closes: what no real server does."""
    listener = socket.create_server((LOOPBACK, 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    accepted: list[int] = []

    def serve() -> None:
        for _ in range(1000):  # bounded: at most 200 s, ended by stop
            if stop.is_set():
                return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                accepted.append(len(conn.recv(65536)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"{LOOPBACK}:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()
    assert accepted and accepted[0] > 0  # it did get a ClientHello


def test_a_backend_closing_mid_handshake_fails_the_request(
    mid_handshake_closer: str,
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    config = pool_config("alpha", None, [mid_handshake_closer], **to_tls_servers(pki))
    proxy = corenet_proxy_factory(config)
    started = time.monotonic()
    reply = redis_raw(proxy.address(), encode_command("GET", "k"), expect_replies=1)
    assert time.monotonic() - started < 2.0
    assert reply == (
        b"-ERR TLS handshake failed: the peer closed the connection during the handshake\r\n"
    )
    (server,) = (v for v in pool_stats(proxy).values() if isinstance(v, dict))
    assert server["tls_handshake_failures"] == 1


def test_memcache_over_tls_both_ways(
    memcached_servers: Callable[..., list[Memcached]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    from pymemcache.client.base import Client  # type: ignore[import-untyped]

    tls = ServerTLS(pki.server_cert, pki.server_key)
    backends = memcached_servers(2, tls=tls)
    config = pool_config(
        "beta",
        None,
        [m.address for m in backends],
        redis=False,
        **accepting_tls(pki),
        **to_tls_servers(pki),
    )
    proxy = corenet_proxy_factory(config)
    client = Client(
        parse_address(proxy.address()), tls_context=client_ctx(pki), connect_timeout=5, timeout=5
    )
    try:
        big = bytes(range(256)) * 2048  # 512 KiB: under memcached's 1 MiB item limit
        names = spread_keys(64, "mc")
        # Stored one at a time (noreply=False): memcached 1.6.18 with -Z
        # stalls when a TLS record it has partly read waits inside OpenSSL
        # (it polls the socket, not SSL_pending); the proxy's batched writes
        # of a long pipeline of large noreply sets provoke it.
        for name in names:
            assert client.set(name, big + name.encode(), noreply=False)
        got = client.get_many(names[:16])
        assert got == {name: big + name.encode() for name in names[:16]}
    finally:
        client.close()
    stats = proxy.stats()["beta"]
    servers = [v for v in stats.values() if isinstance(v, dict)]
    assert all(s["tls_connections"] >= 1 for s in servers)
    assert all(s["requests"] > 0 for s in servers)


def test_placement_with_tls_equals_placement_without(
    tls_redis: Callable[..., list[RedisServer]],
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
    pki: TLSFiles,
) -> None:
    names = spread_keys(300, "place")
    placements = []
    for backends, keys in ((tls_redis(3), True), (redis_servers(3), False)):
        servers = [f"{b.address}:1 shard{i}" for i, b in enumerate(backends)]
        extra = {**accepting_tls(pki), **to_tls_servers(pki)} if keys else {}
        proxy = corenet_proxy_factory(pool_config("alpha", None, servers, **extra))
        payload = b"".join(encode_command("SET", n, "1") for n in names)
        if keys:
            reply = tls_raw(proxy.address(), pki, payload, len(names))
        else:
            reply = redis_raw(proxy.address(), payload, expect_replies=len(names))
        assert reply == b"+OK\r\n" * len(names)
        placements.append([sorted(_keys_of(b)) for b in backends])
    assert placements[0] == placements[1]
    assert all(placements[0])


def _keys_of(server: RedisServer) -> list[bytes]:
    reply = server.raw_command("KEYS", "*")
    end = resp_reply_end(reply)
    assert end == len(reply)
    return [line for line in reply.split(b"\r\n")[2::2] if line]


def _half_closed_exchange(address: str, context: ssl.SSLContext, payload: bytes) -> bytes:
    """Send ``payload`` over TLS, then close_notify and a TCP FIN (our side
    only), and return everything decrypted until the proxy closes.  Driven by
    hand over memory BIOs: ssl.SSLSocket cannot shut down only its writing side."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    engine = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    received = bytearray()
    with socket.create_connection(parse_address(address), timeout=5) as sock:  # type: ignore[arg-type]
        for _ in range(50):  # the handshake: a few round trips
            try:
                engine.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        engine.write(payload)
        with pytest.raises(ssl.SSLWantReadError):
            engine.unwrap()  # close_notify out; the proxy's is awaited
        sock.sendall(outgoing.read())
        sock.shutdown(socket.SHUT_WR)
        for _ in range(10_000):
            data = sock.recv(65536)
            if not data:
                break
            incoming.write(data)
            try:
                while True:
                    received += engine.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                pass
    return bytes(received)


def test_a_half_closed_tls_client_gets_every_reply(tls_proxy: CorenetProxy, pki: TLSFiles) -> None:
    proxy = tls_proxy
    payload = b"".join(encode_command("SET", f"h{i}", "x" * 1000) for i in range(16))
    payload += b"".join(encode_command("GET", f"h{i}") for i in range(16))
    replies = _half_closed_exchange(proxy.address(), client_ctx(pki), payload)
    assert replies == b"+OK\r\n" * 16 + (b"$1000\r\n" + b"x" * 1000 + b"\r\n") * 16


def test_renegotiation_is_refused(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy], pki: TLSFiles
) -> None:
    openssl = shutil.which("openssl")
    assert openssl is not None  # the pki fixture needs it too
    config = pool_config(
        "alpha", None, [redis_server.address], tls_protocols="TLSv1.2", **accepting_tls(pki)
    )
    proxy = corenet_proxy_factory(config)
    # s_client's "R" command asks for a renegotiation (TLS 1.2 only has it).
    script = "PING\r\n"
    client = subprocess.Popen(
        [openssl, "s_client", "-connect", proxy.address(), "-CAfile", pki.ca, "-tls1_2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert client.stdin is not None and client.stdout is not None
        client.stdin.write(script)
        client.stdin.flush()
        lines = []
        for _ in range(200):  # up to the PONG: the session works
            line = client.stdout.readline()
            lines.append(line)
            if not line or line.startswith("+PONG"):
                break
        client.stdin.write("R\n")
        client.stdin.flush()
        output, _ = client.communicate(timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.communicate()
    assert any(line.startswith("+PONG") for line in lines), "".join(lines)
    assert "RENEGOTIATING" in output
    assert "no renegotiation" in output


def test_a_reload_reads_the_certificates_again(
    redis_server: RedisServer, corenet_proxy_factory: Callable[..., CorenetProxy], pki: TLSFiles
) -> None:
    # Certificate rotation without a restart: the connected client stays,
    # new clients get the new certificate.
    import os
    import signal

    import redis as redis_py

    from tests.servers import dump_config, poll_until

    config = pool_config("alpha", None, [redis_server.address], **accepting_tls(pki))
    proxy = corenet_proxy_factory(config)
    kept = tls_redis_py(proxy.address(), pki)
    assert kept.set("k", b"v")
    config["alpha"].update(tls_cert=pki.other_server_cert, tls_key=pki.other_server_key)
    with open(proxy.config_path, "w", encoding="utf-8") as f:
        f.write(dump_config(config))
    assert proxy.pid is not None
    os.kill(proxy.pid, signal.SIGUSR1)
    poll_until(lambda: proxy.stats()["config_generation"] == 2, "the reload", timeout=10)
    assert kept.get("k") == b"v"  # the same TLS connection, still served
    kept.close()
    rotated = redis_client(proxy.address(), ssl=True, ssl_ca_certs=pki.other_ca)
    try:
        assert rotated.get("k") == b"v"  # verified with the new certificate's CA
    finally:
        rotated.close()
    stale = tls_redis_py(proxy.address(), pki)  # trusts only the old CA
    try:
        with pytest.raises(redis_py.ConnectionError):
            stale.get("k")
    finally:
        stale.close()
