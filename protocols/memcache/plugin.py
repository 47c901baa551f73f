"""Registers the built-in memcache (ASCII) protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.plugin import hookimpl
from corenet.protocols.memcache._protocol import MemcacheProtocol

if TYPE_CHECKING:
    from corenet.plugin import ProtocolRegistry


@hookimpl
def corenet_register_protocols(registry: ProtocolRegistry) -> None:
    registry.add("memcache", MemcacheProtocol())
