"""The lookup every state table of corenet goes through (see ``_tls_state``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from corenet.errors import LocalProtocolError

if TYPE_CHECKING:
    import enum
    from collections.abc import Mapping

__all__ = ["next_in"]

_S = TypeVar("_S", bound="enum.Enum")
_E = TypeVar("_E", bound="enum.Enum")


def next_in(table: Mapping[tuple[_S, _E], _S], state: _S, event: _E, what: str) -> _S:
    """The state ``event`` leads to from ``state`` in ``table``.

    Raises:
        LocalProtocolError: the table has no such transition; the message
            names ``what`` (the machine), the state and the event.
    """
    try:
        return table[state, event]
    except KeyError:
        raise LocalProtocolError(
            f"{what}: no transition from {state.name} on {event.name}"
        ) from None
