"""A TLS stream's life, as data: states, inputs, one transition table.

Theory of operation
-------------------

A TLS stream starts HANDSHAKING: bytes read go to the TLS engine, which
answers with its own flights; nothing the application queues is encrypted
yet (it waits, in order).  HANDSHAKE_DONE makes it OPEN: application data
flows both ways.  HANDSHAKE_ERROR (a bad certificate, a plain-text peer,
the peer gone, or the handshake timeout) makes it FAILED: the engine's
alert, if it wrote one, is sent once, and the stream is closed without a
``close_notify`` (there is no session to close).

An OPEN stream whose peer sends ``close_notify`` (CLOSE_NOTIFY), or closes
its TCP side without one (PEER_EOF: a truncation, which is how most Redis
and memcache clients hang up), is PEER_CLOSED: half-closed, it reads
nothing more but may still write, so replies owed to a client that
half-closed still go out.  A fatal error after the handshake (a forged
record, an alert from the peer) is FATAL: the stream is FAILED.  CLOSE (our
side closes) ends every state; from OPEN and PEER_CLOSED it sends our
``close_notify`` first (best effort: it is one non-blocking write).

Renegotiation is refused by the engine itself (``OP_NO_RENEGOTIATION`` on
every context corenet builds), so it is no input here.

A pair missing from the table is a bug, reported with both names.
"""

from __future__ import annotations

import enum

from corenet._table import StateTable

__all__ = [
    "TABLE",
    "NOTIFY_ON_CLOSE",
    "TRANSITIONS",
    "WRITABLE",
    "TLSEvent",
    "TLSState",
    "next_state",
]


class TLSState(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    PEER_CLOSED = "peer_closed"
    FAILED = "failed"
    CLOSED = "closed"


class TLSEvent(enum.Enum):
    HANDSHAKE_DONE = "handshake_done"
    HANDSHAKE_ERROR = "handshake_error"  # also: the peer left, or the timeout fired
    CLOSE_NOTIFY = "close_notify"  # the peer's TLS-level end of data
    PEER_EOF = "peer_eof"  # TCP EOF after the handshake, with or without close_notify
    FATAL = "fatal"  # a TLS error after the handshake
    CLOSE = "close"  # our side closes


# next_state(state, event) raises LocalProtocolError for a pair not listed.
TABLE = StateTable[TLSState, TLSEvent](
    "TLS stream",
    TLSState,
    TLSEvent,
    """
    HANDSHAKING HANDSHAKE_DONE -> OPEN
    HANDSHAKING HANDSHAKE_ERROR -> FAILED
    HANDSHAKING CLOSE -> CLOSED
    OPEN CLOSE_NOTIFY -> PEER_CLOSED
    OPEN PEER_EOF -> PEER_CLOSED
    OPEN FATAL -> FAILED
    OPEN CLOSE -> CLOSED
    PEER_CLOSED PEER_EOF -> PEER_CLOSED
    PEER_CLOSED FATAL -> FAILED
    PEER_CLOSED CLOSE -> CLOSED
    FAILED CLOSE -> CLOSED
""",
)
TRANSITIONS, next_state = TABLE.transitions, TABLE.next

WRITABLE = frozenset({TLSState.OPEN, TLSState.PEER_CLOSED})
"""States in which application data is encrypted and written."""
NOTIFY_ON_CLOSE = WRITABLE
"""States in which closing sends our ``close_notify``."""
