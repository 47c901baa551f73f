"""corenet.watch: a file's content change, once settled, reported once, on the loop."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import attrs
import pytest

from corenet.event import select_backend
from corenet.loop import Loop
from corenet.plugin import Plugins
from corenet.watch import FileWatcher, content_digest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

INTERVAL = 0.02


@attrs.define
class Watched:
    loop: Loop
    path: str
    seen: list[bytes | None]
    watcher: FileWatcher

    def write(self, text: str) -> None:
        with open(self.path, "w") as f:
            f.write(text)

    def run(self, checks: int) -> None:
        """Run the loop for about ``checks`` check intervals."""
        deadline = time.monotonic() + INTERVAL * checks
        for _ in range(10_000):
            if time.monotonic() >= deadline:
                return
            self.loop.run_once(INTERVAL / 4)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Watched]:
    path = str(tmp_path / "watched.yml")
    loop = Loop(select_backend("auto", Plugins(autoload=False).event_backends))
    seen: list[bytes | None] = []
    with open(path, "w") as f:
        f.write("one\n")
    watcher = FileWatcher(loop, path, lambda: seen.append(content_digest(path)), interval=INTERVAL)
    yield Watched(loop, path, seen, watcher)
    watcher.close()
    loop.backend.close()


def test_a_change_is_reported_once_after_it_settles(watched: Watched) -> None:
    watched.run(5)
    assert watched.seen == []
    watched.write("two\n")
    watched.run(8)
    assert watched.seen == [content_digest(watched.path)]


def test_touching_or_rewriting_the_same_bytes_is_no_change(watched: Watched) -> None:
    os.utime(watched.path)
    watched.write("one\n")
    watched.run(8)
    assert watched.seen == []


def test_a_missing_file_waits_and_a_replaced_one_is_seen(watched: Watched) -> None:
    os.unlink(watched.path)
    watched.run(5)
    assert watched.seen == []
    tmp = watched.path + ".new"
    with open(tmp, "w") as f:
        f.write("three\n")
    os.replace(tmp, watched.path)
    watched.run(8)
    assert watched.seen == [content_digest(watched.path)]


def test_accept_current_swallows_a_change_made_elsewhere(watched: Watched) -> None:
    watched.write("four\n")
    watched.watcher.accept_current()
    watched.run(8)
    assert watched.seen == []
