"""Deprecated module names that resolve, lazily, to a module elsewhere.

The framework must not import the protocol plugins, yet two of its 0.1
module names (``corenet.testing.strategies`` and
``corenet.testing.memcache_strategies``) now live in them: each alias looks
its target up by name on first attribute access, so importing the framework
never imports a protocol.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["lazy_module"]


def lazy_module(target: str) -> tuple[Any, Any]:
    """``(__getattr__, __dir__)`` for an alias module of ``target``."""

    def getattr_(name: str) -> Any:
        return getattr(importlib.import_module(target), name)

    def dir_() -> list[str]:
        return list(importlib.import_module(target).__all__)

    return getattr_, dir_
