"""TLS streams in-process, over socketpairs: handshake, data, close_notify, half-close,
backpressure with a tiny socket buffer, failures, and the state table."""

from __future__ import annotations

import socket
import ssl
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corenet._tls_state import TRANSITIONS, TLSEvent, TLSState, next_state
from corenet.errors import LocalProtocolError
from corenet.event import EV_READ, EV_WRITE
from corenet.testing.tls import TLSFiles, openssl_binary
from corenet.tls import TLSSetupError, TLSStream, client_context, server_context
from tests.loops import make_loop, run_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from corenet.loop import Loop


@pytest.fixture
def loop() -> Iterator[Loop]:
    loop = make_loop()
    yield loop
    loop.backend.close()


class Peer(TLSStream):
    """Records what it gets; answers EOF by writing ``farewell`` and closing, if set."""

    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        super().__init__(loop, sock)
        self.received = bytearray()
        self.ready = False
        self.failed: str | None = None
        self.eof = False
        self.drained = 0
        self.farewell: bytes | None = None

    def connection_ready(self) -> None:
        self.ready = True

    def handshake_failed(self, reason: str) -> None:
        self.failed = reason
        super().handshake_failed(reason)

    def data_received(self, data: bytes) -> None:
        self.received += data

    def read_eof(self) -> None:
        self.eof = True
        if self.farewell is not None:
            self.send_bytes(self.farewell)
        else:
            self.close()

    def output_drained(self) -> None:
        self.drained += 1


def make_peer(loop: Loop, sock: socket.socket) -> Peer:
    sock.setblocking(False)
    peer = Peer(loop, sock)
    peer.register(EV_READ)
    return peer


def tls_pair(
    loop: Loop,
    pki: TLSFiles,
    *,
    client_ctx: ssl.SSLContext | None = None,
    server_ctx: ssl.SSLContext | None = None,
    timeout: float | None = 5.0,
) -> tuple[Peer, Peer]:
    """A (server, client) pair of TLS streams over a socketpair, handshake started."""
    a, b = socket.socketpair()
    server = make_peer(loop, a)
    client = make_peer(loop, b)
    server.start_tls(
        server_ctx or server_context(pki.server_cert, pki.server_key),
        server_side=True,
        timeout=timeout,
    )
    client.start_tls(
        client_ctx or client_context(ca=pki.ca),
        server_side=False,
        server_hostname="localhost",
        timeout=timeout,
    )
    client.connection_made()
    return server, client


def test_handshake_then_data_both_ways_intact(loop: Loop, pki: TLSFiles) -> None:
    server, client = tls_pair(loop, pki)
    run_until(loop, lambda: server.ready and client.ready)
    assert server.tls_version == client.tls_version
    assert server.tls_version in ("TLSv1.2", "TLSv1.3")
    big = bytes(range(256)) * 4096  # 1 MiB
    client.send_bytes(big)
    server.send_bytes(b"hello")
    run_until(loop, lambda: len(server.received) == len(big) and client.received == b"hello")
    assert bytes(server.received) == big
    server.close()
    client.close()


def test_data_queued_before_the_handshake_goes_out_after_it_in_order(
    loop: Loop, pki: TLSFiles
) -> None:
    server, client = tls_pair(loop, pki)
    client.send_bytes(b"first ")
    client.queue_bytes(b"second")
    assert client.tls_state is TLSState.HANDSHAKING
    run_until(loop, lambda: server.received == b"first second")
    server.close()
    client.close()


def test_close_notify_reaches_the_peer_as_eof(loop: Loop, pki: TLSFiles) -> None:
    server, client = tls_pair(loop, pki)
    run_until(loop, lambda: server.ready and client.ready)
    client.send_bytes(b"bye")
    client.close()
    run_until(loop, lambda: server.eof)
    assert server.received == b"bye"
    assert server.closed


def test_half_closed_peer_still_gets_what_is_owed(loop: Loop, pki: TLSFiles) -> None:
    """The peer sends close_notify but keeps reading: the reply still reaches it."""
    a, b = socket.socketpair()
    server = make_peer(loop, a)
    server.farewell = b"reply owed"
    server.start_tls(server_context(pki.server_cert, pki.server_key), server_side=True)
    # The peer is the standard library's engine driven by hand (sans-IO), so
    # it can send close_notify without closing its socket.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    engine = client_context(ca=pki.ca).wrap_bio(incoming, outgoing, server_hostname="localhost")
    b.setblocking(False)

    def pump() -> None:
        if outgoing.pending:
            b.sendall(outgoing.read())
        try:
            data = b.recv(65536)
        except BlockingIOError:
            return
        if data:
            incoming.write(data)
        else:
            incoming.write_eof()

    def handshake_done() -> bool:
        pump()
        try:
            engine.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    run_until(loop, handshake_done)
    engine.write(b"request")
    with pytest.raises(ssl.SSLWantReadError):
        engine.unwrap()  # our close_notify goes out; theirs is awaited
    got = bytearray()

    def got_reply() -> bool:
        pump()
        try:
            got.extend(engine.read(65536))
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass
        return got == b"reply owed"

    run_until(loop, got_reply)
    assert server.received == b"request"
    assert server.eof and server.tls_state is TLSState.PEER_CLOSED
    server.close()  # sends its close_notify: the peer's unwrap completes
    run_until(loop, lambda: pump() is None and server.closed and _unwrapped(engine))
    b.close()


