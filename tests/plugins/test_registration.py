"""The hashing and distribution plugins register every nutcracker name."""

from __future__ import annotations

import pytest

from corenet.errors import PluginError
from corenet.plugin import DistributionRegistry, HashRegistry
from corenet.plugins import distribution, hashing
from corenet.plugins.distribution import plugin as distribution_plugin
from corenet.plugins.hashing import plugin as hashing_plugin
from corenet.proxy.plugins import load_plugins
from tests.plugins.test_hashing import HASH_ORDER

DISTS = ["ketama", "modula", "random"]


def test_hookimpls_fill_fresh_registries() -> None:
    hashes = HashRegistry()
    hashing_plugin.corenet_register_hash_functions(registry=hashes)
    assert hashes.names() == HASH_ORDER
    assert hashes.get("fnv1a_64") is hashing.fnv1a_64

    dists = DistributionRegistry()
    distribution_plugin.corenet_register_distributions(registry=dists)
    assert dists.names() == DISTS
    assert dists.get("ketama") is distribution.build_ketama


def test_registering_twice_is_refused() -> None:
    hashes = HashRegistry()
    hashing_plugin.corenet_register_hash_functions(registry=hashes)
    with pytest.raises(PluginError, match="one_at_a_time"):
        hashing_plugin.corenet_register_hash_functions(registry=hashes)


def test_plugin_manager_registers_all_names() -> None:
    plugins = load_plugins(autoload=False)
    assert set(HASH_ORDER) <= set(plugins.hash_functions)
    assert set(DISTS) <= set(plugins.distributions)
    assert all(plugins.hash_functions.owner(name) == "hashing" for name in HASH_ORDER)
    assert all(plugins.distributions.owner(name) == "distribution" for name in DISTS)
    build = plugins.distributions.get("ketama")
    dispatcher = build([("a", 1), ("b", 1)])
    assert dispatcher.lookup(plugins.hash_functions.get("fnv1a_64")(b"apple")) in {0, 1}
