"""Deprecated alias of :mod:`corenet.protocols.memcache.strategies` (see :mod:`._alias`)."""

from corenet.testing._alias import lazy_module

__getattr__, __dir__ = lazy_module("corenet.protocols.memcache.strategies")
