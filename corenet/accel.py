"""The one place that decides between compiled and pure-Python code.

Every compiled fast path (the hash functions, the Redis scans, the router's
continuum lookup) has a pure-Python reference that is always present.
:func:`compiled` is how each of them finds its extension module: it returns
the module, or None when it is not built or when ``CORENET_NO_SPEEDUPS`` is
on.  The decision is taken once per process, when the module that needs the
extension is first imported; to compare the two paths, run a fresh
interpreter with and without the switch (the test suite's ``speedups``
fixture does), or call :func:`select` before those modules are imported.
Objects that choose when they are built (the router, at every rebuild) ask
each time, so :func:`using` switches them within a block.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING

from corenet.env import env_flag

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

__all__ = ["NO_SPEEDUPS_ENV", "built", "compiled", "select", "speedups_disabled", "using"]

NO_SPEEDUPS_ENV = "CORENET_NO_SPEEDUPS"

_forced: bool | None = None


def speedups_disabled() -> bool:
    """Whether the pure-Python paths are asked for (``CORENET_NO_SPEEDUPS``, or :func:`select`)."""
    if _forced is not None:
        return not _forced
    return env_flag(NO_SPEEDUPS_ENV)


def select(use_compiled: bool | None) -> None:
    """Override the environment for modules imported from now on (None: back to it)."""
    global _forced
    _forced = use_compiled


@contextlib.contextmanager
def using(use_compiled: bool) -> Iterator[None]:
    """Within the block, choose as :func:`select` says; restore the choice after."""
    global _forced
    before = _forced
    _forced = use_compiled
    try:
        yield
    finally:
        _forced = before


def built(name: str) -> ModuleType | None:
    """The extension module ``name`` if it is importable, whatever the switch says."""
    try:
        return importlib.import_module(name)
    except ImportError:  # not built: no compiler at install time, or another interpreter
        return None


def compiled(name: str) -> ModuleType | None:
    """The extension module ``name`` when it is built and the switch allows it, else None."""
    if speedups_disabled():
        return None
    return built(name)
