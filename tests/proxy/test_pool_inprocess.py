"""A proxy pool in-process: clients on socketpairs, backends on the same loop.

The backends are tiny RESP servers written on the framework (a listener and
streams), answering ``GET k`` with ``NAME:k`` and ``MGET`` with one such
element per key, so every reply says which server produced it.  Nothing
here starts a process.
"""

from __future__ import annotations

import gc
import socket
import time
import tracemalloc
from typing import TYPE_CHECKING

import hiredis
import pytest

from corenet.event import EV_READ, select_backend
from corenet.loop import Loop
from corenet.net import ListenAddress, Listener
from corenet.plugin import HashRegistry, hookimpl
from corenet.proxy.config import parse_config
from corenet.proxy.plugins import load_plugins
from corenet.proxy.pool import Pool
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SENTINEL = object()


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


class TagServer(Stream):
    def __init__(self, loop: Loop, sock: socket.socket, name: bytes) -> None:
        super().__init__(loop, sock)
        self.name = name
        self.reader = hiredis.Reader(notEnoughData=SENTINEL)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        out = []
        while (request := self.reader.gets()) is not SENTINEL:
            command, *keys = request
            tagged = [bulk(self.name + b":" + key) for key in keys]
            if command.upper() == b"MGET":
                out.append(b"*%d\r\n" % len(keys) + b"".join(tagged))
            else:
                out.append(tagged[0])
        self.send_bytes(b"".join(out))


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = Loop(select_backend("auto", load_plugins(autoload=False).event_backends))
    yield loop
    loop.backend.close()


@pytest.fixture
def pool(loop: Loop, request: pytest.FixtureRequest) -> Iterator[Pool]:
    extra_yaml, extra_plugins = getattr(request, "param", ("", {}))
    listeners = []
    served: list[TagServer] = []
    for name in (b"one", b"two"):

        def accept(sock: socket.socket, name: bytes = name) -> None:
            sock.setblocking(False)
            served.append(TagServer(loop, sock, name))
            served[-1].register(EV_READ)

        listeners.append(Listener.listen(loop, ListenAddress("127.0.0.1", 0), accept))
    text = (
        "alpha:\n  listen: 127.0.0.1:1\n  redis: true\n  servers:\n"
        f"    - 127.0.0.1:{listeners[0].port}:1 one\n"
        f"    - 127.0.0.1:{listeners[1].port}:1 two\n"
    ) + extra_yaml
    plugins = load_plugins(extra=extra_plugins, autoload=False)
    pool = Pool(parse_config(text)["alpha"], plugins, loop)
    yield pool
    pool.close()
    for stream in [*listeners, *served]:
        stream.close()


def run_until(loop: Loop, done: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "timed out"
        loop.run_once(0.02)


def connect(pool: Pool) -> socket.socket:
    ours, theirs = socket.socketpair()
    pool.accept(theirs)
    ours.setblocking(False)
    return ours


def read_replies(loop: Loop, sock: socket.socket, count: int) -> list[object]:
    reader = hiredis.Reader(notEnoughData=SENTINEL)
    replies: list[object] = []

    def done() -> bool:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return False
        if data:
            reader.feed(data)
        while (reply := reader.gets()) is not SENTINEL:
            replies.append(reply)
        return len(replies) >= count or not data

    run_until(loop, done)
    return replies


def owner(pool: Pool, key: bytes) -> bytes:
    return pool.live[pool.index_of(key)].name.encode()


def command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


def test_mget_is_split_and_merged_in_request_order(loop: Loop, pool: Pool) -> None:
    keys = [b"key:%d" % i for i in range(40)]
    assert len({owner(pool, k) for k in keys}) == 2  # really spans both servers
    client = connect(pool)
    client.sendall(command(b"MGET", *keys))
    [reply] = read_replies(loop, client, 1)
    assert reply == [owner(pool, k) + b":" + k for k in keys]
    assert pool.stats.fragments == 2
    client.close()


def test_a_half_closed_client_gets_every_reply_then_eof(loop: Loop, pool: Pool) -> None:
    client = connect(pool)
    keys = [b"k%d" % i for i in range(200)]
    client.sendall(b"".join(command(b"GET", k) for k in keys) + command(b"PING"))
    client.shutdown(socket.SHUT_WR)
    replies = read_replies(loop, client, 202)
    assert replies == [owner(pool, k) + b":" + k for k in keys] + [b"PONG"]
    run_until(loop, lambda: not pool.clients)  # then the proxy closes it
    assert client.recv(10) == b""
    assert pool.stats.client_eof == 1
    client.close()


def test_finished_multi_key_requests_are_freed_without_the_cycle_collector(
    loop: Loop, pool: Pool
) -> None:
    client = connect(pool)
    keys = [b"some-longer-key:%06d" % i for i in range(2000)]
    request = command(b"MGET", *keys)
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        for _ in range(3):  # warm up buffers and caches
            client.sendall(request)
            read_replies(loop, client, 1)
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(30):
            client.sendall(request)
            read_replies(loop, client, 1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()
    # One such MGET holds ~0.5 MB of keys, fragments and replies: 30 kept
    # alive by reference cycles would be ~15 MB.
    assert grown < 2_000_000, grown
    client.close()


class _Flaky:
    """A hash plugin with a bug: it raises for keys starting with "boom"."""

    @hookimpl
    def corenet_register_hash_functions(self, registry: HashRegistry) -> None:
        def flaky(key: bytes) -> int:
            if key.startswith(b"boom"):
                raise ValueError("bug in a hash plugin")
            return len(key)

        registry.add("flaky", flaky)


@pytest.mark.parametrize("pool", [("  hash: flaky\n", {"flaky": _Flaky()})], indirect=True)
def test_a_plugin_failing_at_run_time_answers_an_error_and_keeps_the_client(
    loop: Loop, pool: Pool, caplog: pytest.LogCaptureFixture
) -> None:
    client = connect(pool)
    client.sendall(command(b"GET", b"fine") + command(b"GET", b"boom") + command(b"GET", b"ok"))
    replies = read_replies(loop, client, 3)
    assert replies[0] == owner(pool, b"fine") + b":fine"
    assert isinstance(replies[1], hiredis.ReplyError)
    assert str(replies[1]) == "ERR routing failed in a plugin"
    assert replies[2] == owner(pool, b"ok") + b":ok"
    assert pool.clients  # still connected
    assert "bug in a hash plugin" in caplog.text
    client.close()
