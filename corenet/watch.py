"""Watch a file's content from the loop, and say when it has changed and settled.

:class:`FileWatcher` reads the file every ``interval`` seconds on the loop's
timers (no thread, no inotify: a configuration file is small, and polling
works the same on every platform and for files replaced by a rename, as
deploy tools and editors do).  A change is reported once the content has
stayed the same for one more check, so a file written in several steps, or
rewritten twice in quick succession, is reported once, whole.  Only the
content counts: touching the file or rewriting the same bytes is no change.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from corenet.loop import Loop
    from corenet.timers import TimerHandle

__all__ = ["FileWatcher", "content_digest"]

logger = logging.getLogger("corenet.watch")


def content_digest(path: str) -> bytes | None:
    """A digest of the file's bytes, or None when it cannot be read (missing, mid-rename)."""
    try:
        with open(path, "rb") as f:
            return hashlib.blake2b(f.read(), digest_size=16).digest()
    except OSError:
        return None


class FileWatcher:
    """Calls ``on_change()`` on the loop when ``path``'s content has changed and settled.

    Args:
        loop: whose timers run the checks.
        path: the file.
        on_change: called with no argument, on the loop, once per settled change.
        interval: seconds between checks.
    """

    def __init__(
        self, loop: Loop, path: str, on_change: Callable[[], object], *, interval: float = 1.0
    ) -> None:
        self.loop = loop
        self.path = path
        self.on_change = on_change
        self.interval = interval
        self._seen = content_digest(path)  # what the caller has (last reported)
        self._pending: bytes | None = None  # a new content waiting to settle
        self._timer: TimerHandle | None = loop.timers.call_later(interval, self._check)

    def accept_current(self) -> None:
        """Take the file as it is now as seen (after a change made some other way)."""
        self._seen = content_digest(self.path)
        self._pending = None

    def _check(self) -> None:
        self._timer = self.loop.timers.call_later(self.interval, self._check)
        digest = content_digest(self.path)
        if digest is None or digest == self._seen:
            # Unreadable (a rename in progress) waits for the next check;
            # back to what we had cancels a pending change.
            self._pending = None
            return
        if digest != self._pending:
            self._pending = digest  # changed: report it once it holds still
            return
        self._seen = digest
        self._pending = None
        try:
            self.on_change()
        except Exception:
            logger.exception("watching %s: the change handler failed", self.path)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
