"""Former home of the plugin manager; kept so plugins written against the
0.1 documentation keep importing.  Use :mod:`corenet.plugin`."""

from corenet.plugin import (
    BUILTIN_PLUGINS,
    DistributionRegistry,
    EventBackendRegistry,
    HashRegistry,
    Plugins,
    ProtocolRegistry,
    Registry,
)

__all__ = [
    "BUILTIN_PLUGINS",
    "DistributionRegistry",
    "EventBackendRegistry",
    "HashRegistry",
    "Plugins",
    "ProtocolRegistry",
    "Registry",
]
