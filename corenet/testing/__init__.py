"""Test kit for corenet and its plugin authors (install ``corenet[testing]``).

``corenet.testing`` drives parsers as the proxy does and runs the protocol
conformance suite (:mod:`corenet.testing.conformance`); the hypothesis
strategies live in :mod:`corenet.testing.strategies` (Redis) and
:mod:`corenet.testing.memcache_strategies` (memcache).
"""

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
