"""Deprecated alias of :mod:`corenet.protocols.redis.strategies`.

The redis strategies belong to the redis protocol plugin; this name is kept
so tests written against the 0.1 documentation keep importing.  It resolves
lazily, by name, so the framework itself never imports a protocol.
"""

from __future__ import annotations

import importlib
from typing import Any

_TARGET = "corenet.protocols.redis.strategies"


def __getattr__(name: str) -> Any:
    return getattr(importlib.import_module(_TARGET), name)


def __dir__() -> list[str]:
    return list(importlib.import_module(_TARGET).__all__)
