"""The hook implementations corenet finds through the ``corenet`` entry point.

Only hooks live here; the protocol itself is in ``_protocol.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.hookspecs import hookimpl

from corenet_kv._protocol import KvProtocol, djb2

if TYPE_CHECKING:
    from corenet._plugins import HashRegistry, ProtocolRegistry


@hookimpl
def corenet_register_protocols(registry: ProtocolRegistry) -> None:
    registry.add("kv", KvProtocol())


@hookimpl
def corenet_register_hash_functions(registry: HashRegistry) -> None:
    registry.add("djb2", djb2)
