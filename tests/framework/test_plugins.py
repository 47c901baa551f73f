"""The plugin manager: built-ins, entry points, duplicates, env controls."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from corenet.errors import PluginError
from corenet.plugin import hookimpl
from corenet.proxy.plugins import load_plugins


def fake_distribution(monkeypatch: pytest.MonkeyPatch, name: str, **hooks: object) -> None:
    """Install a module with ``hooks`` as distribution ``corenet-NAME``'s
    ``corenet`` entry point, and let entry points load."""
    module = make_module(f"corenet_{name}", **hooks)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.delenv("CORENET_DISABLE_PLUGIN_AUTOLOAD", raising=False)

    class EntryPoint:
        group = "corenet"

        def __init__(self) -> None:
            self.name = name
            self.value = module.__name__

        def load(self) -> types.ModuleType:
            return module

    class Distribution:
        entry_points = (EntryPoint(),)
        metadata = {"name": f"corenet-{name}"}

    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter([Distribution()]))


def make_module(name: str, **hooks: object) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, fn)
    return module


@hookimpl
def _xxhash_registration(registry):
    registry.add("xx", lambda key: len(key))


@hookimpl
def _duplicate_md5(registry):
    registry.add("md5", lambda key: 0)


def test_builtins_register_without_installed_metadata():
    plugins = load_plugins(autoload=False)
    assert "redis" in plugins.protocols
    assert {"epoll", "poll", "select"} & set(plugins.event_backends)
    assert "fnv1a_64" in plugins.hash_functions
    assert {"ketama", "modula", "random"} <= set(plugins.distributions)
    assert plugins.hash_functions.owner("fnv1a_64") == "hashing"


def test_entry_point_plugin_adds_a_hash(monkeypatch):
    fake_distribution(monkeypatch, "xx", corenet_register_hash_functions=_xxhash_registration)
    plugins = load_plugins()
    assert plugins.hash_functions.get("xx")(b"abc") == 3
    assert plugins.hash_functions.owner("xx") == "xx"


def test_autoload_can_be_disabled_by_environment(monkeypatch):
    fake_distribution(monkeypatch, "xx", corenet_register_hash_functions=_xxhash_registration)
    monkeypatch.setenv("CORENET_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "xx" not in load_plugins().hash_functions


def test_a_second_claim_on_a_name_names_both_plugins(monkeypatch):
    fake_distribution(monkeypatch, "evil", corenet_register_hash_functions=_duplicate_md5)
    with pytest.raises(
        PluginError, match="'md5' is registered by both plugin 'hashing' and plugin 'evil'"
    ):
        load_plugins()


def test_blocked_plugins_are_not_loaded(monkeypatch):
    fake_distribution(monkeypatch, "evil", corenet_register_hash_functions=_duplicate_md5)
    monkeypatch.setenv("CORENET_DISABLED_PLUGINS", "evil, redis")
    plugins = load_plugins()
    assert plugins.hash_functions.owner("md5") == "hashing"
    assert "redis" not in plugins.protocols


def test_invalid_hookimpl_is_rejected(monkeypatch):
    @hookimpl
    def corenet_register_protocols(registry, unknown_argument):
        raise AssertionError("never called")

    fake_distribution(monkeypatch, "bad", corenet_register_protocols=corenet_register_protocols)
    with pytest.raises(PluginError, match="invalid plugin"):
        load_plugins()


def test_unknown_hook_name_is_rejected(monkeypatch):
    @hookimpl
    def corenet_register_protocolz(registry):
        raise AssertionError("never called")

    fake_distribution(monkeypatch, "typo", corenet_register_protocolz=corenet_register_protocolz)
    with pytest.raises(PluginError, match="corenet_register_protocolz"):
        load_plugins()


def test_protocol_missing_parts_is_rejected():
    class Half:
        name = "half"

        def new_request_parser(self, pool):
            raise AssertionError

    @hookimpl
    def corenet_register_protocols(registry):
        registry.add("half", Half())

    with pytest.raises(
        PluginError, match="protocol 'half' from 'half' lacks new_reply_parser, error_reply"
    ):
        load_plugins(
            extra={
                "half": make_module("half", corenet_register_protocols=corenet_register_protocols)
            },
            autoload=False,
        )


def test_unknown_name_lists_the_known_ones():
    plugins = load_plugins(autoload=False)
    with pytest.raises(PluginError, match=r"no hash function named 'sha9' \(known: .*fnv1a_64"):
        plugins.hash_functions.get("sha9")
