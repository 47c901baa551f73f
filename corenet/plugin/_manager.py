"""The plugin manager: pluggy set up once, registries filled once.

Loading order follows pytest and tox: hookspecs, then the built-in plugins
registered explicitly (so a source checkout works without installed
metadata), then the ``corenet`` entry-point group, then ``check_pending``.
Every registration hook is then called through pluggy, once per plugin that
implements it (so a duplicate name is blamed on the plugin that added it
second), and the registries are plain dicts from then on: nothing here runs
per message.

Environment controls (read when a :class:`Plugins` is built):

``CORENET_DISABLE_PLUGIN_AUTOLOAD=1``
    skip entry points (built-ins still load);
``CORENET_DISABLED_PLUGINS=a,b``
    block plugins by name (entry-point name or built-in name);
``CORENET_TRACE_HOOKS=1``
    write one line per hook call to stderr, naming the plugin that answered.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import pluggy

from corenet.env import env_flag
from corenet.errors import PluginError
from corenet.plugin import _hookspecs
from corenet.plugin._registry import (
    DistributionRegistry,
    EventBackendRegistry,
    HashRegistry,
    ProtocolRegistry,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from corenet.plugin._registry import Registry

__all__ = ["BUILTIN_PLUGINS", "PROJECT", "Plugins"]

PROJECT = _hookspecs.PROJECT

BUILTIN_PLUGINS: Mapping[str, str] = {"event": "corenet.event._plugin"}
"""The framework's own plugins (module names, registered under these names)."""

# Registration hooks in the order they are called, with the registry each fills.
_REGISTRATIONS = (
    ("corenet_register_event_backends", "event_backends"),
    ("corenet_register_protocols", "protocols"),
    ("corenet_register_hash_functions", "hash_functions"),
    ("corenet_register_distributions", "distributions"),
)


class Plugins:
    """The plugin manager plus the registries its hooks filled.

    Build one per process, never at import time.

    Args:
        builtins: plugin name -> module name of the application's built-in
            plugins, registered after the framework's own (an application
            such as corenet's proxy passes its protocols and routing here).
        extra: more plugin objects to register, by name (tests, embedders).
        autoload: load the ``corenet`` entry-point group (default: unless
            ``CORENET_DISABLE_PLUGIN_AUTOLOAD`` is on).

    Raises:
        PluginError: a plugin is invalid, fails to import, or claims a name
            another plugin owns.
    """

    def __init__(
        self,
        *,
        builtins: Mapping[str, str] | None = None,
        extra: Mapping[str, object] | None = None,
        autoload: bool | None = None,
    ) -> None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(_hookspecs)
        blocked = {
            n.strip()
            for n in os.environ.get("CORENET_DISABLED_PLUGINS", "").split(",")
            if n.strip()
        }
        for name in blocked:
            pm.set_blocked(name)
        modules = {**BUILTIN_PLUGINS, **(builtins or {})}
        try:
            for name, module_name in modules.items():
                if name not in blocked:
                    pm.register(importlib.import_module(module_name), name=name)
            for name, plugin in (extra or {}).items():
                pm.register(plugin, name=name)
            if autoload is None:
                autoload = not env_flag("CORENET_DISABLE_PLUGIN_AUTOLOAD")
            if autoload:
                pm.load_setuptools_entrypoints(PROJECT)
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"invalid plugin: {exc}") from exc
        except ImportError as exc:
            raise PluginError(f"a corenet plugin failed to import: {exc}") from exc
        except ValueError as exc:  # pluggy: a plugin name or object registered twice
            raise PluginError(f"invalid plugin: {exc}") from exc
        if env_flag("CORENET_TRACE_HOOKS"):
            pm.add_hookcall_monitoring(_trace_call, _trace_result)
        self.pm = pm
        self.event_backends = EventBackendRegistry()
        self.protocols = ProtocolRegistry()
        self.hash_functions = HashRegistry()
        self.distributions = DistributionRegistry()
        for hook_name, attr in _REGISTRATIONS:
            self._fill(hook_name, getattr(self, attr))

    def plugin_names(self) -> list[str]:
        """Names of the registered plugins, in registration order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def _fill(self, hook_name: str, registry: Registry[Any]) -> None:
        # One pluggy call per implementing plugin, in registration order
        # (built-ins first), so the registry knows whom to blame for a
        # duplicate and the hook-call monitor sees every call.
        caller = getattr(self.pm.hook, hook_name)
        impls = caller.get_hookimpls()
        names = [impl.plugin_name for impl in impls]
        plugins = [impl.plugin for impl in impls]
        for i, name in enumerate(names):
            registry.current_plugin = name
            others = plugins[:i] + plugins[i + 1 :]
            one = self.pm.subset_hook_caller(hook_name, remove_plugins=others)
            one(registry=registry)
        registry.current_plugin = "<unknown>"


def _trace_call(
    hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
) -> None:
    answering = ", ".join(impl.plugin_name for impl in impls) or "no plugin"
    sys.stderr.write(f"corenet: hook {hook_name} -> {answering}\n")


def _trace_result(
    outcome: pluggy.Result[Any], hook_name: str, impls: Sequence[pluggy.HookImpl], kwargs: Any
) -> None:
    # One line per call is the contract; a failing call is reported by its error.
    return None
