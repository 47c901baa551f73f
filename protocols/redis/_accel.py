"""Selection of the optional compiled Redis scans.

:mod:`._speedups` (built from ``_speedups.c`` when a compiler is available)
has C versions of the two hot scans of :mod:`._parser`; the pure-Python code
there stays the reference and the fallback.  :data:`scan_multibulk` and
:data:`reply_end` are the compiled functions, or ``None`` when the extension
is not built or ``CORENET_NO_SPEEDUPS`` is set to ``1``/``true``/``yes``/
``on`` (read once, when this module is first imported), the same switch as
the compiled hashes of :mod:`corenet.plugins.hashing`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["NO_SPEEDUPS_ENV", "SPEEDUPS_BUILT", "reply_end", "scan_multibulk"]

NO_SPEEDUPS_ENV = "CORENET_NO_SPEEDUPS"

try:
    from corenet.protocols.redis import _speedups
except ImportError:  # not built: no compiler at install time, or another interpreter
    _speedups = None  # type: ignore[assignment]

SPEEDUPS_BUILT = _speedups is not None
"""Whether the extension is importable, whatever the environment says."""

_disabled = os.environ.get(NO_SPEEDUPS_ENV, "").strip().lower() in {"1", "true", "yes", "on"}

scan_multibulk: Callable[[bytes, int, int], tuple[int, tuple[int, ...]] | None] | None = None
"""``_speedups.scan_multibulk`` when in use, else None."""
reply_end: Callable[[bytes, int], int] | None = None
"""``_speedups.reply_end`` when in use, else None."""

if _speedups is not None and not _disabled:
    scan_multibulk = _speedups.scan_multibulk
    reply_end = _speedups.reply_end
