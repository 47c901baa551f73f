"""The loop, streams and listeners in-process, over real sockets, no subprocess."""

from __future__ import annotations

import importlib.util
import pathlib
import socket
from typing import TYPE_CHECKING, Any

import pytest

from corenet.event import EV_READ
from corenet.net import ListenAddress, Listener
from corenet.stream import Stream
from tests.loops import make_loop, run_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from corenet.loop import Loop

EXAMPLE = pathlib.Path(__file__).parents[2] / "docs/examples/counter-server/counter_server.py"


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = make_loop()
    yield loop
    loop.backend.close()


class Recorder(Stream):
    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        super().__init__(loop, sock)
        self.received = bytearray()
        self.drained = 0
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.received += data

    def output_drained(self) -> None:
        self.drained += 1

    def read_eof(self) -> None:
        self.eof = True
        self.close()


def registered(loop: Loop, sock: socket.socket, kind: type[Recorder] = Recorder) -> Recorder:
    """A ``kind`` stream over ``sock`` (made non-blocking), reading on ``loop``."""
    sock.setblocking(False)
    stream = kind(loop, sock)
    stream.register(EV_READ)
    return stream


def test_output_the_kernel_refuses_waits_with_write_interest_then_drains(loop: Loop) -> None:
    ours, theirs = socket.socketpair()
    stream = registered(loop, ours)
    payload = b"x" * (8 << 20)  # far more than a socket buffer
    stream.send_bytes(payload)
    assert stream.writing and stream.interest & 4  # EV_WRITE
    assert 0 < stream.unsent_bytes < len(payload)
    got = bytearray()
    theirs.setblocking(False)

    def read_some() -> bool:
        try:
            got.extend(theirs.recv(1 << 20))
        except BlockingIOError:
            pass
        return len(got) == len(payload)

    run_until(loop, read_some)
    run_until(loop, lambda: stream.drained == 1)
    assert not stream.writing and stream.interest == EV_READ and got == payload
    stream.close()
    theirs.close()


def test_paused_streams_are_not_read_until_resumed(loop: Loop) -> None:
    ours, theirs = socket.socketpair()
    stream = registered(loop, ours)
    stream.pause_reading()
    theirs.sendall(b"hello")
    for _ in range(5):
        loop.run_once(0.01)
    assert stream.received == b"" and stream.interest == 0
    stream.resume_reading()
    run_until(loop, lambda: stream.received == b"hello")
    theirs.close()
    run_until(loop, lambda: stream.eof)


def test_listener_accepts_and_hands_sockets_over(loop: Loop) -> None:
    accepted: list[socket.socket] = []
    listener = Listener.listen(loop, ListenAddress("127.0.0.1", 0), accepted.append)
    clients = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(3)]
    run_until(loop, lambda: len(accepted) == 3)
    for sock in [*accepted, *clients]:
        sock.close()
    listener.close()
    assert listener.closed


def test_a_handler_that_raises_is_closed_alone(loop: Loop) -> None:
    class Broken(Recorder):
        def data_received(self, data: bytes) -> None:
            raise RuntimeError("boom")

    pairs = [socket.socketpair() for _ in range(2)]
    broken = registered(loop, pairs[0][0], Broken)
    fine = registered(loop, pairs[1][0])
    pairs[0][1].sendall(b"a")
    pairs[1][1].sendall(b"b")
    run_until(loop, lambda: broken.closed and fine.received == b"b")
    assert not fine.closed
    for _, theirs in pairs:
        theirs.close()
    fine.close()


def test_timers_fire_in_deadline_order_on_the_loop(loop: Loop) -> None:
    fired: list[str] = []
    loop.timers.call_later(0.03, fired.append, "late")
    loop.timers.call_later(0.01, fired.append, "early")
    cancelled = loop.timers.call_later(0.02, fired.append, "cancelled")
    cancelled.cancel()
    run_until(loop, lambda: len(fired) == 2)
    assert fired == ["early", "late"]


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("counter_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_framework_only_example_serves_a_pipeline_and_a_half_close(loop: Loop) -> None:
    example = _example()
    counters: dict[bytes, int] = {}
    listener = example.serve(loop, 0, counters)
    client = socket.create_connection(("127.0.0.1", listener.port))
    client.sendall(b"INCR a\nINCR a\nINCR b\nGET a\nNOPE\n")
    client.shutdown(socket.SHUT_WR)
    client.setblocking(False)
    got = bytearray()

    def answered() -> bool:
        try:
            got.extend(client.recv(4096))
        except BlockingIOError:
            pass
        return got.count(b"\n") == 5

    run_until(loop, answered)
    assert got == b"1\n2\n1\n2\nERR unknown command\n"
    assert counters == {b"a": 2, b"b": 1}
    client.close()
    run_until(loop, lambda: len(loop.handlers) == 1)  # the server side saw the close
    listener.close()


def test_the_example_closes_a_client_after_an_endless_line(loop: Loop) -> None:
    example = _example()
    listener = example.serve(loop, 0, {})
    client = socket.create_connection(("127.0.0.1", listener.port))
    client.sendall(b"x" * 3000)
    client.setblocking(False)
    got = bytearray()
    closed = []

    def done() -> bool:
        try:
            data = client.recv(4096)
        except BlockingIOError:
            return False
        if not data:
            closed.append(True)
        got.extend(data)
        return bool(closed)

    run_until(loop, done)
    assert got == b"ERR line too long\n"
    client.close()
    run_until(loop, lambda: len(loop.handlers) == 1)  # the server side saw the close
    listener.close()


_SHED_SCRIPT = r"""
import resource, socket, sys, time
from corenet.event import select_backend
from corenet.loop import Loop
from corenet.net import ListenAddress, Listener
from corenet.plugin import Plugins

loop = Loop(select_backend("auto", Plugins(autoload=False).event_backends))
held = []
listener = Listener.listen(loop, ListenAddress("127.0.0.1", 0), held.append, backlog=256)
clients = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(40)]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
import os
used = len(os.listdir("/proc/self/fd"))
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 5, hard))
deadline = time.monotonic() + 10
while listener.shed + len(held) < 40 and time.monotonic() < deadline:
    loop.run_once(0.05)
closed = 0
for c in clients:
    c.settimeout(0.2)
    try:
        if c.recv(1) == b"":
            closed += 1
    except (socket.timeout, ConnectionResetError):
        closed += isinstance(sys.exc_info()[1], ConnectionResetError)
print(len(held), listener.shed, closed, listener.paused_accepts)
"""


def test_out_of_descriptors_the_listener_sheds_instead_of_leaving_clients_waiting() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _SHED_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    held, shed, closed, paused = map(int, done.stdout.split())
    assert held >= 1 and shed >= 20, done.stdout  # some served, the rest turned away
    assert held + shed == 40
    assert closed >= shed  # a shed client sees its connection closed, not a hang
    assert done.stderr.count("accept failed") <= 1  # rate-limited
