"""The one switch for corenet's optional C accelerators.

Every compiled fast path (the hash functions, the Redis scans, the router's
continuum lookup) has a pure-Python reference that is always present.
``CORENET_NO_SPEEDUPS=1`` (or ``true``/``yes``/``on``) selects the references
even where the extensions are built, to compare or to debug.
"""

from __future__ import annotations

import os

__all__ = ["NO_SPEEDUPS_ENV", "env_flag", "speedups_disabled"]

NO_SPEEDUPS_ENV = "CORENET_NO_SPEEDUPS"


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true word
    (``1``, ``true``, ``yes``, ``on``; any case), as every corenet switch reads."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def speedups_disabled() -> bool:
    """Return whether ``CORENET_NO_SPEEDUPS`` asks for the pure-Python paths (read now)."""
    return env_flag(NO_SPEEDUPS_ENV)
