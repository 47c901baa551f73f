"""State tables as data: every state machine of corenet is one :class:`StateTable`.

A table is written as rows ``STATE EVENT -> NEXT`` (member names of the two
enums), one per line, which reads like the diagrams in h11's docs and is
checked when the module is imported: an unknown name, a malformed row or a
pair given twice raises at once.
"""

from __future__ import annotations

import enum
from typing import Generic, TypeVar

from corenet.errors import LocalProtocolError

__all__ = ["StateTable"]

_S = TypeVar("_S", bound=enum.Enum)
_E = TypeVar("_E", bound=enum.Enum)


class StateTable(Generic[_S, _E]):
    """The transitions of one machine, named ``what`` in errors."""

    def __init__(self, what: str, states: type[_S], events: type[_E], rows: str) -> None:
        self.what = what
        self.transitions: dict[tuple[_S, _E], _S] = {}
        for line in rows.strip().splitlines():
            words = line.split()
            if len(words) != 4 or words[2] != "->":
                raise ValueError(f"{what}: a row is 'STATE EVENT -> NEXT', not {line!r}")
            pair = (states[words[0]], events[words[1]])
            if pair in self.transitions:
                raise ValueError(f"{what}: {words[0]} {words[1]} is given twice")
            self.transitions[pair] = states[words[3]]

    def next(self, state: _S, event: _E) -> _S:
        """The state ``event`` leads to from ``state``.

        Raises:
            LocalProtocolError: the table has no such transition; the message
                names the machine, the state and the event.
        """
        try:
            return self.transitions[state, event]
        except KeyError:
            raise LocalProtocolError(
                f"{self.what}: no transition from {state.name} on {event.name}"
            ) from None
