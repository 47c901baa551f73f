"""corenet.watch: a file's content change, once settled, reported once, on the loop."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from corenet.event import select_backend
from corenet.loop import Loop
from corenet.plugin import Plugins
from corenet.watch import FileWatcher, content_digest

if TYPE_CHECKING:
    from pathlib import Path

INTERVAL = 0.02


def run_for(loop: Loop, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(10_000):
        if time.monotonic() >= deadline:
            return
        loop.run_once(INTERVAL / 4)


def make(tmp_path: Path) -> tuple[Loop, str, list[bytes | None], FileWatcher]:
    path = str(tmp_path / "watched.yml")
    with open(path, "w") as f:
        f.write("one\n")
    loop = Loop(select_backend("auto", Plugins(autoload=False).event_backends))
    seen: list[bytes | None] = []
    watcher = FileWatcher(loop, path, lambda: seen.append(content_digest(path)), interval=INTERVAL)
    return loop, path, seen, watcher


def test_a_change_is_reported_once_after_it_settles(tmp_path: Path) -> None:
    loop, path, seen, watcher = make(tmp_path)
    try:
        run_for(loop, INTERVAL * 5)
        assert seen == []
        with open(path, "w") as f:
            f.write("two\n")
        run_for(loop, INTERVAL * 8)
        assert seen == [content_digest(path)]
    finally:
        watcher.close()
        loop.backend.close()


def test_touching_or_rewriting_the_same_bytes_is_no_change(tmp_path: Path) -> None:
    loop, path, seen, watcher = make(tmp_path)
    try:
        os.utime(path)
        with open(path, "w") as f:
            f.write("one\n")
        run_for(loop, INTERVAL * 8)
        assert seen == []
    finally:
        watcher.close()
        loop.backend.close()


def test_a_missing_file_waits_and_a_replaced_one_is_seen(tmp_path: Path) -> None:
    loop, path, seen, watcher = make(tmp_path)
    try:
        os.unlink(path)
        run_for(loop, INTERVAL * 5)
        assert seen == []
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write("three\n")
        os.replace(tmp, path)
        run_for(loop, INTERVAL * 8)
        assert seen == [content_digest(path)]
    finally:
        watcher.close()
        loop.backend.close()


def test_accept_current_swallows_a_change_made_elsewhere(tmp_path: Path) -> None:
    loop, path, seen, watcher = make(tmp_path)
    try:
        with open(path, "w") as f:
            f.write("four\n")
        watcher.accept_current()
        run_for(loop, INTERVAL * 8)
        assert seen == []
    finally:
        watcher.close()
        loop.backend.close()
