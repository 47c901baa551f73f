"""In-process loop helpers for tests that drive a corenet Loop by hand."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from corenet.event import select_backend
from corenet.loop import Loop
from corenet.plugin import Plugins

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["make_loop", "run_until"]


def make_loop() -> Loop:
    """A loop on the best backend here, with no plugins autoloaded; close its backend."""
    return Loop(select_backend("auto", Plugins(autoload=False).event_backends))


def run_until(
    loop: Loop, done: Callable[[], bool], seconds: float = 5.0, *, turn: float = 0.02
) -> None:
    """Run turns of ``loop`` (each waiting at most ``turn`` s) until ``done()``.

    Bounded both ways: fails after ``seconds`` or 100 000 turns.
    """
    deadline = time.monotonic() + seconds
    for _ in range(100_000):
        if done():
            return
        assert time.monotonic() < deadline, "timed out"
        loop.run_once(turn)
    raise AssertionError("too many loop turns")
