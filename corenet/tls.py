"""TLS for streams: the standard library's TLS engine on memory BIOs, in corenet's loop.

:class:`TLSStream` is a :class:`~corenet.stream.Stream` whose socket carries
TLS records.  It runs an :class:`ssl.SSLObject` over two
:class:`ssl.MemoryBIO` (bytes read from the socket go into one, records to
write come out of the other), so the engine never touches the socket and
the loop stays in charge of every ``recv`` and ``send``:

* **Handshake.**  A server-side stream (an accepted socket) starts when
  :meth:`TLSStream.start_tls` is called and answers the peer's ClientHello;
  a client-side one sends its ClientHello when :meth:`connection_made` says
  the connect completed.  ``WANT_READ`` means "wait for more bytes", and is
  where a read turn ends; with memory BIOs the engine never wants to write
  (the outgoing BIO takes everything), so the only write wait is the
  kernel's, handled like any other output.  When the handshake is done,
  :meth:`connection_ready` is called: from then on the subclass's
  :meth:`data_received` gets plaintext and :meth:`send_bytes` encrypts.  A
  handshake that fails, or does not finish within ``timeout``, sends the
  engine's alert (if any) once and calls :meth:`handshake_failed` with a
  one-line reason (never key material); by default the stream closes.
* **Output.**  The stream's ``_unsent`` holds ciphertext the kernel did not
  take, ``_backlog`` plaintext queued behind it, encrypted only when the
  kernel takes more: so :attr:`unsent_bytes`, write interest, backpressure
  and :meth:`output_drained` mean for a TLS stream what they mean for a
  plain one, and a subclass's batching code works unchanged.
* **Closing.**  A peer that connects and closes without sending a byte (a
  port probe) is an end of stream, :meth:`read_eof`, not a failed
  handshake.  A peer's ``close_notify``, or its TCP EOF without one (most
  Redis and memcache clients simply close), is the end of its data:
  :meth:`read_eof`, and the stream stays writable (half-closed), so what is
  owed to the peer still goes out.  Closing our side sends our own
  ``close_notify`` with one non-blocking write, without waiting for the
  peer's.  Renegotiation is refused by the engine (every context made here
  sets ``OP_NO_RENEGOTIATION``); TLS 1.3 has none.

States and their transitions are a table (:mod:`corenet._tls_state`).

The plain path pays nothing for this: :class:`~corenet.stream.Stream` has no
TLS branch; a connection class that can run over TLS is composed with this
one (``class TLSConn(Conn, TLSStream)``, so the connection's own methods
come first and call down into these).

:func:`server_context` and :func:`client_context` build the contexts,
TLS 1.2 or later by default, reading the certificate files when called (so
calling them again reads changed files anew); a file that is missing or
does not load raises :class:`TLSSetupError` naming which one.
"""

from __future__ import annotations

import errno
import os
import ssl
from typing import TYPE_CHECKING

from corenet._tls_state import NOTIFY_ON_CLOSE, WRITABLE, TLSEvent, TLSState, next_state
from corenet.errors import ConfigError
from corenet.stream import Stream

if TYPE_CHECKING:
    import socket
    from collections.abc import Sequence

    from corenet.loop import Loop
    from corenet.timers import TimerHandle

__all__ = [
    "TLS_VERSIONS",
    "TLSEvent",
    "TLSSetupError",
    "TLSState",
    "TLSStream",
    "client_context",
    "describe_error",
    "server_context",
]

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
"""Protocol versions a context may be limited to; older ones are never offered."""

_RECORD = 16384  # the largest plaintext a TLS record carries: one read() per record
_HANDSHAKING = TLSState.HANDSHAKING
_OPEN = TLSState.OPEN


def describe_error(exc: ssl.SSLError) -> str:
    """A one-line reason for a TLS failure, for logs and error replies.

    OpenSSL's reason code, in words (``wrong version number``), or what
    certificate verification said (``certificate has expired``): never key
    material.
    """
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    if reason:
        return str(reason).lower().replace("_", " ")
    return exc.strerror or type(exc).__name__


