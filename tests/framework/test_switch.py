"""corenet.switch: every change goes in, or none does."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corenet.switch import apply_all


class Recorded:
    """A change that logs each phase it goes through, and may refuse to prepare."""

    def __init__(self, name: int, log: list[tuple[str, int]], *, refuse: bool = False) -> None:
        self.name = name
        self.log = log
        self.refuse = refuse

    def prepare(self) -> None:
        if self.refuse:
            raise ValueError(f"change {self.name} refused")
        self.log.append(("prepare", self.name))

    def commit(self) -> None:
        self.log.append(("commit", self.name))

    def abort(self) -> None:
        self.log.append(("abort", self.name))


@given(st.lists(st.booleans(), max_size=12))
def test_all_commit_or_the_prepared_ones_abort(refusals: list[bool]) -> None:
    log: list[tuple[str, int]] = []
    changes = [Recorded(i, log, refuse=r) for i, r in enumerate(refusals)]
    if True in refusals:
        first = refusals.index(True)
        with pytest.raises(ValueError, match=f"change {first} refused"):
            apply_all(changes)
        prepared = [("prepare", i) for i in range(first)]
        aborted = [("abort", i) for i in reversed(range(first))]
        assert log == prepared + aborted  # nothing committed
    else:
        apply_all(changes)
        n = len(changes)
        assert log == [("prepare", i) for i in range(n)] + [("commit", i) for i in range(n)]


def test_a_failing_commit_is_logged_and_the_others_still_commit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[tuple[str, int]] = []

    class Broken(Recorded):
        def commit(self) -> None:
            raise RuntimeError("bug")

    changes = [Recorded(0, log), Broken(1, log), Recorded(2, log)]
    with caplog.at_level(logging.ERROR, logger="corenet.switch"):
        apply_all(changes)
    assert ("commit", 0) in log and ("commit", 2) in log
    assert "committing" in caplog.text
