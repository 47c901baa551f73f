"""The exception hierarchy shared by every corenet layer.

Replies a server sends (``-ERR ...``, ``SERVER_ERROR ...``) are messages, not
exceptions: these classes are for things that went wrong in corenet itself,
in its configuration, in a plugin or in the bytes a peer sent.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ConfigError",
    "CorenetError",
    "LocalProtocolError",
    "PluginError",
    "ProtocolError",
    "RemoteProtocolError",
]


class CorenetError(Exception):
    """Base class of every error corenet raises on purpose."""


class ProtocolError(CorenetError):
    """A peer's bytes broke the wire protocol.

    ``reply`` is the protocol-correct error reply to send before closing (it
    may be empty when the protocol has none), and ``close`` says whether the
    connection must be closed after it, as the real server would.
    """

    def __init__(self, message: str, *, reply: bytes = b"", close: bool = True) -> None:
        super().__init__(message)
        self.reply = reply
        self.close = close


class LocalProtocolError(ProtocolError):
    """Our own side produced something the protocol forbids (a bug or misuse)."""


class RemoteProtocolError(ProtocolError):
    """The remote peer (client or backend) sent bytes the protocol forbids."""


class ConfigError(CorenetError):
    """A configuration file or value is invalid; the message names where and why."""


class PluginError(CorenetError):
    """A plugin is invalid, missing, or claims a name another plugin already owns."""


class BackendError(CorenetError):
    """An event backend cannot be created or used on this machine."""