class TLSStream(Stream):
    """A stream whose bytes are TLS records; see the module docstring.

    Call :meth:`start_tls` right after creating it.  Subclasses override
    :meth:`connection_ready` (handshake done), :meth:`handshake_failed` and,
    as for any stream, :meth:`data_received`, :meth:`read_eof`,
    :meth:`read_error`.
    """

    kind = "tls"

    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        super().__init__(loop, sock)
        self.tls_state = _HANDSHAKING
        self.tls_established = False
        """True once the handshake completed (it stays True after close)."""
        self._tls_writable = False
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        self._tls_timer: TimerHandle | None = None
        self._tls_heard = False  # any byte from the peer yet
        # What Stream.handle_read reads goes through the engine first.
        self._bytes_in = self._ciphertext_in
        self._eof_in = self._tcp_eof
        self._error_in = self._tcp_error

    def start_tls(
        self,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Put the TLS engine on this stream.

        Args:
            context: from :func:`server_context` (``server_side``) or
                :func:`client_context`.
            server_side: True for an accepted socket, False for one we connect.
            server_hostname: the name sent as SNI and checked against the
                peer's certificate (client side).
            timeout: seconds the handshake may take (from now) before the
                stream gives up on it; None for no limit.

        Raises:
            ValueError: the context checks host names and none was given.
        """
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        if timeout is not None:
            self._tls_timer = self.loop.timers.call_later(timeout, self._handshake_timed_out)

    @property
    def tls_version(self) -> str | None:
        """The negotiated protocol version (``TLSv1.3``), None before the handshake."""
        return self._tls.version() if self._tls is not None and self.tls_established else None

    def _tls_move(self, event: TLSEvent) -> None:
        self.tls_state = next_state(self.tls_state, event)
        self._tls_writable = self.tls_state in WRITABLE

    # -- life cycle hooks --------------------------------------------------

    def connection_made(self) -> None:
        # The connect completed: a client-side engine speaks first.
        if self.tls_state is _HANDSHAKING:
            self._handshake_step()

    def handshake_failed(self, reason: str) -> None:
        """The handshake failed or timed out (``reason``: one line); by default, close."""
        self.close()

    # -- handshake ---------------------------------------------------------

    def _handshake_step(self) -> bool:
        """Advance the handshake with what was read; True once it is done."""
        assert self._tls is not None, "start_tls() was not called"
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._send_raw(self._outgoing.read())
            return False
        except ssl.SSLError as exc:
            self._handshake_error(describe_error(exc))
            return False
        self._tls_move(TLSEvent.HANDSHAKE_DONE)
        self.tls_established = True
        self._cancel_timer()
        self._send_raw(self._outgoing.read())  # our last flight (Finished, tickets)
        if self.closed:
            return False
        if self._backlog and self._unsent is None:
            queued = b"".join(self._backlog)
            self._backlog = []
            self.send_bytes(queued)
        self.connection_ready()
        return not self.closed

    def _handshake_error(self, reason: str) -> None:
        if self.closed:
            return
        self._tls_move(TLSEvent.HANDSHAKE_ERROR)
        self._cancel_timer()
        self._send_alert()
        self.handshake_failed(reason)

    def _handshake_timed_out(self) -> None:
        self._tls_timer = None
        if self.tls_state is _HANDSHAKING and not self.closed:
            self._handshake_error("handshake timed out")

    def _cancel_timer(self) -> None:
        if self._tls_timer is not None:
            self._tls_timer.cancel()
            self._tls_timer = None

    def _send_alert(self) -> None:
        # What the engine wrote last (an alert, a close_notify): one try, no
        # waiting, since the stream is about to close.
        data = self._outgoing.read()
        if data and self._unsent is None:
            try:
                self.sock.send(data)
            except OSError:
                pass

    # -- reading -----------------------------------------------------------

    def _ciphertext_in(self, data: bytes) -> None:
        # Stream.handle_read hands us each chunk read: records for the engine.
        self._incoming.write(data)
        if self.tls_state is _HANDSHAKING:
            self._tls_heard = True
            if not self._handshake_step():
                return
        elif self.tls_state is not _OPEN:
            return  # after the peer's close_notify: nothing more is data
        self._decrypt()

    def _tcp_error(self, exc: OSError) -> None:
        if self.tls_state is _HANDSHAKING:
            self._handshake_error(exc.strerror or str(exc))
        else:
            self.read_error(exc)

    def _decrypt(self) -> None:
        """Hand every complete record read so far to :meth:`data_received`, as one chunk."""
        tls = self._tls
        assert tls is not None
        incoming = self._incoming
        chunks: list[bytes] = []
        notified = False
        try:
            while True:
                chunk = tls.read(_RECORD)
                if not chunk:  # the engine returns b"" for the peer's close_notify
                    notified = True
                    break
                chunks.append(chunk)
                # Stop before a read that can only raise SSLWantReadError
                # (raising costs more than the test).
                if not incoming.pending and not tls.pending():
                    break
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            notified = True
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        if self._outgoing.pending:  # post-handshake messages the engine answers
            self._send_raw(self._outgoing.read())
        if chunks:
            self.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if notified and not self.closed:
            self._peer_done(TLSEvent.CLOSE_NOTIFY)

    def _tcp_eof(self) -> None:
        if self.tls_state is _HANDSHAKING:
            if self._tls is not None and self._tls.server_side and not self._tls_heard:
                # Connected and left without a word (a port probe, a health
                # check): an end of stream like any other, no failed handshake.
                self._cancel_timer()
                self.read_eof()
                return
            self._handshake_error("the peer closed the connection during the handshake")
        elif self.tls_state is _OPEN:
            self._peer_done(TLSEvent.PEER_EOF)
        elif self.tls_state is TLSState.PEER_CLOSED:
            self._tls_move(TLSEvent.PEER_EOF)

    def _peer_done(self, event: TLSEvent) -> None:
        self._tls_move(event)
        self.read_eof()

    def _fatal(self, exc: ssl.SSLError) -> None:
        self._tls_move(TLSEvent.FATAL)
        self._send_alert()
        self.read_error(OSError(errno.EPROTO, f"TLS: {describe_error(exc)}"))

    # -- writing -----------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        if self._unsent is not None or not self._tls_writable:
            self._backlog.append(data)
            return
        if not data:
            return
        assert self._tls is not None
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        super().send_bytes(self._outgoing.read())

    def _send_raw(self, records: bytes) -> None:
        """Write records the engine produced on its own (handshake flights, alerts)."""
        if not records:
            return
        if self._unsent is not None:
            # Rare (the engine speaks while output is stuck): records keep
            # their order behind what is already encrypted.
            self._unsent = memoryview(self._unsent.tobytes() + records)
            return
        super().send_bytes(records)

    def _take_backlog(self) -> memoryview | None:
        # Plaintext waits behind ciphertext; it is encrypted only now, when
        # the kernel takes more, and not at all during the handshake.
        if not self._tls_writable:
            return None
        assert self._tls is not None
        queued = b"".join(self._backlog)
        self._backlog = []
        try:
            self._tls.write(queued)
        except ssl.SSLError as exc:
            self._fatal(exc)
            return None
        return memoryview(self._outgoing.read())

    # -- closing -----------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self._cancel_timer()
        if self.tls_state in NOTIFY_ON_CLOSE and self._tls is not None:
            try:
                self._tls.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the peer's close_notify is not waited for
            self._send_alert()
        self._tls_move(TLSEvent.CLOSE)
        super().close()


# --------------------------------------------------------------------------
# contexts


class TLSSetupError(ConfigError):
    """A TLS setting cannot be used; ``role`` says which one.

    ``role`` is ``"cert"``, ``"key"``, ``"ca"``, ``"versions"`` or
    ``"ciphers"``; the message names the file (never its contents).
    """

    def __init__(self, role: str, message: str) -> None:
        super().__init__(message)
        self.role = role


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> str:
    # Without a callback OpenSSL would prompt on the terminal for a passphrase.
    raise _EncryptedKey


def _limit(context: ssl.SSLContext, versions: Sequence[str], ciphers: str | None) -> None:
    unknown = [v for v in versions if v not in TLS_VERSIONS]
    if unknown:
        known = ", ".join(TLS_VERSIONS)
        raise TLSSetupError("versions", f"unknown TLS version {unknown[0]!r} (known: {known})")
    chosen = sorted(TLS_VERSIONS[v] for v in versions) or [ssl.TLSVersion.TLSv1_2]
    context.minimum_version = chosen[0]
    if versions:
        context.maximum_version = chosen[-1]
    # Renegotiation is a DoS lever and a source of confusion about who the
    # peer is; nothing we speak needs it.
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    if ciphers is not None:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise TLSSetupError("ciphers", f"no cipher matches {ciphers!r}") from None


def _check_file(role: str, path: str) -> None:
    if not os.path.isfile(path):
        raise TLSSetupError(role, f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise TLSSetupError(role, f"{path}: not readable")


def _load_chain(context: ssl.SSLContext, cert: str, key: str | None) -> None:
    _check_file("cert", cert)
    if key is not None:
        _check_file("key", key)
    with open(cert, "rb") as fh:
        if b"-----BEGIN CERTIFICATE-----" not in fh.read():
            raise TLSSetupError("cert", f"{cert}: no PEM certificate in this file")
    key_role = "key" if key is not None else "cert"
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _EncryptedKey:
        raise TLSSetupError(
            key_role, f"{key or cert}: the private key is encrypted (use an unencrypted key)"
        ) from None
    except ssl.SSLError as exc:
        if getattr(exc, "reason", None) == "KEY_VALUES_MISMATCH":
            raise TLSSetupError(
                key_role, f"{key or cert}: the private key does not match the certificate {cert}"
            ) from None
        raise TLSSetupError(
            key_role, f"{key or cert}: cannot load the private key: {describe_error(exc)}"
        ) from None


def _load_ca(context: ssl.SSLContext, ca: str) -> None:
    _check_file("ca", ca)
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        reason = describe_error(exc)
        raise TLSSetupError("ca", f"{ca}: cannot load CA certificates: {reason}") from None


def server_context(
    cert: str,
    key: str | None = None,
    *,
    ca: str | None = None,
    versions: Sequence[str] = (),
    ciphers: str | None = None,
    session_tickets: bool = False,
) -> ssl.SSLContext:
    """A context for accepting TLS connections.

    Args:
        cert: PEM certificate chain (it may hold the key too).
        key: PEM private key, unencrypted.
        ca: PEM CA certificates: when given, every peer must present a
            certificate they signed (mutual TLS); else none is asked for.
        versions: the ``TLS_VERSIONS`` allowed (default: TLS 1.2 and later).
        ciphers: an OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are
            OpenSSL's defaults).
        session_tickets: send TLS 1.3 session tickets.  Off by default: the
            server sends them after the handshake, when the client already
            thinks it is connected, and clients that check a fresh pooled
            connection by polling its socket (redis-py does) then find
            "unread data" and drop the connection.

    Raises:
        TLSSetupError: a file is missing or does not load, or a setting is unknown.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _limit(context, versions, ciphers)
    if not session_tickets:
        context.num_tickets = 0
    _load_chain(context, cert, key)
    if ca is not None:
        _load_ca(context, ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    *,
    ca: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    verify: bool = True,
    versions: Sequence[str] = (),
    ciphers: str | None = None,
) -> ssl.SSLContext:
    """A context for connecting over TLS: the peer is verified by default.

    Args:
        ca: PEM CA certificates to verify the peer with (default: the
            system's store).
        cert, key: our own certificate and key, for peers that ask for one.
        verify: False accepts any certificate and any host name (testing only).
        versions, ciphers: as for :func:`server_context`.

    Raises:
        TLSSetupError: a file is missing or does not load, or a setting is unknown.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, host names checked
    _limit(context, versions, ciphers)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca is not None:
        _load_ca(context, ca)
    else:
        context.load_default_certs()
    if cert is not None:
        _load_chain(context, cert, key)
    return context
