"""The non-blocking stream connection every corenet connection builds on.

A :class:`Stream` owns one connected (or listening) socket registered with a
:class:`~corenet.loop.Loop`.  It knows nothing of what the bytes mean:

* **Reading.** :meth:`Stream.handle_read` calls ``recv`` until a short read
  (a ``recv`` that would block costs as much as one that returns data) or a
  bound per turn, and hands each chunk to :meth:`data_received`; end of
  stream goes to :meth:`read_eof`, a socket error to :meth:`read_error`.
  :meth:`pause_reading`/:meth:`resume_reading` are the backpressure switch:
  a paused stream is not read and its read interest is off.
* **Writing.** :meth:`send_bytes` tries the kernel at once and keeps what it
  did not take as one memoryview plus a list of later chunks; write
  interest is on only while that output is non-empty (never toggled per
  message), and :meth:`output_drained` is called when it empties.
  :attr:`unsent_bytes` is what a subclass compares with its limits.
* **Batching.** A subclass that produces output during a turn asks the loop
  for one :meth:`flush` at the end of it (``loop.schedule_flush(self)``), so
  many messages leave in one ``send``.

A stream interested in nothing (paused, with no output) is taken out of the
backend altogether and put back when it wants something again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.event import EV_READ, EV_WRITE

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from corenet.loop import Loop

__all__ = ["DEFAULT_READ_SIZE", "MAX_READS_PER_TURN", "Stream"]

DEFAULT_READ_SIZE = 16384
MAX_READS_PER_TURN = 8
"""Reads one busy peer gets per loop turn, so others are not starved."""


class Stream:
    """A socket, its loop, its interest mask, and its buffered output."""

    kind = "stream"

    def __init__(self, loop: Loop, sock: socket.socket) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.closed = False
        self.flush_scheduled = False
        self._unsent: memoryview | None = None
        self._backlog: list[bytes] = []
        self._mask = 0
        self.read_size = DEFAULT_READ_SIZE
        self.reading = True
        # Where handle_read hands what it read: the stream's own handlers,
        # or a transport's in between (TLSStream decrypts first).  Bound
        # once here, so the plain path pays nothing for the choice.
        self._bytes_in: Callable[[bytes], None] = self.data_received
        self._eof_in: Callable[[], None] = self.read_eof
        self._error_in: Callable[[OSError], None] = self.read_error

    def __repr__(self) -> str:
        return f"<{type(self).__name__} fd={self.fd}{' closed' if self.closed else ''}>"

    # -- registration ------------------------------------------------------

    def register(self, mask: int) -> None:
        """Hand this stream to its loop, watching ``mask``."""
        self.loop.add(self.fd, self, mask)
        self._mask = mask

    @property
    def interest(self) -> int:
        """The ``EV_*`` mask the backend watches for this stream."""
        return self._mask

    def set_interest(self, mask: int) -> None:
        """Watch ``mask`` from now on (0: leave the backend until wanted again)."""
        if mask == self._mask or self.closed:
            return
        backend = self.loop.backend
        if self._mask == 0:
            backend.register(self.fd, mask)
        elif mask == 0:
            backend.unregister(self.fd)
        else:
            backend.modify(self.fd, mask)
        self._mask = mask

    # -- reading -----------------------------------------------------------

    def pause_reading(self) -> None:
        """Stop reading (backpressure); output still drains."""
        self.reading = False
        self.set_interest(self._mask & ~EV_READ)

    def resume_reading(self) -> None:
        self.reading = True
        self.set_interest(self._mask | EV_READ)

    def handle_read(self) -> None:
        """Read until a short read (or a bound), handing each chunk on."""
        recv = self.sock.recv
        size = self.read_size
        received = self._bytes_in
        for _ in range(MAX_READS_PER_TURN):
            if not self.reading:
                return
            try:
                data = recv(size)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as exc:
                self._error_in(exc)
                return
            if not data:
                self._eof_in()
                return
            received(data)
            if len(data) < size or self.closed:
                return

    def connection_made(self) -> None:
        """The socket's connect completed (streams that connect out call it).

        A plain stream can carry data at once: :meth:`connection_ready`.  A
        TLS stream starts its handshake here instead.
        """
        self.connection_ready()

    def connection_ready(self) -> None:
        """Application data flows from now on (TLS: the handshake is done)."""

    def data_received(self, data: bytes) -> None:
        """Handle one chunk read from the socket."""

    def read_eof(self) -> None:
        """The peer will send no more; by default, close."""
        self.close()

    def read_error(self, exc: OSError) -> None:
        self.abort(exc)

    # -- writing -----------------------------------------------------------

    @property
    def unsent_bytes(self) -> int:
        """Bytes queued for this socket that the kernel has not taken yet."""
        pending = len(self._unsent) if self._unsent is not None else 0
        return pending + sum(map(len, self._backlog))

    @property
    def writing(self) -> bool:
        """Whether output is waiting for the kernel to take it."""
        return self._unsent is not None

    def send_bytes(self, data: bytes) -> None:
        """Write ``data`` now if the kernel takes it, else keep it for later."""
        if self._unsent is not None:
            self._backlog.append(data)
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self.abort(exc)
            return
        if sent < len(data):
            self._unsent = memoryview(data)[sent:]
            self.set_interest(self._mask | EV_WRITE)

    def queue_bytes(self, data: bytes) -> None:
        """Keep ``data`` to be written with the next output (set-up requests
        queued before a connect completes)."""
        self._backlog.append(data)

    def handle_write(self) -> None:
        while self._unsent is not None:
            try:
                sent = self.sock.send(self._unsent)
            except BlockingIOError:
                return
            except OSError as exc:
                self.abort(exc)
                return
            if sent < len(self._unsent):
                self._unsent = self._unsent[sent:]
                return
            self._unsent = self._take_backlog() if self._backlog else None
        if not self.closed:
            self.set_interest(self._mask & ~EV_WRITE)
            self.output_drained()

    def _take_backlog(self) -> memoryview | None:
        """The next bytes to write, from the backlog (only called when it is not
        empty: once per drain, never per write); None leaves it for later."""
        data = memoryview(b"".join(self._backlog))
        self._backlog = []
        return data

    def output_drained(self) -> None:
        """Called when everything queued has been written."""

    def flush(self) -> None:
        """Write what became ready during this loop turn."""

    # -- closing -----------------------------------------------------------

    def abort(self, exc: BaseException) -> None:
        """Called when this stream's handler raised or its socket failed."""
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.remove(self.fd, registered=self._mask != 0)
        self._unsent = None
        self._backlog = []
        try:
            self.sock.close()
        except OSError:
            pass
