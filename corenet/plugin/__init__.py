"""corenet's plugin API: hook markers, the plugin manager, the registries.

Everything a plugin author imports lives here or in the contract modules it
names (:mod:`corenet.protocol`, :mod:`corenet.msg`, :mod:`corenet.routing`,
:mod:`corenet.event`, :mod:`corenet.errors`, :mod:`corenet.testing`).  These
names are stable: they change only by addition (docs/plugins.md, "What is
stable").
"""

from corenet.plugin._hookspecs import PROJECT, hookimpl, hookspec
from corenet.plugin._manager import BUILTIN_PLUGINS, Plugins
from corenet.plugin._registry import (
    DistributionRegistry,
    EventBackendRegistry,
    HashRegistry,
    ProtocolRegistry,
    Registry,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "PROJECT",
    "DistributionRegistry",
    "EventBackendRegistry",
    "HashRegistry",
    "Plugins",
    "ProtocolRegistry",
    "Registry",
    "hookimpl",
    "hookspec",
]
