"""Former home of the hook markers and specifications; kept so plugins (and
``pm.add_hookspecs(corenet.hookspecs)``) written against the 0.1
documentation keep working.  Use :mod:`corenet.plugin`."""

from corenet.plugin._hookspecs import (
    PROJECT,
    corenet_register_distributions,
    corenet_register_event_backends,
    corenet_register_hash_functions,
    corenet_register_protocols,
    hookimpl,
    hookspec,
)

__all__ = [
    "PROJECT",
    "corenet_register_distributions",
    "corenet_register_event_backends",
    "corenet_register_hash_functions",
    "corenet_register_protocols",
    "hookimpl",
    "hookspec",
]
