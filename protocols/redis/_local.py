"""Commands the proxy answers itself, one handler per command.

Connection-level commands describe the client's session with the proxy,
not any one backend, so they are answered here: ``PING``, ``ECHO``,
``AUTH``, ``HELLO`` (which also switches the client between RESP2 and
RESP3), ``SELECT`` (the client's requests then go on connections with that
database selected), and the harmless ``CLIENT``
subcommands today's clients send on connect (``SETINFO``, ``SETNAME``,
``GETNAME``, ``ID``).  A handler gets the session and the arguments and
returns the reply bytes, encoded for the session's protocol version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from corenet.protocols.redis._resp import encode_error, string2ll

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DATABASES", "HANDLERS", "SELECTABLE", "Session"]

REPORTED_VERSION = b"7.0.0"
SELECTABLE = 16
"""``SELECT`` takes 0..15 (Redis's default ``databases``) or the pool's
``redis_db``: the proxy cannot know a server's own limit, and a refused
``SELECT`` on a backend connection would leave it on database 0."""
DATABASES = 64
"""Databases a client may be on (``redis_db`` is below it; see the config)."""
_OK = b"+OK\r\n"


@attrs.define(slots=True)
class Session:
    """What the proxy knows of one client: auth state, protocol, name."""

    password: bytes | None = None
    db: int = 0
    default_db: int = 0
    authenticated: bool = True
    protocol: int = 2
    name: bytes | None = None
    client_id: int = 0
    proxy_version: bytes = b""
    cluster: bool = False
    """The pool fronts a Redis Cluster, which has database 0 only."""
    # Transaction state, as Redis keeps it per connection (see _pin).
    multi: bool = False
    watching: bool = False
    dirty: bool = False
    # ACL users (see _acl): the pool's, and the one logged in (None: default).
    users: dict[bytes, Any] | None = None
    user: bytes | None = None
    # Subscriptions, in the order made (see _pubsub).
    channels: dict[bytes, None] = attrs.field(factory=dict)
    patterns: dict[bytes, None] = attrs.field(factory=dict)
    shard_channels: dict[bytes, None] = attrs.field(factory=dict)

    @property
    def subscribed(self) -> bool:
        return bool(self.channels or self.patterns or self.shard_channels)

    def bulk(self, value: bytes | None) -> bytes:
        if value is None:
            return b"_\r\n" if self.protocol == 3 else b"$-1\r\n"
        return b"$%d\r\n%s\r\n" % (len(value), value)

    def map(self, pairs: list[tuple[bytes, bytes]]) -> bytes:
        head = b"%%%d\r\n" % len(pairs) if self.protocol == 3 else b"*%d\r\n" % (2 * len(pairs))
        return head + b"".join(self.bulk(k) + v for k, v in pairs)


def _ping(session: Session, args: list[bytes]) -> bytes:
    if len(args) == 1:
        return b"+PONG\r\n"
    if len(args) == 2:
        return session.bulk(args[1])
    return b"-ERR wrong number of arguments for 'ping' command\r\n"


def _echo(session: Session, args: list[bytes]) -> bytes:
    return session.bulk(args[1])


_WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def _log_in(session: Session, name: bytes, password: bytes) -> bool:
    """``AUTH name password`` for a ``redis_users`` user (not ``default``)."""
    user = session.users.get(name) if session.users is not None else None
    if user is None or not user.accepts(password):
        return False
    session.user = name
    session.authenticated = True
    return True


def _auth(session: Session, args: list[bytes]) -> bytes:
    if len(args) > 3:
        return b"-ERR wrong number of arguments for 'auth' command\r\n"
    if len(args) == 3 and args[1] != b"default":
        return _OK if _log_in(session, args[1], args[2]) else _WRONGPASS
    if session.password is None:
        return b"-ERR Client sent AUTH, but no password is set\r\n"
    if args[-1] == session.password:
        session.authenticated = True
        session.user = None
        return _OK
    session.authenticated = False
    return b"-ERR invalid password\r\n"


def _hello(session: Session, args: list[bytes]) -> bytes:
    protocol = session.protocol
    i = 1
    if len(args) > 1:
        version = string2ll(args[1])
        if version is None:
            return b"-ERR Protocol version is not an integer or out of range\r\n"
        if version not in (2, 3):
            return b"-NOPROTO unsupported protocol version\r\n"
        protocol = version
        i = 2
    name = session.name
    while i < len(args):
        option = args[i].lower()
        if option == b"auth" and i + 2 < len(args):
            name, password = args[i + 1], args[i + 2]
            if name != b"default":
                if not _log_in(session, name, password):
                    return _WRONGPASS
            elif session.password is not None and password != session.password:
                return _WRONGPASS
            else:
                session.authenticated = True
                session.user = None
            i += 3
        elif option == b"setname" and i + 1 < len(args):
            name = args[i + 1]
            i += 2
        else:
            return encode_error(b"ERR Syntax error in HELLO option '%s'" % args[i])
    if not session.authenticated:
        return (
            b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            b"HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            b"select the RESP protocol version at the same time\r\n"
        )
    session.protocol = protocol
    session.name = name
    return session.map(
        [
            (b"server", session.bulk(b"redis")),
            (b"version", session.bulk(REPORTED_VERSION)),
            (b"proto", b":%d\r\n" % protocol),
            (b"id", b":%d\r\n" % session.client_id),
            (b"mode", session.bulk(b"standalone")),
            (b"role", session.bulk(b"master")),
            (b"modules", b"*0\r\n"),
            (b"proxy", session.bulk(b"corenet " + session.proxy_version)),
        ]
    )


def _select(session: Session, args: list[bytes]) -> bytes:
    db = string2ll(args[1])
    if db is None:
        return b"-ERR value is not an integer or out of range\r\n"
    if session.watching and db != session.db:
        # The watch lives on a connection of the old database (see _pin).
        return b"-ERR SELECT while watching keys is not supported by the proxy\r\n"
    if session.cluster:
        # A cluster's own words (its nodes refuse SELECT of another database).
        return _OK if db == 0 else b"-ERR SELECT is not allowed in cluster mode\r\n"
    if 0 <= db < SELECTABLE or db == session.default_db:
        session.db = db
        return _OK
    return b"-ERR DB index is out of range\r\n"


def _client(session: Session, args: list[bytes]) -> bytes:
    sub = args[1].lower()
    if sub == b"setinfo" and len(args) == 4:
        return _OK
    if sub == b"setname" and len(args) == 3:
        if b" " in args[2] or b"\n" in args[2]:
            return b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        session.name = args[2] or None
        return _OK
    if sub == b"getname" and len(args) == 2:
        return session.bulk(session.name)
    if sub == b"id" and len(args) == 2:
        return b":%d\r\n" % session.client_id
    return encode_error(b"ERR CLIENT %s is not supported by the proxy" % args[1][:64])


HANDLERS: dict[bytes, Callable[[Session, list[bytes]], bytes]] = {
    b"ping": _ping,
    b"echo": _echo,
    b"auth": _auth,
    b"hello": _hello,
    b"select": _select,
    b"client": _client,
}
