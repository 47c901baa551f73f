"""Shared pytest configuration: hypothesis profiles and the real-server fixtures.

The fixtures (``redis_servers``, ``redis_server``, ``memcached_servers``,
``memcached_server``, ``nutcracker_factory``, ``corenet_proxy_factory``), the
``--require-servers`` switch (also ``CORENET_REQUIRE_SERVERS=1`` or ``CI``),
log tails of a failed test's processes and the end-of-session check for
leftover processes come from ``corenet.proxy.fixtures``, the plugin that
plugin authors use too; see its docstring.  ``need_binary`` is re-exported
for tests that start servers themselves.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# Imported, not listed in pytest_plugins: this conftest imports need_binary
# from it, and a plugin module imported before pytest registers it would
# warn that it cannot be assertion-rewritten.
from corenet.proxy.fixtures import *  # noqa: F403  (fixtures and hooks)
from corenet.proxy.fixtures import need_binary, require_servers
from corenet.testing.tls import TLSFiles, make_test_pki, openssl_binary
from tests._speedups import speedups  # noqa: F401  (a fixture for every test module)

__all__ = ["need_binary", "require_servers"]

settings.register_profile("dev", max_examples=100)
settings.register_profile(
    "ci",
    max_examples=500,
    deadline=None,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA and its certificates (``corenet.testing.tls``), made once a session."""
    if openssl_binary() is None:
        pytest.skip("the openssl CLI is not installed (scripts/test.sh installs it)")
    return make_test_pki(str(tmp_path_factory.mktemp("pki")))
