"""A client connection's life, as data: states, inputs, one transition table.

Theory of operation
-------------------

A client starts READING: its requests are parsed and routed as they come.
Backpressure (too many requests in flight, too many reply bytes unread)
moves it to PAUSED, where it is not read; RELIEVED moves it back.

Nothing more will be read once the client half-closes (EOF: ``nc -N``,
``shutdown(SHUT_WR)``, a batch script), sends ``QUIT``, sends bytes the
protocol cannot recover from, or the proxy shuts down: the client is then
DRAINING.  A closing marker sits in its reply queue behind every request in
flight, so every reply still owed is written, in order, first.  When the
marker reaches the head of the queue the client is CLOSING: its last bytes
are being written, and it is closed once they are.  CLOSE (an error, a
timeout, the peer gone) ends any state but CLOSED.

A pair missing from the table is a bug, reported with both names.
"""

from __future__ import annotations

import enum

from corenet._table import next_in

__all__ = ["TRANSITIONS", "ClientEvent", "ClientState", "next_state"]


class ClientState(enum.Enum):
    READING = "reading"
    PAUSED = "paused"
    DRAINING = "draining"
    CLOSING = "closing"
    CLOSED = "closed"


class ClientEvent(enum.Enum):
    BACKPRESSURE = "backpressure"  # too much in flight or unread
    RELIEVED = "relieved"  # below the low-water marks again
    EOF = "eof"  # the client will send nothing more
    STOP = "stop"  # QUIT, an unrecoverable request, or shutdown
    FINAL = "final"  # the closing marker reached the head of the queue
    CLOSE = "close"  # closed now, whatever is pending


S, E = ClientState, ClientEvent

TRANSITIONS: dict[tuple[ClientState, ClientEvent], ClientState] = {
    (S.READING, E.BACKPRESSURE): S.PAUSED,
    (S.PAUSED, E.BACKPRESSURE): S.PAUSED,
    (S.PAUSED, E.RELIEVED): S.READING,
    (S.READING, E.EOF): S.DRAINING,
    (S.READING, E.STOP): S.DRAINING,
    (S.PAUSED, E.STOP): S.DRAINING,
    (S.DRAINING, E.STOP): S.DRAINING,
    (S.DRAINING, E.BACKPRESSURE): S.DRAINING,
    (S.DRAINING, E.FINAL): S.CLOSING,
    (S.CLOSING, E.STOP): S.CLOSING,
    (S.READING, E.CLOSE): S.CLOSED,
    (S.PAUSED, E.CLOSE): S.CLOSED,
    (S.DRAINING, E.CLOSE): S.CLOSED,
    (S.CLOSING, E.CLOSE): S.CLOSED,
}


def next_state(state: ClientState, event: ClientEvent) -> ClientState:
    """The state ``event`` leads to from ``state``.

    Raises:
        LocalProtocolError: the table has no such transition.
    """
    return next_in(TRANSITIONS, state, event, "client connection")
