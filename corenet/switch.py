"""All or nothing: apply a set of changes in two phases.

A running server changes its configuration in one loop turn: every change
is first *prepared* (everything that can fail: building objects, resolving
plugins, binding sockets), then, when all were prepared, every change is
*committed* (assignments only, which cannot fail), so that no event is
handled between the first commit and the last.  If one preparation fails,
the ones already prepared are *aborted* (their sockets closed, their objects
dropped) and nothing has changed.  On a single-threaded loop this is what
makes a switch atomic: a request is handled entirely before, or entirely
after, it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Change", "apply_all"]

logger = logging.getLogger("corenet.switch")


class Change(Protocol):
    """One part of a switch."""

    def prepare(self) -> None:
        """Do what may fail; raise to refuse the whole switch, leaving nothing behind."""

    def commit(self) -> None:
        """Make the prepared change live; must not fail."""

    def abort(self) -> None:
        """Undo a successful :meth:`prepare` (another change refused the switch)."""


def apply_all(changes: Sequence[Change]) -> None:
    """Prepare every change, then commit them all; or abort the prepared ones and raise.

    Raises:
        Exception: what the failing :meth:`Change.prepare` raised.
    """
    prepared: list[Change] = []
    try:
        for change in changes:
            change.prepare()
            prepared.append(change)
    except BaseException:
        for change in reversed(prepared):
            try:
                change.abort()
            except Exception:
                logger.exception("aborting %r failed", change)
        raise
    for change in changes:
        try:
            change.commit()
        except Exception:
            # A bug: the commit phase is assignments.  The other changes
            # still go in, so the server is not left between two states.
            logger.exception("committing %r failed", change)
