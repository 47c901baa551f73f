"""What a protocol plugin provides: sans-IO parsers and a few policies.

The core never looks inside the bytes: it asks the pool's protocol for a
request parser per client connection and a reply parser per server
connection, and calls them on whatever it received.  Parsers know nothing
of sockets; they see ``bytes`` and a start offset.  A plugin registers one
:class:`Protocol` object through the ``corenet_register_protocols`` hook
(:mod:`corenet.plugin`); nothing needs to inherit from these classes,
they are structural contracts checked by mypy.

Parser contract (both directions): written once, in :mod:`corenet.framing`,
whose :class:`~corenet.framing.Framer` is what calls ``parse``.  In short,
``parse(buf, pos)`` returns the next complete frame (a request ``Msg``, or a
reply's end offset) or ``None`` when it is incomplete, with ``resume_at``
and ``need`` set; malformed input raises
:class:`~corenet.errors.ProtocolError`.

Pool options: a protocol gets its pool's settings as a :class:`PoolOptions`,
a read-only mapping of every key the pool's configuration gave (with the
application's defaults), readable as attributes too (``pool.redis_auth``).
Keys the application does not know are passed through untouched when the
protocol declares them in ``pool_keys``, so a plugin can define its own.

What a request parser sets on each :class:`~corenet.msg.Msg` it returns:

* ``data``: the bytes to forward (usually ``buf[pos:end]``, the bytes the
  client sent); ``end``: the offset just past the request in ``buf``.
* How the key is found: ``key`` is the routing key (hashed after
  ``hash_tag``), or None for a request no server sees.
* ``action`` (:mod:`corenet.msg`): ``ACTION_FORWARD`` (route ``key``,
  forward ``data``); ``ACTION_LOCAL`` with ``reply`` set, for requests the
  proxy answers itself (PING, a wrong argument count, an unknown command,
  denied commands); ``ACTION_CLOSE`` with ``reply`` set, answer then close
  (QUIT); ``ACTION_FANOUT`` for a multi-key request, with ``keys`` listing
  its keys in order and ``info`` whatever :meth:`Protocol.fragment` needs.
* ``expect_reply = False`` and ``reply = b""`` for a request the server does
  not answer (memcache ``noreply``): it is forwarded and nothing is sent
  back to the client for it.

Multi-key requests (fragment and merge): :meth:`Protocol.fragment` gets the
``ACTION_FANOUT`` request and ``server_of(key)``.  It returns one
``(server index, fragment Msg)`` per server, each fragment with ``parent``
set to the request; it sets on the request ``frags`` (the fragments),
``pending`` (their count) and ``merge``, a callable ``merge(msg) -> bytes``
called once every fragment has its ``reply`` that builds the client's one
reply (``protocols/memcache/_fanout.py`` is a short example).  When all
keys route to one server it may return ``[(index, msg)]`` and forward the
request whole; when no server may serve it (Redis: keys that must share a
server and do not), it sets ``msg.reply`` and returns no fragment, and that
reply is the answer.

Error replies: :meth:`Protocol.error_reply` words the errors the proxy
makes up itself (a server refused the connection, timed out, too many
clients) in the protocol's own error format; a ``ProtocolError`` raised by
a parser carries its own ``reply`` (sent to the client) and ``close``.

Backend connection set-up: :meth:`Protocol.server_handshake` returns the
requests sent first on every new server connection (AUTH, SELECT, HELLO);
their replies are read with the reply parser and discarded.
:attr:`Protocol.variants` says how many flavours of server connection a
pool keeps (a request parser's ``variant`` picks one).

Pool facts: a protocol that speaks for the proxy itself (Redis ``INFO``
reports the proxy's own process, clients and counters) may ask the
application for them when it builds such a reply, never per message:
``msg.client.facts()`` (read it with ``getattr``: an application may not
offer it, and a request made in a test has no client) returns a read-only
snapshot mapping with the keys of :data:`POOL_FACTS`.

TLS: the stream layer does it, so a protocol knows nothing of it.  A
protocol whose peers cannot speak TLS may say so with ``supports_tls =
False`` (read with ``getattr``, default True); the application then refuses
TLS settings for its pools.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.msg import Msg

__all__ = [
    "POOL_COUNTER_FACTS",
    "POOL_FACTS",
    "PoolOptions",
    "Protocol",
    "ReplyParser",
    "RequestParser",
]

POOL_COUNTER_FACTS = ("client_eof", "client_err", "server_ejects", "forward_error", "fragments")
"""The pool's counters among :data:`POOL_FACTS`, named as the stats port names them."""

POOL_FACTS: tuple[str, ...] = (
    "pool",  # the pool's name
    "listen",  # where it accepts clients, as written (host:port or a socket path)
    "port",  # its TCP port, 0 for a unix socket
    "process_id",  # the proxy process's pid
    "uptime",  # whole seconds since the process's loop started
    "version",  # the application's version
    "client_connections",  # the pool's client connections now
    "total_connections",  # client connections it accepted since it started
    *POOL_COUNTER_FACTS,
)
"""What ``Msg.client.facts()`` tells a protocol about the pool (module docstring)."""


