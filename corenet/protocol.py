"""What a protocol plugin provides: sans-IO parsers and a few policies.

The core never looks inside the bytes: it asks the pool's protocol for a
request parser per client connection and a reply parser per server
connection, and calls them on whatever it received.  Parsers know nothing
of sockets; they see ``bytes`` and a start offset.

Parser contract (both directions):

* ``parse(buf, pos)`` looks for one complete message starting at
  ``buf[pos]``.  It returns the message (request: a :class:`~corenet.msg.Msg`
  with ``end`` set; reply: the end offset) or ``None`` / ``-1`` when the
  message is incomplete.
* After an incomplete result ``resume_at`` is the offset where the pending
  message starts (a parser may skip empty commands before it), and ``need``
  is how many bytes from ``resume_at`` must be buffered before another call
  can make progress (0 when unknown).  The caller keeps ``buf[resume_at:]``
  and calls again with that message at the start of a longer buffer; the
  parser may keep state to resume the scan, so total work stays O(n).
* Malformed input raises :class:`~corenet.errors.ProtocolError` carrying the
  protocol-correct error reply and whether to close.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from typing import Protocol as TypingProtocol

if TYPE_CHECKING:
    from corenet.config import PoolConfig
    from corenet.msg import Msg

__all__ = ["Protocol", "ReplyParser", "RequestParser", "Splitter"]


class RequestParser(TypingProtocol):
    """Parses a client's byte stream into requests; one per client connection."""

    resume_at: int
    need: int
    variant: int
    """Which backend connection set this client's requests use (see
    :attr:`Protocol.variants`); 0 unless the client switched (Redis ``HELLO 3``)."""

    def parse(self, buf: bytes, pos: int) -> Msg | None:
        """Return the next request starting at ``buf[pos]``, or None if incomplete.

        Raises:
            ProtocolError: the bytes cannot be a request; its ``reply`` is sent
                to the client, after the replies of earlier requests.
        """
        ...


class ReplyParser(TypingProtocol):
    """Finds reply boundaries in a server's byte stream; one per server connection."""

    resume_at: int
    need: int

    def parse(self, buf: bytes, pos: int) -> int:
        """Return the end offset of the reply starting at ``buf[pos]``, or -1.

        Raises:
            ProtocolError: the server sent bytes that are not a reply.
        """
        ...


Splitter = Callable[["Msg", Callable[[bytes], int]], "Sequence[tuple[int, Msg]]"]
"""``fragment(msg, server_of)``: split a fan-out request into ``(server index, fragment)``."""


class Protocol(TypingProtocol):
    """A wire protocol as the proxy core uses it; resolved once per pool."""

    name: str
    variants: int
    """How many flavours of backend connection the protocol needs: requests of
    clients in different variants never share a backend connection (Redis: 2,
    for RESP2 and RESP3 clients).  Optional; 1 when absent."""

    def new_request_parser(self, pool: PoolConfig) -> RequestParser:
        """Return a fresh request parser for a new client connection of ``pool``."""
        ...

    def new_reply_parser(self) -> ReplyParser:
        """Return a fresh reply parser for a new server connection."""
        ...

    def error_reply(self, message: str) -> bytes:
        """Return the wire bytes of a proxy-generated error (e.g. ``Connection refused``)."""
        ...

    def server_handshake(self, pool: PoolConfig, variant: int) -> Sequence[bytes]:
        """Return the requests to send first on a new server connection of
        ``variant`` (AUTH, SELECT, HELLO 3); their replies are discarded."""
        ...

    def fragment(self, msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
        """Split an ``ACTION_FANOUT`` request into per-server fragments.

        ``server_of(key)`` returns the index of the server a key routes to.
        Each fragment's ``parent`` is ``msg``; ``msg.merge`` builds the reply.
        """
        ...
