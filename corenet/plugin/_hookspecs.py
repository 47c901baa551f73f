"""Every hook corenet calls, with what it is for and when it runs.

These hookspecs are part of the stable plugin API, importable from
:mod:`corenet.plugin` (docs/plugins.md is the tutorial).  A
plugin is any module or object with functions named like these hooks and
decorated with :data:`hookimpl`; a distribution makes it known by declaring
it in the ``corenet`` entry-point group of its ``pyproject.toml``::

    [project.entry-points.corenet]
    kv = "corenet_kv.plugin"

All hooks are *registration* hooks: each is called once per process, when
:class:`corenet.plugin.Plugins` is built at start-up (and by
``corenet-proxy -t``), in registration order, built-ins first.  None is
called per message or per connection: a pluggy call costs about 1.7 us, so
the data path only ever calls the plain objects these hooks register.  Every
hook returns None (results are ignored); it fills the registry it is given.
A name claimed twice, a name that is not a non-empty string, or an object
lacking what its registry needs raises :class:`~corenet.errors.PluginError`
naming the plugins involved; a hook implementation with an unknown name or
argument raises ``PluginError`` ("invalid plugin") when plugins load.

Hooks evolve by adding keyword arguments; implementations may accept fewer
arguments than the spec (take only ``registry``), so adding one never
breaks an existing plugin.  Names are never renamed or reordered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from corenet.plugin._registry import (
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
    ``factory()`` takes no arguments and returns an object implementing
    :class:`corenet.event.EventBase`; it must create the kernel object and
    raise ``OSError`` or ``BackendError`` when the mechanism does not work
    here.  ``--event-backend NAME`` (or ``CORENET_EVENT_BACKEND``) selects a
    backend by name; ``auto`` probes backends from the highest priority down
    (built-ins: kqueue 40, epoll 30, poll 20, select 10; default 0).
    Return None.  A duplicate name raises ``PluginError``.
    """


@hookspec
def corenet_register_protocols(registry: ProtocolRegistry) -> None:
    """Add wire protocols with ``registry.add(name, protocol)``.

    Called once when the plugin manager is set up, before pools are built.
    ``protocol`` is one shared object implementing
    :class:`corenet.protocol.Protocol` (it builds a parser per connection).
    A pool picks one by name: ``protocol: NAME`` in its configuration, else
    ``redis: true`` selects ``"redis"`` and anything else ``"memcache"``.
    Return None.  A duplicate name, or an object lacking
    ``new_request_parser``, ``new_reply_parser`` or ``error_reply``, raises
    ``PluginError``.
    """


@hookspec
def corenet_register_hash_functions(registry: HashRegistry) -> None:
    """Add key hash functions with ``registry.add(name, fn)``.

    Called once when the plugin manager is set up.  ``fn(key: bytes) -> int``
    returns an unsigned 32-bit value and is called directly on the data path,
    once per routed key (after ``hash_tag`` narrowed it), so keep it fast and
    free of side effects.  A pool picks one with ``hash: NAME``.  Return
    None.  A duplicate name or a non-callable ``fn`` raises ``PluginError``.
    """


@hookspec
def corenet_register_distributions(registry: DistributionRegistry) -> None:
    """Add key distributions with ``registry.add(name, factory)``.

    Called once when the plugin manager is set up.  ``factory(nodes)`` gets
    the live servers as ``(name, weight)`` pairs in pool order and returns a
    :class:`corenet.routing.Dispatcher`; the pool calls it again whenever the
    set of live servers changes.  A pool picks one with
    ``distribution: NAME``.  Return None.  A duplicate name or a non-callable
    ``factory`` raises ``PluginError``.
    """
