"""The compiled hash accelerator against the pure-Python reference.

The golden vectors run against both implementations in test_hashing.py;
here a differential property test checks that the C functions equal the
pure ones on arbitrary keys, plus the C functions' argument handling and the
``CORENET_NO_SPEEDUPS`` selection.  Without a built extension the C tests
skip, or fail with ``CORENET_REQUIRE_SPEEDUPS=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.plugin import HashRegistry
from corenet.plugins import hashing
from corenet.plugins.hashing import plugin as hashing_plugin
from tests._speedups import REQUIRE_SPEEDUPS_ENV, import_time_cases, selection_in_subprocess
from tests.plugins.test_hashing import ACCELERATED, EXTENSION, NAMES, NEEDS_C, hash_table

if TYPE_CHECKING:
    from collections.abc import Callable


def _pair(name: str) -> tuple[Callable[[bytes], int], Callable[[bytes], int]]:
    return hash_table("c")[name], hash_table("pure")[name]


def test_extension_is_built() -> None:
    # The one test that says plainly whether the C path is exercised at all.
    fast = hash_table("c")
    assert all(fast[name] is not hashing.PURE_HASH_FUNCTIONS[name] for name in ACCELERATED)
    assert all(
        fast[name] is hashing.PURE_HASH_FUNCTIONS[name] for name in NAMES if name not in ACCELERATED
    )
    assert list(fast) == NAMES


@NEEDS_C
@pytest.mark.parametrize("name", ACCELERATED)
@given(key=st.binary(max_size=600))
# Signed-char bytes in every position class, and each length boundary:
# jenkins' 12/13-byte block split, murmur's and hsieh's 1-3 byte tails.
@example(key=b"\x80")
@example(key=b"\xff\xfe\xfd")
@example(key=b"ab\x80")
@example(key=b"\xff" * 12)
@example(key=b"\xff" * 13)
@example(key=b"\x7f\x80" * 300)
def test_c_equals_pure(name: str, key: bytes) -> None:
    fast, pure = _pair(name)
    assert fast(key) == pure(key)


@pytest.mark.parametrize("name", ACCELERATED)
def test_long_keys(name: str) -> None:
    fast, pure = _pair(name)
    for key in (bytes(range(256)) * 64, b"k" * 100_003):
        assert fast(key) == pure(key)


@pytest.mark.parametrize("name", ACCELERATED)
def test_bytes_like_inputs(name: str) -> None:
    fast, pure = _pair(name)
    key = b"user:\xc3\xa9t\xc3\xa9:1234"
    expected = pure(key)
    assert fast(cast("bytes", bytearray(key))) == expected
    assert fast(cast("bytes", memoryview(key))) == expected
    # A slice of a larger buffer, as a key cut out of an mbuf would be.
    wire = b"*2\r\n$3\r\nGET\r\n$" + str(len(key)).encode() + b"\r\n" + key + b"\r\n"
    start = wire.index(key)
    assert fast(cast("bytes", memoryview(bytearray(wire))[start : start + len(key)])) == expected


@pytest.mark.parametrize("name", ACCELERATED)
@pytest.mark.parametrize("bad", ["apple", 42, None, ["a"]], ids=["str", "int", "None", "list"])
def test_non_bytes_raise_type_error(name: str, bad: Any) -> None:
    fast = hash_table("c")[name]
    with pytest.raises(TypeError, match="bytes-like"):
        fast(bad)


@pytest.mark.parametrize("name", ACCELERATED)
def test_wrong_arity_raises_type_error(name: str) -> None:
    fast: Any = hash_table("c")[name]
    with pytest.raises(TypeError):
        fast()
    with pytest.raises(TypeError):
        fast(b"a", b"b")


# -- selection ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " yes ", "on"])
def test_no_speedups_env_selects_pure(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(hashing.NO_SPEEDUPS_ENV, value)
    assert not hashing.speedups_enabled()
    assert hashing.hash_functions() is hashing.PURE_HASH_FUNCTIONS
    registry = HashRegistry()
    hashing_plugin.corenet_register_hash_functions(registry=registry)
    assert all(registry.get(name) is hashing.PURE_HASH_FUNCTIONS[name] for name in NAMES)


@pytest.mark.parametrize("value", [None, "", "0", "false", "no"])
def test_plugin_registers_c_by_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    fast = hash_table("c")
    if value is None:
        monkeypatch.delenv(hashing.NO_SPEEDUPS_ENV, raising=False)
    else:
        monkeypatch.setenv(hashing.NO_SPEEDUPS_ENV, value)
    assert hashing.speedups_enabled()
    assert hashing.hash_functions() is fast
    registry = HashRegistry()
    hashing_plugin.corenet_register_hash_functions(registry=registry)
    assert registry.names() == NAMES
    assert all(registry.get(name) is fast[name] for name in NAMES)


def test_explicit_choice_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = hash_table("c")
    monkeypatch.setenv(hashing.NO_SPEEDUPS_ENV, "1")
    assert hashing.hash_functions(accelerated=True) is fast
    monkeypatch.delenv(hashing.NO_SPEEDUPS_ENV)
    assert hashing.hash_functions(accelerated=False) is hashing.PURE_HASH_FUNCTIONS


def test_without_the_extension_pure_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hashing.NO_SPEEDUPS_ENV, raising=False)
    monkeypatch.setattr(hashing, "FAST_HASH_FUNCTIONS", None)
    assert not hashing.speedups_enabled()
    assert hashing.hash_functions() is hashing.PURE_HASH_FUNCTIONS
    with pytest.raises(ImportError, match="_speedups"):
        hashing.hash_functions(accelerated=True)


def _import_in_subprocess(env_value: str | None, block_extension: bool) -> str:
    code = (
        "from corenet.plugins import hashing as h\n"
        "print(h.HASH_FUNCTIONS is h.PURE_HASH_FUNCTIONS,"
        " h.fnv1a_64 is h.HASH_FUNCTIONS['fnv1a_64'], h.fnv1a_64(b'apple'))\n"
    )
    return selection_in_subprocess(code, env_value, EXTENSION if block_extension else None)


@import_time_cases
def test_import_time_selection(env_value: str | None, block: bool, pure: bool) -> None:
    if not pure:
        hash_table("c")
    # HASH_FUNCTIONS and the module-level names are fixed at import.
    assert _import_in_subprocess(env_value, block) == f"{pure} True 1488911807"


def test_require_switch_turns_skip_into_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.plugins.test_hashing.FAST_HASH_FUNCTIONS", None)
    monkeypatch.delenv(REQUIRE_SPEEDUPS_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception):
        hash_table("c")
    monkeypatch.setenv(REQUIRE_SPEEDUPS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=REQUIRE_SPEEDUPS_ENV):
        hash_table("c")
