"""Test kit for corenet and its plugin authors (install ``corenet[testing]``).

``corenet.testing`` drives parsers as the proxy does; the hypothesis
strategies live in :mod:`corenet.testing.strategies`.
"""

from corenet.testing._drive import drive_replies, drive_requests, split_at

__all__ = ["drive_replies", "drive_requests", "split_at"]
