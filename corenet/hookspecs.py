"""Every hook corenet calls, with what it is for and when it runs.

All hooks run at start-up or when a pool or connection is built, never per
message: a pluggy call costs about 1.7 us, so the data path only ever calls
the plain objects these hooks register.  Hooks evolve by adding keyword
arguments; implementations may accept fewer arguments than the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from corenet._plugins import (
        DistributionRegistry,
        EventBackendRegistry,
        HashRegistry,
        ProtocolRegistry,
    )

__all__ = ["hookimpl", "hookspec"]

PROJECT = "corenet"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def corenet_register_event_backends(registry: EventBackendRegistry) -> None:
    """Add event backends with ``registry.add(name, factory, priority=...)``.

    Called once when the plugin manager is set up, before the loop is built.
    ``factory()`` must create the kernel object and raise ``OSError`` or
    ``BackendError`` when the mechanism does not work here; ``auto`` probes
    backends from the highest priority down.  A duplicate name raises
    ``PluginError``.
    """


@hookspec
def corenet_register_protocols(registry: ProtocolRegistry) -> None:
    """Add wire protocols with ``registry.add(name, protocol)``.

    Called once when the plugin manager is set up, before pools are built.
    ``protocol`` implements :class:`corenet.protocol.Protocol`; a pool picks
    one by name (``redis: true`` selects ``"redis"``, else ``"memcache"``).
    A duplicate name raises ``PluginError``.
    """


@hookspec
def corenet_register_hash_functions(registry: HashRegistry) -> None:
    """Add key hash functions with ``registry.add(name, fn)``.

    Called once when the plugin manager is set up.  ``fn(key: bytes) -> int``
    returns an unsigned 32-bit value and is called directly on the data path,
    once per routed key.  A duplicate name raises ``PluginError``.
    """


@hookspec
def corenet_register_distributions(registry: DistributionRegistry) -> None:
    """Add key distributions with ``registry.add(name, factory)``.

    Called once when the plugin manager is set up.  ``factory(nodes)`` gets
    the live servers as ``(name, weight)`` pairs in pool order and returns a
    :class:`corenet.routing.Dispatcher`; the pool calls it again whenever the
    set of live servers changes.  A duplicate name raises ``PluginError``.
    """
