"""A minimal HTTP/1.x responder on corenet's own loop (for ``/metrics``).

It is not a web server: each connection carries one request, whose request
line and headers are read (at most ``MAX_REQUEST_BYTES``; a body is never
read), handed to a handler that returns the whole response, which is
written with ``Connection: close`` before the connection is closed.  A
client that sends nothing complete within ``IDLE_TIMEOUT`` seconds is
dropped, so a scraper that hangs cannot pin a descriptor.

Everything happens on the proxy's loop, between the data path's turns, so
answering a scrape costs the data path only the time spent rendering it.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

import attrs

from corenet.event import EV_READ
from corenet.net import ListenAddress, Listener
from corenet.stream import Stream

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop
    from corenet.timers import TimerHandle

__all__ = ["HttpRequest", "HttpResponse", "HttpServer"]

logger = logging.getLogger("corenet.http")

MAX_REQUEST_BYTES = 8192
IDLE_TIMEOUT = 10.0

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


@attrs.frozen
class HttpRequest:
    """A request line and its headers (names lower-cased)."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]


@attrs.frozen
class HttpResponse:
    """A complete response."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    def encode(self, *, head: bool = False) -> bytes:
        """The response on the wire; ``head`` leaves the body out."""
        lines = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Unknown')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head else self.body)


def parse_request(data: bytes) -> HttpRequest | None:
    """Parse the head of a request (through the blank line), or None if malformed."""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
        return None
    head = text.split("\r\n\r\n", 1)[0]
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        headers[name.lower()] = value.strip()
    return HttpRequest(parts[0], parts[1], headers)


class _HttpClient(Stream):
    kind = "http"

    def __init__(
        self, loop: Loop, sock: socket.socket, handler: Callable[[HttpRequest], HttpResponse]
    ) -> None:
        super().__init__(loop, sock)
        self.handler = handler
        self.buffer = bytearray()
        self.answered = False
        self.timer: TimerHandle | None = loop.timers.call_later(IDLE_TIMEOUT, self.close)

    def handle_read(self) -> None:
        if self.answered:
            # The request is answered; anything more (a body, a second
            # request) is read and dropped until the output drains.
            self._drain_input()
            return
        try:
            data = self.sock.recv(MAX_REQUEST_BYTES + 1 - len(self.buffer))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer:
            request = parse_request(bytes(self.buffer))
            if request is None:
                self.respond(HttpResponse(400, b"bad request\n"))
            else:
                self.respond(self._dispatch(request), head=request.method == "HEAD")
        elif len(self.buffer) > MAX_REQUEST_BYTES:
            self.respond(HttpResponse(431, b"request head too large\n"))

    def _drain_input(self) -> None:
        try:
            if not self.sock.recv(65536):
                self.close()
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close()

    def _dispatch(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.handler(request)
        except Exception:
            logger.exception("HTTP handler failed for %s %s", request.method, request.target)
            return HttpResponse(500, b"internal error\n")

    def respond(self, response: HttpResponse, *, head: bool = False) -> None:
        self.answered = True
        self.buffer = bytearray()
        self.send_bytes(response.encode(head=head))
        if not self.closed and self._unsent is None:
            self._finish()

    def output_drained(self) -> None:
        if self.answered:
            self._finish()

    def _finish(self) -> None:
        # Half-close first so the client reads everything before the FIN;
        # closing with unread input would turn it into a reset.
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.close()

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().close()


class HttpServer:
    """Answers the connections of one listening address with ``handler``.

    Args:
        loop: the loop to serve on.
        handler: ``handler(request) -> response``; an exception becomes a 500.
    """

    def __init__(self, loop: Loop, handler: Callable[[HttpRequest], HttpResponse]) -> None:
        self.loop = loop
        self.handler = handler
        self.listener: Listener | None = None

    @classmethod
    def listen(
        cls, loop: Loop, host: str, port: int, handler: Callable[[HttpRequest], HttpResponse]
    ) -> HttpServer:
        """Bind ``host:port`` and serve ``handler`` on ``loop``.

        Raises:
            OSError: the address cannot be bound.
        """
        server = cls(loop, handler)
        server.listener = Listener.listen(
            loop, ListenAddress(host=host, port=port), server.accept, backlog=64, name="http"
        )
        return server

    @property
    def port(self) -> int:
        """The bound port (useful after binding port 0)."""
        assert self.listener is not None
        return self.listener.port

    def accept(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        client = _HttpClient(self.loop, sock, self.handler)
        client.register(EV_READ)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
