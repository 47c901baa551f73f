"""corenet's built-in routing plugins: key hash functions and distributions.

This directory installs as ``corenet.plugins`` (see ``package-dir`` in
pyproject.toml), never as a top-level ``plugins`` package.

- :mod:`corenet.plugins.hashing`: nutcracker's 12 key hashes;
- :mod:`corenet.plugins.distribution`: ketama, modula and random, plus
  nutcracker's server naming and ordering rules.
"""

from __future__ import annotations

from . import distribution, hashing

__all__ = ["distribution", "hashing"]
