"""Test kit for corenet and its plugin authors (install ``corenet[testing]``).

``corenet.testing`` drives parsers as connections do and runs the protocol
conformance suite (:mod:`corenet.testing.conformance`, which needs
hypothesis); :mod:`corenet.testing.process` starts and stops real processes
on free loopback ports.  The names below load on first use, so the process
harness (which the proxy's ``--demo`` uses) works without hypothesis.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real types for type checkers; loaded lazily at run time
    from corenet.testing._drive import drive_replies, drive_requests, split_at
    from corenet.testing.conformance import (
        ReplyParserConformance,
        RequestParserConformance,
        check_reply_parser,
        check_request_parser,
    )

__all__ = [
    "ReplyParserConformance",
    "RequestParserConformance",
    "check_reply_parser",
    "check_request_parser",
    "drive_replies",
    "drive_requests",
    "split_at",
]

_HOMES = {
    "ReplyParserConformance": "corenet.testing.conformance",
    "RequestParserConformance": "corenet.testing.conformance",
    "check_reply_parser": "corenet.testing.conformance",
    "check_request_parser": "corenet.testing.conformance",
    "drive_replies": "corenet.testing._drive",
    "drive_requests": "corenet.testing._drive",
    "split_at": "corenet.testing._drive",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'corenet.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return list(__all__)
