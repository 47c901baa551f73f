"""Registers the built-in Redis protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.plugin import hookimpl
from corenet.protocols.redis._protocol import RedisProtocol

if TYPE_CHECKING:
    from corenet.plugin import ProtocolRegistry


@hookimpl
def corenet_register_protocols(registry: ProtocolRegistry) -> None:
    registry.add("redis", RedisProtocol())