def _unwrapped(engine: ssl.SSLObject) -> bool:
    try:
        engine.unwrap()
    except ssl.SSLWantReadError:
        return False
    return True


def test_tiny_socket_buffer_backpressure_then_drain(loop: Loop, pki: TLSFiles) -> None:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    server = make_peer(loop, a)
    client = make_peer(loop, b)
    server.start_tls(server_context(pki.server_cert, pki.server_key), server_side=True)
    client.start_tls(client_context(ca=pki.ca), server_side=False, server_hostname="localhost")
    client.connection_made()
    run_until(loop, lambda: server.ready and client.ready)
    client.pause_reading()  # the reader does not read: the writer's kernel buffer fills
    payload = b"".join(i.to_bytes(4, "big") for i in range(256 * 1024))  # 1 MiB
    for offset in range(0, len(payload), 65536):
        server.send_bytes(payload[offset : offset + 65536])
    assert server.writing and server.interest & EV_WRITE
    assert server.unsent_bytes > len(payload) // 2
    for _ in range(5):
        loop.run_once(0.01)
    assert server.writing  # still stuck: nobody reads
    client.resume_reading()
    run_until(loop, lambda: len(client.received) == len(payload))
    assert bytes(client.received) == payload
    run_until(loop, lambda: not server.writing)
    assert server.drained >= 1 and not server.interest & EV_WRITE
    server.close()
    client.close()


def test_plain_text_peer_is_closed_at_once(loop: Loop, pki: TLSFiles) -> None:
    a, b = socket.socketpair()
    server = make_peer(loop, a)
    server.start_tls(server_context(pki.server_cert, pki.server_key), server_side=True)
    b.sendall(b"*1\r\n$4\r\nPING\r\n")
    started = time.monotonic()
    run_until(loop, lambda: server.closed, seconds=2.0)
    assert server.failed is not None and "version" in server.failed
    b.settimeout(2.0)
    received = b""
    for _ in range(10):  # an alert perhaps, then EOF: never the plain-text reply, never a hang
        data = b.recv(4096)
        if not data:
            break
        received += data
    else:
        raise AssertionError(f"no EOF after {received!r}")
    assert b"PONG" not in received
    assert time.monotonic() - started < 2.0
    b.close()


def test_handshake_timeout_closes(loop: Loop, pki: TLSFiles) -> None:
    a, b = socket.socketpair()
    server = make_peer(loop, a)
    server.start_tls(server_context(pki.server_cert, pki.server_key), server_side=True, timeout=0.1)
    run_until(loop, lambda: server.closed, seconds=2.0)
    assert server.failed == "handshake timed out"
    b.close()


def test_a_peer_that_says_nothing_and_leaves_is_an_eof_not_a_failure(
    loop: Loop, pki: TLSFiles
) -> None:
    a, b = socket.socketpair()
    server = make_peer(loop, a)
    server.start_tls(server_context(pki.server_cert, pki.server_key), server_side=True)
    b.close()
    run_until(loop, lambda: server.closed)
    assert server.eof and server.failed is None


def test_peer_closing_mid_handshake_fails_it(loop: Loop, pki: TLSFiles) -> None:
    a, b = socket.socketpair()
    client = make_peer(loop, a)
    client.start_tls(client_context(ca=pki.ca), server_side=False, server_hostname="localhost")
    client.connection_made()  # ClientHello sent
    b.recv(4096)
    b.close()
    run_until(loop, lambda: client.closed)
    assert client.failed is not None and "during the handshake" in client.failed


@pytest.mark.parametrize(
    ("cert", "ca", "reason"),
    [
        ("other_server", "ca", "unable to get local issuer certificate"),
        ("expired", "ca", "certificate has expired"),
    ],
)
def test_verification_failures_name_the_reason(
    loop: Loop, pki: TLSFiles, cert: str, ca: str, reason: str
) -> None:
    cert_path = getattr(pki, f"{cert}_cert")
    key_path = getattr(pki, f"{cert}_key")
    server, client = tls_pair(
        loop,
        pki,
        server_ctx=server_context(cert_path, key_path),
        client_ctx=client_context(ca=getattr(pki, ca)),
    )
    run_until(loop, lambda: client.closed and server.closed)
    assert client.failed is not None and reason in client.failed
    assert not client.tls_established


