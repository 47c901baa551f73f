"""The plugin manager and the registries that hooks fill.

Loading order follows pytest and tox: hookspecs, then the built-in plugins
registered explicitly (so a source checkout works without installed
metadata), then the ``corenet`` entry-point group, then ``check_pending``.
After that the registries are plain dicts the core reads when it builds a
pool; nothing here runs per message.

Environment controls:

``CORENET_DISABLE_PLUGIN_AUTOLOAD=1``
    skip entry points (built-ins still load);
``CORENET_DISABLED_PLUGINS=a,b``
    block plugins by name (entry-point name or built-in name);
``CORENET_TRACE_HOOKS=1``
    print every hook call to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pluggy

from corenet import hookspecs
from corenet._switch import env_flag
from corenet.errors import PluginError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from corenet.event import EventBase
    from corenet.protocol import Protocol
    from corenet.routing import DistributionFactory, HashFn

__all__ = [
    "BUILTIN_PLUGINS",
    "DistributionRegistry",
    "EventBackendRegistry",
    "HashRegistry",
    "Plugins",
    "ProtocolRegistry",
    "Registry",
]

T = TypeVar("T")

# Module names of the built-in plugins, registered under the short names.
BUILTIN_PLUGINS: dict[str, str] = {
    "event": "corenet.event._plugin",
    "redis": "corenet.protocols.redis.plugin",
    "memcache": "corenet.protocols.memcache.plugin",
    "hashing": "corenet.plugins.hashing.plugin",
    "distribution": "corenet.plugins.distribution.plugin",
}


class Registry(Generic[T]):
    """Name -> implementation, refusing a second claim on a name."""

    kind = "implementation"

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin = "<unknown>"

    def add(self, name: str, item: T) -> None:
        """Register ``item`` as ``name``.

        Raises:
            PluginError: ``name`` is not a non-empty string, or another plugin
                already registered it.
        """
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered a {self.kind} "
                f"with an invalid name {name!r}"
            )
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {self._owners[name]!r} "
                f"and plugin {self.current_plugin!r}"
            )
        self._items[name] = item
        self._owners[name] = self.current_plugin

    def get(self, name: str) -> T:
        """Return the implementation called ``name``.

        Raises:
            PluginError: no plugin registered ``name``.
        """
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise PluginError(f"no {self.kind} named {name!r} (known: {known})") from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class HashRegistry(Registry["HashFn"]):
    kind = "hash function"

    def add(self, name: str, item: HashFn) -> None:
        if not callable(item):
            raise PluginError(
                f"hash function {name!r} from {self.current_plugin!r} is not callable"
            )
        super().add(name, item)


class DistributionRegistry(Registry["DistributionFactory"]):
    kind = "distribution"

    def add(self, name: str, item: DistributionFactory) -> None:
        if not callable(item):
            raise PluginError(f"distribution {name!r} from {self.current_plugin!r} is not callable")
        super().add(name, item)


class ProtocolRegistry(Registry["Protocol"]):
    kind = "protocol"

    def add(self, name: str, item: Protocol) -> None:
        missing = [
            attr
            for attr in ("new_request_parser", "new_reply_parser", "error_reply")
            if not callable(getattr(item, attr, None))
        ]
        if missing:
            raise PluginError(
                f"protocol {name!r} from {self.current_plugin!r} lacks {', '.join(missing)}"
            )
        super().add(name, item)


class EventBackendRegistry(Registry["Callable[[], EventBase]"]):
    kind = "event backend"

    def __init__(self) -> None:
        super().__init__()
        self.priorities: dict[str, int] = {}

    def add(self, name: str, item: Callable[[], EventBase], priority: int = 0) -> None:
        """Register backend ``name``; ``auto`` tries higher ``priority`` first."""
        if not callable(item):
            raise PluginError(
                f"event backend {name!r} from {self.current_plugin!r} is not callable"
            )
        super().add(name, item)
        self.priorities[name] = priority

    def by_priority(self) -> list[str]:
        return sorted(self._items, key=lambda n: -self.priorities[n])


class Plugins:
    """The plugin manager plus the registries its hooks filled.

    Build one per process (``Plugins()``); never at import time.
    """

    def __init__(
        self, *, extra: dict[str, object] | None = None, autoload: bool | None = None
    ) -> None:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        blocked = {
            n.strip()
            for n in os.environ.get("CORENET_DISABLED_PLUGINS", "").split(",")
            if n.strip()
        }
        for name in blocked:
            pm.set_blocked(name)
        for name, module_name in BUILTIN_PLUGINS.items():
            if name in blocked:
                continue
            pm.register(importlib.import_module(module_name), name=name)
        for name, plugin in (extra or {}).items():
            pm.register(plugin, name=name)
        if autoload is None:
            autoload = not env_flag("CORENET_DISABLE_PLUGIN_AUTOLOAD")
        if autoload:
            try:
                pm.load_setuptools_entrypoints(hookspecs.PROJECT)
            except pluggy.PluginValidationError as exc:
                raise PluginError(f"invalid plugin: {exc}") from exc
            except ImportError as exc:
                raise PluginError(
                    f"a plugin of the 'corenet' entry-point group failed to import: {exc}"
                ) from exc
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"invalid plugin: {exc}") from exc
        if env_flag("CORENET_TRACE_HOOKS"):
            pm.trace.root.setwriter(sys.stderr.write)
            pm.enable_tracing()
        self.pm = pm
        self.event_backends = EventBackendRegistry()
        self.protocols = ProtocolRegistry()
        self.hash_functions = HashRegistry()
        self.distributions = DistributionRegistry()
        self._fill("corenet_register_event_backends", self.event_backends)
        self._fill("corenet_register_protocols", self.protocols)
        self._fill("corenet_register_hash_functions", self.hash_functions)
        self._fill("corenet_register_distributions", self.distributions)

    def _fill(self, hook_name: str, registry: Registry[Any]) -> None:
        # Call each implementation on its own, in registration order (the
        # built-ins first), so a later duplicate is the one named as such.
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            registry.current_plugin = impl.plugin_name
            kwargs = {"registry": registry}
            impl.function(*(kwargs[arg] for arg in impl.argnames))
        registry.current_plugin = "<unknown>"