class PoolOptions(Mapping[str, Any]):
    """A read-only view of one pool's options: ``opts["key"]`` or ``opts.key``.

    Its ``repr`` lists the keys only, so a password never reaches a log.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"pool has no option {name!r}") from None

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("pool options are read-only")

    def __repr__(self) -> str:
        return f"<PoolOptions {sorted(self._values)}>"


class RequestParser(TypingProtocol):
    """Parses a client's byte stream into requests; one per client connection."""

    resume_at: int
    need: int
    variant: int
    """Which backend connection set this client's requests use (see
    :attr:`Protocol.variants`); 0 unless the client switched (Redis ``HELLO 3``)."""

    def parse(self, buf: bytes, pos: int) -> Msg | None:
        """Return the next request starting at ``buf[pos]``, or None if incomplete.

        Called by the client connection after every read, once per complete
        request plus once for the incomplete tail (unless ``need`` says the
        tail cannot be complete yet).  On None, set ``resume_at`` and ``need``.

        Raises:
            ProtocolError: the bytes cannot be a request; its ``reply`` is sent
                to the client, after the replies of earlier requests.
        """
        ...


class ReplyParser(TypingProtocol):
    """Finds reply boundaries in a server's byte stream; one per server connection."""

    resume_at: int
    need: int

    def parse(self, buf: bytes, pos: int) -> int | None:
        """Return the end offset of the reply starting at ``buf[pos]``, or None
        (``-1`` is accepted too) when it is incomplete.

        Called by the server connection like :meth:`RequestParser.parse`; the
        reply is forwarded as ``buf[pos:end]``, so only boundaries matter.

        Raises:
            ProtocolError: the server sent bytes that are not a reply.
        """
        ...


class Protocol(TypingProtocol):
    """A wire protocol as the proxy core uses it; resolved once per pool."""

    name: str
    variants: int
    """How many flavours of backend connection the protocol needs: requests of
    clients in different variants never share a backend connection (Redis:
    one per database and RESP version, made on demand).  Optional; 1 when
    absent.  An optional ``default_variant(pool)`` says which a new client
    uses (what ``preconnect`` opens); 0 when absent."""

    def new_request_parser(self, pool: PoolOptions) -> RequestParser:
        """Return a fresh request parser for a new client connection of ``pool``.

        Called once per accepted client; ``pool`` carries the pool's settings
        (``deny_commands``, ``redis_auth`` and the like).
        """
        ...

    # Optional: def fragment_every(msg, servers: int) -> Sequence[tuple[int, Msg]]
    # for ACTION_EVERY requests (keyless commands about the whole keyspace:
    # DBSIZE, SCAN): ``servers`` is the number of live servers, indexes
    # 0..servers-1; return fragments (parent set, ``msg.merge`` set) for
    # the servers to ask, all of them or one (a SCAN cursor names one).
    #
    # Optional: health_check: bytes, one request any healthy server answers
    # (Redis: PING, memcache: version), sent by active health checks.
    #
    # Optional: def update_request_parser(self, parser, pool: PoolOptions) -> None
    # (not declared here, so that protocols without it still match).  After a
    # configuration reload it is called with each connected client's parser
    # and the pool's new options, between two requests; the client's next
    # requests then follow them (Redis: deny_commands, redis_auth).  Without
    # it, connected clients keep the options they were accepted with.
    #
    # Optional, for protocols with server-side session state
    # (corenet.msg.ACTION_PIN, corenet.msg.PinStep):
    # ``cross_server_error: bytes``, the reply to a pinned request with a key
    # on another server (Redis: -CROSSSLOT); ``is_push(frame) -> bool``, which
    # frames of a subscriber connection are pushed messages rather than
    # replies; ``check_pool(pool) -> None``, raising ``ValueError(key,
    # message)`` for a bad value of one of the protocol's ``pool_keys``.

    def new_reply_parser(self) -> ReplyParser:
        """Return a fresh reply parser; called once per new server connection."""
        ...

    def error_reply(self, message: str) -> bytes:
        """Return the wire bytes of a proxy-generated error (e.g. ``Connection refused``).

        Called when a request cannot be served (server down, timeout, too
        many clients); ``message`` is plain text without the protocol's prefix.
        """
        ...

    def server_handshake(self, pool: PoolOptions, variant: int) -> Sequence[bytes]:
        """Return the requests to send first on a new server connection of
        ``variant`` (AUTH, SELECT, HELLO 3); their replies are discarded.

        Called once per server connection; return ``()`` when none is needed.
        """
        ...

    def fragment(self, msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
        """Split an ``ACTION_FANOUT`` request into per-server fragments.

        ``server_of(key)`` returns the index of the server a key routes to.
        Each fragment's ``parent`` is ``msg``; set ``msg.frags``,
        ``msg.pending`` and ``msg.merge`` (module docstring).  Called only for
        requests the parser marked ``ACTION_FANOUT``; a protocol without
        multi-key requests may raise ``NotImplementedError``.
        """
        ...
