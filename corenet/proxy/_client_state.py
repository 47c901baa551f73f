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

from corenet._table import StateTable

__all__ = ["TABLE", "TRANSITIONS", "ClientEvent", "ClientState", "next_state"]


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


# next_state(state, event) raises LocalProtocolError for a pair not listed.
TABLE = StateTable[ClientState, ClientEvent](
    "client connection",
    ClientState,
    ClientEvent,
    """
    READING BACKPRESSURE -> PAUSED
    PAUSED BACKPRESSURE -> PAUSED
    PAUSED RELIEVED -> READING
    READING EOF -> DRAINING
    READING STOP -> DRAINING
    PAUSED STOP -> DRAINING
    DRAINING STOP -> DRAINING
    DRAINING BACKPRESSURE -> DRAINING
    DRAINING FINAL -> CLOSING
    CLOSING STOP -> CLOSING
    READING CLOSE -> CLOSED
    PAUSED CLOSE -> CLOSED
    DRAINING CLOSE -> CLOSED
    CLOSING CLOSE -> CLOSED
""",
)
TRANSITIONS, next_state = TABLE.transitions, TABLE.next
