"""ACL users the proxy checks itself: the ``redis_users`` pool key.

A pool may name users, each with a rule string in Redis's ``ACL SETUSER``
words (a small subset)::

    redis_users:
      alice: "on >s3cret +@read -@dangerous"
      jobs: "on >other +@list +ping"

Rules apply in order to a user that starts disabled, with no password and no
commands, as a new Redis user does: ``on``/``off``, ``>password``,
``nopass``, ``+@category``/``-@category`` (the categories redis-server
reports, in ``_acl_table``; ``all`` too), ``+command``/``-command``,
``allcommands``/``nocommands``, and ``~*``/``allkeys``/``&*``/``allchannels``
(every key and channel: the only key and channel rules the proxy takes).
``AUTH user password`` and ``HELLO ... AUTH user password`` check them;
``redis_auth`` stays the ``default`` user's password.  A command the user
may not run gets Redis's ``-NOPERM this user has no permissions to run the
'x' command``.  Rule errors are reported without the rule text when it holds
a password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from corenet.protocols.redis._acl_table import CATEGORIES
from corenet.protocols.redis._commands import COMMANDS

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ALWAYS_ALLOWED", "User", "parse_users"]

ALL_COMMANDS = frozenset(CATEGORIES) | frozenset(COMMANDS)
ALWAYS_ALLOWED = frozenset([b"auth", b"hello", b"quit"])
"""What any user may send, so that it can change user or leave."""
_EVERY_KEY = frozenset([b"~*", b"allkeys", b"&*", b"allchannels"])


@attrs.frozen
class User:
    """One ``redis_users`` entry, resolved."""

    name: bytes
    enabled: bool
    nopass: bool
    passwords: frozenset[bytes]
    denied: frozenset[bytes]
    """The commands (lower-case) this user may not run."""

    def accepts(self, password: bytes) -> bool:
        return self.enabled and (self.nopass or password in self.passwords)


def _in_category(category: bytes, every: frozenset[bytes]) -> frozenset[bytes]:
    if category == b"all":
        return every
    members = frozenset(name for name, cats in CATEGORIES.items() if category in cats)
    if not members:
        raise ValueError(f"unknown ACL category '@{category.decode(errors='replace')}'")
    return members


def _user(name: str, rules: str, every: frozenset[bytes]) -> User:
    enabled = nopass = False
    passwords: set[bytes] = set()
    allowed: set[bytes] = set()
    for rule in rules.encode().split():
        low = rule.lower()
        if low in (b"on", b"off"):
            enabled = low == b"on"
        elif rule[:1] == b">":
            passwords.add(rule[1:])
        elif low == b"nopass":
            nopass = True
        elif low in (b"allcommands", b"+@all"):
            allowed |= every
        elif low in (b"nocommands", b"-@all"):
            allowed.clear()
        elif low[:2] in (b"+@", b"-@"):
            members = _in_category(low[2:], every)
            allowed = allowed | members if low[:1] == b"+" else allowed - members
        elif low[:1] in (b"+", b"-") and b"|" not in low:
            command = low[1:]
            if command not in every:
                raise ValueError(f"unknown command '{command.decode(errors='replace')}'")
            allowed = allowed | {command} if low[:1] == b"+" else allowed - {command}
        elif low in _EVERY_KEY:
            continue
        else:
            shown = "a password rule" if rule[:1] in (b"<", b"#") else repr(rule.decode("latin-1"))
            raise ValueError(f"unsupported ACL rule {shown}")
    return User(name.encode(), enabled, nopass, frozenset(passwords), every - frozenset(allowed))


def parse_users(spec: object, added: frozenset[bytes] = frozenset()) -> dict[bytes, User]:
    """``redis_users`` (a mapping of user name to rule string) resolved;
    ``added``: the pool's ``redis_commands`` names, in no category, so a
    user may run one only with ``+name``, ``+@all`` or ``allcommands``.

    Raises:
        ValueError: the message says which user and why, never a password.
    """
    if not isinstance(spec, dict):
        raise ValueError("redis_users must be a mapping of user name to ACL rules")
    users: dict[bytes, User] = {}
    for name, rules in spec.items():
        if not isinstance(name, str) or not isinstance(rules, str) or not name or " " in name:
            raise ValueError('redis_users: each entry must be `name: "rules"`')
        if name == "default":
            raise ValueError("redis_users: the default user is redis_auth's")
        try:
            users[name.encode()] = _user(name, rules, ALL_COMMANDS | added)
        except ValueError as exc:
            raise ValueError(f"redis_users: user {name}: {exc}") from None
    return users


def users_of(
    options: Mapping[str, object], added: frozenset[bytes] = frozenset()
) -> dict[bytes, User] | None:
    """The pool's users, or None without ``redis_users`` (``added``: see
    :func:`parse_users`)."""
    spec = options.get("redis_users")
    return None if spec is None else parse_users(spec, added)
