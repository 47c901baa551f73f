"""Hook implementations registering nutcracker's hash functions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.hookspecs import hookimpl

from . import HASH_FUNCTIONS

if TYPE_CHECKING:
    from corenet._plugins import HashRegistry


@hookimpl
def corenet_register_hash_functions(registry: HashRegistry) -> None:
    for name, fn in HASH_FUNCTIONS.items():
        registry.add(name, fn)
