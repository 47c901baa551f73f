"""corenet._table: state tables written as rows, checked when built."""

from __future__ import annotations

import enum

import pytest

from corenet._table import StateTable
from corenet.errors import LocalProtocolError


class Light(enum.Enum):
    RED = 1
    GREEN = 2


class Push(enum.Enum):
    GO = 1
    STOP = 2


def test_rows_become_transitions_and_a_missing_pair_names_both() -> None:
    table = StateTable("light", Light, Push, "RED GO -> GREEN\n GREEN STOP -> RED\n")
    assert table.transitions == {
        (Light.RED, Push.GO): Light.GREEN,
        (Light.GREEN, Push.STOP): Light.RED,
    }
    assert table.next(Light.RED, Push.GO) is Light.GREEN
    with pytest.raises(LocalProtocolError, match="light: no transition from GREEN on GO"):
        table.next(Light.GREEN, Push.GO)


@pytest.mark.parametrize(
    ("rows", "error"),
    [
        ("RED GO GREEN", ValueError),
        ("RED GO -> BLUE", KeyError),
        ("RED WAIT -> GREEN", KeyError),
        ("RED GO -> GREEN\nRED GO -> RED", ValueError),
    ],
)
def test_a_bad_table_is_refused_when_built(rows: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        StateTable("light", Light, Push, rows)
