"""How corenet reads its environment switches: one parser for every flag.

Every ``CORENET_*`` switch that is on or off is read through
:func:`env_flag`, so ``1``, ``true``, ``yes`` and ``on`` (any case) mean on
everywhere and anything else, ``"2"`` included, means off.
"""

from __future__ import annotations

import os

__all__ = ["TRUE_WORDS", "env_flag"]

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
"""The values (after stripping and lower-casing) that turn a switch on."""


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true word (read now)."""
    return os.environ.get(name, "").strip().lower() in TRUE_WORDS