def test_mutual_tls_refuses_a_peer_without_a_certificate(loop: Loop, pki: TLSFiles) -> None:
    strict = server_context(pki.server_cert, pki.server_key, ca=pki.ca)
    server, client = tls_pair(loop, pki, server_ctx=strict)
    run_until(loop, lambda: server.closed)
    assert server.failed is not None and "certificate" in server.failed
    run_until(loop, lambda: client.closed)  # TLS 1.3: the client learns it on its first read
    with_cert = client_context(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
    server, client = tls_pair(loop, pki, server_ctx=strict, client_ctx=with_cert)
    run_until(loop, lambda: server.ready and client.ready)
    server.close()
    client.close()


def test_version_limits_are_enforced(loop: Loop, pki: TLSFiles) -> None:
    only13 = server_context(pki.server_cert, pki.server_key, versions=["TLSv1.3"])
    only12 = client_context(ca=pki.ca, versions=["TLSv1.2"])
    server, client = tls_pair(loop, pki, server_ctx=only13, client_ctx=only12)
    run_until(loop, lambda: server.closed and client.closed)
    assert server.failed is not None and client.failed is not None


def test_contexts_are_tls12_or_later_without_renegotiation(pki: TLSFiles) -> None:
    for context in (server_context(pki.server_cert, pki.server_key), client_context(ca=pki.ca)):
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert context.options & ssl.OP_NO_RENEGOTIATION
    assert client_context(ca=pki.ca).verify_mode == ssl.CERT_REQUIRED
    assert client_context(ca=pki.ca).check_hostname


@pytest.mark.parametrize(
    ("kwargs", "role", "words"),
    [
        ({"cert": "/nonexistent.crt"}, "cert", "no such file"),
        ({"key": "/nonexistent.key"}, "key", "no such file"),
        ({"cert": "server_key"}, "cert", "no PEM certificate"),
        ({"key": "client_key"}, "key", "does not match"),
        ({"ca": "/nonexistent-ca.crt"}, "ca", "no such file"),
        ({"ca": "server_key"}, "ca", "cannot load CA"),
        ({"versions": ["TLSv1.1"]}, "versions", "unknown TLS version"),
        ({"ciphers": "NOT-A-CIPHER"}, "ciphers", "no cipher matches"),
    ],
)
def test_setup_errors_name_the_setting(
    pki: TLSFiles, kwargs: dict[str, object], role: str, words: str
) -> None:
    args: dict[str, object] = {"cert": pki.server_cert, "key": pki.server_key}
    for name, value in kwargs.items():
        is_file = isinstance(value, str) and hasattr(pki, value)
        args[name] = getattr(pki, value) if is_file else value
    with pytest.raises(TLSSetupError) as info:
        server_context(**args)  # type: ignore[arg-type]
    assert info.value.role == role
    assert words in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)


def test_an_encrypted_key_is_refused_without_prompting(pki: TLSFiles, tmp_path: object) -> None:
    import subprocess

    encrypted = f"{pki.directory}/encrypted.key"
    subprocess.run(
        [
            str(openssl_binary()),
            "pkey",
            "-in",
            pki.server_key,
            "-aes256",
            "-passout",
            "pass:secret-passphrase",
            "-out",
            encrypted,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    with pytest.raises(TLSSetupError) as info:
        server_context(pki.server_cert, encrypted)
    assert info.value.role == "key" and "encrypted" in str(info.value)
    assert "secret-passphrase" not in str(info.value)


@settings(max_examples=15, deadline=None)
@given(
    up=st.lists(st.binary(min_size=1, max_size=40_000), min_size=1, max_size=6),
    down=st.lists(st.binary(min_size=1, max_size=40_000), max_size=6),
)
def test_any_writes_arrive_intact_and_in_order(
    pki: TLSFiles, up: list[bytes], down: list[bytes]
) -> None:
    loop = make_loop()
    try:
        server, client = tls_pair(loop, pki)
        for i, chunk in enumerate(up):
            (client.send_bytes if i % 2 else client.queue_bytes)(chunk)
        run_until(loop, lambda: server.ready)
        for chunk in down:
            server.send_bytes(chunk)
        want_up, want_down = b"".join(up), b"".join(down)
        client.send_bytes(b"!")
        run_until(
            loop,
            lambda: (
                len(server.received) == len(want_up) + 1 and len(client.received) == len(want_down)
            ),
        )
        assert bytes(server.received) == want_up + b"!"
        assert bytes(client.received) == want_down
        server.close()
        client.close()
    finally:
        loop.backend.close()


@given(st.sampled_from(TLSState), st.sampled_from(TLSEvent))
def test_every_state_and_event_moves_or_raises(state: TLSState, event: TLSEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) in TLSState
    else:
        with pytest.raises(LocalProtocolError, match=f"{state.name}.*{event.name}"):
            next_state(state, event)


def test_every_live_state_can_close() -> None:
    for state in TLSState:
        if state is not TLSState.CLOSED:
            assert next_state(state, TLSEvent.CLOSE) is TLSState.CLOSED
