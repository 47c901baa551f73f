"""Selection of the optional compiled Redis helpers.

:mod:`._speedups` (built from ``_speedups.c`` when a compiler is available)
has C versions of the hot scans of :mod:`._parser`, of the reply splitting
and merging of :mod:`._fanout` and of :func:`._resp.encode_command`; the pure-Python
code there stays the reference and the fallback.  :data:`scan_multibulk`,
:data:`scan_keyed`, :data:`reply_end`, :data:`split_array`, :data:`merge_arrays` and
:data:`encode_command` are the compiled functions, or
``None`` when the extension is not built or ``CORENET_NO_SPEEDUPS`` is set
to ``1``/``true``/``yes``/``on`` (read once, when this module is first
imported), the same switch as the compiled hashes of
:mod:`corenet.plugins.hashing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from corenet import accel
from corenet.accel import NO_SPEEDUPS_ENV

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = [
    "NO_SPEEDUPS_ENV",
    "SPEEDUPS_BUILT",
    "Scans",
    "scans",
    "encode_command",
    "merge_arrays",
    "reply_end",
    "scan_keyed",
    "scan_multibulk",
    "split_array",
]


_EXTENSION = "corenet.protocols.redis._speedups"

SPEEDUPS_BUILT = accel.built(_EXTENSION) is not None
"""Whether the extension is importable, whatever the environment says."""

_speedups: Any = accel.compiled(_EXTENSION)

scan_multibulk: Callable[[bytes, int, int], tuple[int, tuple[int, ...]] | None] | None = None
"""``_speedups.scan_multibulk`` when in use, else None."""
reply_end: Callable[[bytes, int], int] | None = None
"""``_speedups.reply_end`` when in use, else None."""
scan_keyed: Callable[[bytes, int, int, Any], tuple[bytes, int, Any, Any] | None] | None = None
"""``_speedups.scan_keyed`` when in use, else None."""
split_array: Callable[[bytes], list[bytes] | None] | None = None
"""``_speedups.split_array`` when in use, else None."""
merge_arrays: Callable[[int, list[bytes], list[Any]], bytes | int] | None = None
"""``_speedups.merge_arrays`` when in use, else None."""
encode_command: Callable[[Iterable[bytes]], bytes] | None = None
"""``_speedups.encode_command`` when in use, else None."""

if _speedups is not None:
    scan_multibulk = _speedups.scan_multibulk
    reply_end = _speedups.reply_end
    scan_keyed = _speedups.scan_keyed
    split_array = _speedups.split_array
    merge_arrays = _speedups.merge_arrays
    encode_command = _speedups.encode_command


class Scans(NamedTuple):
    """The compiled scans a parser binds when it is built (None: use the pure one)."""

    scan_multibulk: Callable[[bytes, int, int], tuple[int, tuple[int, ...]] | None] | None
    scan_keyed: Callable[[bytes, int, int, Any], tuple[bytes, int, Any, Any] | None] | None
    reply_end: Callable[[bytes, int], int] | None
    reply_resume: Callable[[bytes, int, int], tuple[int, int]] | None = None
    scan_keyed_many: Callable[..., tuple[list[Any], int]] | None = None
    split_replies: Callable[[bytes, int, int], tuple[list[bytes], int]] | None = None


def scans() -> Scans:
    """The scans :func:`corenet.accel.compiled` allows now.

    Parsers call this when they are built, so :func:`corenet.accel.using`
    chooses the path of the parsers made inside its block (the tests run
    both ways so); the module-level names above keep the import-time choice.
    """
    module: Any = accel.compiled(_EXTENSION)
    if module is None:
        return Scans(None, None, None)
    return Scans(
        module.scan_multibulk,
        module.scan_keyed,
        module.reply_end,
        module.reply_resume,
        module.scan_keyed_many,
        module.split_replies,
    )
