"""Hook implementations registering nutcracker's hash functions.

The compiled functions are registered when the ``_speedups`` extension is
built and ``CORENET_NO_SPEEDUPS`` is not set, else the pure-Python reference
ones (see the package docstring); both give the same values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.plugin import hookimpl

from . import hash_functions

if TYPE_CHECKING:
    from corenet.plugin import HashRegistry


@hookimpl
def corenet_register_hash_functions(registry: HashRegistry) -> None:
    # Decided here, once per plugin manager (at startup), not per key.
    for name, fn in hash_functions().items():
        registry.add(name, fn)
