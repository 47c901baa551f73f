"""Random bytes on live sockets: the proxy survives, a steady client never errs."""

from __future__ import annotations

import random
import socket
import threading
import time

from tests.servers import encode_command, pool_config, read_until, redis_raw


def test_live_garbage_leaves_a_steady_redis_client_error_free(redis_servers, corenet_proxy_factory):
    backends = redis_servers(2)
    proxy = corenet_proxy_factory(pool_config("alpha", None, [b.address for b in backends]))
    host, port = proxy.address("alpha").rsplit(":", 1)
    stop = threading.Event()
    errors: list[str] = []
    rounds = 0

    def steady() -> None:
        nonlocal rounds
        sock = socket.create_connection((host, int(port)), timeout=5)
        try:
            while not stop.is_set():
                key = f"steady:{rounds}"
                sock.sendall(encode_command("SET", key, str(rounds)) + encode_command("GET", key))
                expected = b"+OK\r\n$%d\r\n%d\r\n" % (len(str(rounds)), rounds)
                # read_until calls it right away: the loop's later values never reach it.
                data = read_until(sock, lambda data: len(data) >= len(expected))  # noqa: B023
                if len(data) < len(expected):
                    errors.append("steady client disconnected")
                    return
                if data != expected:
                    errors.append(f"round {rounds}: {data!r}")
                    return
                rounds += 1
        finally:
            sock.close()

    thread = threading.Thread(target=steady)
    thread.start()
    rng = random.Random(1234)
    prefixes = [
        b"",
        b"*",
        b"*2\r\n",
        b"*2\r\n$3\r\nGET\r\n$",
        b"$",
        b"PING ",
        b"*1\r\n$4\r\nPING\r\n",
    ]
    deadline = time.monotonic() + 4
    sent = 0
    while time.monotonic() < deadline and sent < 400:
        payload = rng.choice(prefixes) + rng.randbytes(rng.randint(0, 300))
        with socket.create_connection((host, int(port)), timeout=2) as fuzz:
            try:
                fuzz.sendall(payload)
                fuzz.shutdown(socket.SHUT_WR)
                fuzz.settimeout(0.5)
                while fuzz.recv(65536):
                    pass
            except OSError:
                pass  # the proxy may close on a protocol error first
        sent += 1
    stop.set()
    thread.join(timeout=10)
    assert errors == []
    assert rounds > 10 and sent > 50
    assert redis_raw(proxy.address("alpha"), b"PING\r\n", expect_replies=1) == b"+PONG\r\n"
    assert proxy.alive()
