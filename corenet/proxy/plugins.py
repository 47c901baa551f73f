"""The proxy's built-in plugins: its protocols and nutcracker's routing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.plugin import Plugins

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PROXY_PLUGINS", "load_plugins"]

PROXY_PLUGINS: Mapping[str, str] = {
    "redis": "corenet.protocols.redis.plugin",
    "memcache": "corenet.protocols.memcache.plugin",
    "hashing": "corenet.plugins.hashing.plugin",
    "distribution": "corenet.plugins.distribution.plugin",
}
"""Plugin name -> module of the plugins every proxy loads (blockable by name)."""


def load_plugins(
    *, extra: Mapping[str, object] | None = None, autoload: bool | None = None
) -> Plugins:
    """The framework's plugins, the proxy's built-ins and the installed ones."""
    return Plugins(builtins=PROXY_PLUGINS, extra=extra, autoload=autoload)
