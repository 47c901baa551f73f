"""The Redis protocol as the proxy core sees it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet import __version__
from corenet.protocols.redis import _every, _fanout
from corenet.protocols.redis._acl import User, users_of
from corenet.protocols.redis._commands import READ_ONLY
from corenet.protocols.redis._local import DATABASES, Session
from corenet.protocols.redis._parser import ReplyParser, RequestParser
from corenet.protocols.redis._pin import CROSSSLOT
from corenet.protocols.redis._pool_commands import Overrides, overrides_of
from corenet.protocols.redis._pubsub import is_push
from corenet.protocols.redis._resp import encode_command, encode_error

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from corenet.msg import Msg
    from corenet.protocol import PoolOptions

__all__ = ["RedisProtocol"]


def _command_name(data: bytes) -> bytes:
    """The command name of a well-formed request: multibulk or inline."""
    if data[:1] == b"*":
        start = data.find(b"\r\n$")
        if start < 0:
            return b""
        start = data.find(b"\r\n", start + 3) + 2
        end = data.find(b"\r\n", start)
        return data[start:end] if start >= 2 and end > start else b""
    words = data.split(None, 1)
    return words[0] if words else b""


def _tables(pool: PoolOptions) -> tuple[dict[bytes, User] | None, Overrides]:
    """The pool's users and ``redis_commands`` entries: resolved once per
    pool options object, shared by its clients."""
    key = id(pool)
    cached = _TABLES.get(key)
    if cached is None or cached[0] is not pool:
        if len(_TABLES) > 64:  # old pools' options, after many reloads
            _TABLES.clear()
        overrides = overrides_of(pool)
        users = users_of(pool, frozenset(name for name, _ in overrides))
        cached = _TABLES[key] = (pool, users, overrides)
    return cached[1], cached[2]


_TABLES: dict[int, tuple[PoolOptions, dict[bytes, User] | None, Overrides]] = {}


def _denied(pool: PoolOptions) -> frozenset[bytes]:
    return frozenset(c.lower().encode() for c in pool.deny_commands)


class RedisProtocol:
    """RESP requests and replies, Redis-worded errors, AUTH and SELECT set-up."""

    name = "redis"
    variants = 2 * DATABASES
    """Backend connection sets: one per database a client is on, for RESP2
    clients and for RESP3 clients (variant ``db << 1 | resp3``)."""
    health_check = b"*1\r\n$4\r\nPING\r\n"
    """What an active health check sends (``health_check_interval``)."""
    cross_server_error = CROSSSLOT
    """The reply to a pinned request with a key on another server (Redis Cluster's)."""

    def __init__(self) -> None:
        self._clients = 0

    pool_keys = ("redis_users", "redis_commands")
    """Pool keys of this protocol's own (see ``_acl`` and ``_pool_commands``)."""

    @staticmethod
    def check_pool(pool: PoolOptions) -> None:
        """Refuse a bad ``redis_commands`` or ``redis_users`` at load time (and ``-t``)."""
        try:
            overrides = overrides_of(pool)
        except ValueError as exc:
            raise ValueError("redis_commands", str(exc)) from None
        try:
            users_of(pool, frozenset(name for name, _ in overrides))
        except ValueError as exc:
            raise ValueError("redis_users", str(exc)) from None

    def new_request_parser(self, pool: PoolOptions) -> RequestParser:
        password = pool.redis_auth.encode() if pool.redis_auth is not None else None
        self._clients += 1
        users, commands = _tables(pool)
        session = Session(
            password=password,
            db=pool.redis_db,
            default_db=pool.redis_db,
            users=users,
            authenticated=password is None,
            client_id=self._clients,
            proxy_version=__version__.encode(),
            cluster=bool(pool.get("redis_cluster", False)),
        )
        return RequestParser(session, denied=_denied(pool), commands=commands)

    def update_request_parser(self, parser: RequestParser, pool: PoolOptions) -> None:
        """A reload changed the pool: the client's next requests follow it
        (password, users, database, ``deny_commands``, ``redis_commands``).

        Like ``CONFIG SET requirepass`` on a Redis server, a new password
        does not log out a client already authenticated; removing it lets
        everyone in.
        """
        session = parser.session
        session.password = pool.redis_auth.encode() if pool.redis_auth is not None else None
        if session.password is None:
            session.authenticated = True
        session.users, commands = _tables(pool)
        if session.user is not None and (
            session.users is None or session.user not in session.users
        ):
            # The user is gone: back to the default user, as after ACL DELUSER.
            session.user = None
            session.authenticated = session.password is None
        if session.db == session.default_db:  # a client's own SELECT stays
            session.db = pool.redis_db
        session.default_db = pool.redis_db
        parser.set_denied(_denied(pool))
        parser.set_commands(commands)
        parser.follow_session()

    @staticmethod
    def default_variant(pool: PoolOptions) -> int:
        """The connections a new client uses (what ``preconnect`` opens)."""
        return int(pool.redis_db) << 1

    def new_reply_parser(self) -> ReplyParser:
        return ReplyParser()

    def error_reply(self, message: str) -> bytes:
        return encode_error("ERR " + message)

    def server_handshake(self, pool: PoolOptions, variant: int) -> Sequence[bytes]:
        # AUTH must come before SELECT: nutcracker sends SELECT first, which
        # a password-protected server refuses.
        requests = []
        if pool.redis_auth is not None:
            requests.append(encode_command([b"AUTH", pool.redis_auth.encode()]))
        if variant >> 1:
            requests.append(encode_command([b"SELECT", b"%d" % (variant >> 1)]))
        if variant & 1:
            requests.append(encode_command([b"HELLO", b"3"]))
        return requests

    @staticmethod
    def is_push(frame: bytes) -> bool:
        """Whether a subscriber connection's frame is a published message."""
        return is_push(frame)

    def is_read_only(self, msg: Msg) -> bool:
        """Whether ``msg`` only reads (a replica may answer it)."""
        return _command_name(msg.data).lower() in READ_ONLY

    def fragment(self, msg: Msg, server_of: Callable[[bytes], int]) -> Sequence[tuple[int, Msg]]:
        return _fanout.fragment(msg, server_of)

    def fragment_every(self, msg: Msg, servers: int) -> Sequence[tuple[int, Msg]]:
        return _every.fragment_every(msg, servers)
