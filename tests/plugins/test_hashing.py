"""nutcracker's 12 key hashes: golden vectors and properties.

``data/hash_vectors.json`` holds, for 422 keys (empty, every single byte,
bytes >= 0x80, every tail length, 250-byte and longer keys, hash-tag forms,
UTF-8), the values nutcracker 0.5.0's own hashkit C code returns; its
``source`` field says how they were produced.

Both implementations are checked: the pure-Python reference (ids ``pure-*``)
and the compiled ``_speedups`` extension (ids ``c-*``, only for the eight
functions it provides).  When the extension is not built the ``c-*`` cases
are skipped, or fail if ``CORENET_REQUIRE_SPEEDUPS=1`` (CI sets it);
test_speedups.py holds the differential tests between the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from corenet.plugins.hashing import FAST_HASH_FUNCTIONS, PURE_HASH_FUNCTIONS

# The pure modules directly: their fast paths are what the reference tests check.
from corenet.plugins.hashing._crc import crc16
from corenet.plugins.hashing._fnv import fnv1_32, fnv1_64, fnv1a_32, fnv1a_64
from tests._speedups import needs_c, require_built

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.routing import HashFn

DATA = Path(__file__).parent / "data" / "hash_vectors.json"

# The key "apple", from the compatibility spec (nutcracker-compat.md, "Hash functions").
APPLE = {
    "one_at_a_time": 2297466611,
    "md5": 3195025439,
    "crc16": 3662830516,
    "crc32": 10542,
    "crc32a": 2838417488,
    "fnv1_32": 67176023,
    "fnv1a_32": 280767167,
    "fnv1_64": 473199127,
    "fnv1a_64": 1488911807,
    "hsieh": 3738850110,
    "jenkins": 1442444624,
    "murmur": 4142305122,
}

# What each function itself returns for b"".  nutcracker's pool never calls
# a hash for an empty key (it routes it with hash 0); the functions still
# have these values, and only some are 0.
EMPTY = {
    "one_at_a_time": 0,
    "md5": 0xD98C1DD4,  # MD5("") = d41d8cd9..., first 4 bytes little-endian
    "crc16": 0,
    "crc32": 0,
    "crc32a": 0,
    "fnv1_64": 0x84222325,
    "fnv1a_64": 0x84222325,
    "fnv1_32": 0x811C9DC5,
    "fnv1a_32": 0x811C9DC5,
    "hsieh": 0,
    "murmur": 0,
    "jenkins": 0xDEADBEFC,  # lookup3 returns its unmixed initial state
}


def load_vectors() -> tuple[list[str], list[tuple[bytes, list[int]]]]:
    raw = json.loads(DATA.read_text())
    rows = [(bytes.fromhex(row[0]), row[1:]) for row in raw["vectors"]]
    return raw["hashes"], rows


# HASH_ORDER: nutcracker's 12 hash names in its own order (the golden data's list).
HASH_ORDER, VECTORS = load_vectors()

NAMES = list(PURE_HASH_FUNCTIONS)

# The functions the C extension provides: all but md5 and the CRCs, which use the stdlib's C.
ACCELERATED = [name for name in HASH_ORDER if name != "md5" and not name.startswith("crc")]

EXTENSION = "corenet.plugins.hashing._speedups"
NEEDS_C = needs_c(FAST_HASH_FUNCTIONS, EXTENSION)


def hash_table(impl: str) -> Mapping[str, HashFn]:
    """The ``"pure"`` or ``"c"`` name -> function table.

    For ``"c"`` without a built extension: skip the test, or fail it when
    ``CORENET_REQUIRE_SPEEDUPS`` is set to a true value.
    """
    if impl == "pure":
        return PURE_HASH_FUNCTIONS
    return require_built(FAST_HASH_FUNCTIONS, EXTENSION)


# (implementation, name) pairs: every function in pure Python, the
# accelerated ones in C as well.
CASES = [pytest.param("pure", name, id=f"pure-{name}") for name in NAMES] + [
    pytest.param("c", name, id=f"c-{name}", marks=NEEDS_C) for name in ACCELERATED
]


def test_all_twelve_names_in_nutcracker_order() -> None:
    assert NAMES == HASH_ORDER
    assert len(NAMES) == 12


@pytest.mark.parametrize(("impl", "name"), CASES)
def test_apple(impl: str, name: str) -> None:
    assert hash_table(impl)[name](b"apple") == APPLE[name]


@pytest.mark.parametrize(("impl", "name"), CASES)
def test_empty_key(impl: str, name: str) -> None:
    assert hash_table(impl)[name](b"") == EMPTY[name]


@pytest.mark.parametrize(("impl", "name"), CASES)
def test_golden_vectors_from_nutcracker(impl: str, name: str) -> None:
    fn = hash_table(impl)[name]
    column = HASH_ORDER.index(name)
    wrong = [
        (key.hex(), fn(key), values[column]) for key, values in VECTORS if fn(key) != values[column]
    ]
    assert not wrong, f"{len(wrong)} of {len(VECTORS)} keys differ, first: {wrong[:3]}"


def test_vectors_cover_the_quirks() -> None:
    keys = [key for key, _ in VECTORS]
    assert b"" in keys
    assert all(bytes([b]) in keys for b in range(256))
    assert {len(k) for k in keys} >= set(range(0, 41)) | {63, 64, 65, 250, 1000}
    assert any(k.startswith(b"{") and b"}" in k for k in keys)


# Plain references for the pure functions whose fast paths are clever:
# masked per-byte loops straight from the definitions, to check every
# length split.


def ref_fnv(key: bytes, *, basis: int, prime: int, xor_first: bool, bits: int) -> int:
    mask = (1 << bits) - 1
    h = basis
    for b in key:
        c = (b - 256) & mask if b >= 0x80 else b  # (uintN_t)(signed char)b
        h = ((h ^ c) * prime) & mask if xor_first else ((h * prime) & mask) ^ c
    return h & 0xFFFFFFFF


def _xmodem_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
        table.append(crc)
    return table


XMODEM = _xmodem_table()


def ref_crc16(key: bytes) -> int:
    crc = 0
    for b in key:
        crc = ((crc << 8) ^ XMODEM[((crc >> 8) ^ b) & 0xFF]) & 0xFFFFFFFF
    return crc


REFERENCES: dict[str, tuple[HashFn, HashFn]] = {
    "fnv1a_64": (
        fnv1a_64,
        lambda k: ref_fnv(k, basis=0x84222325, prime=0x1B3, xor_first=True, bits=32),
    ),
    # The true 64-bit computation, truncated at the end.
    "fnv1_64": (
        fnv1_64,
        lambda k: ref_fnv(
            k, basis=0xCBF29CE484222325, prime=0x100000001B3, xor_first=False, bits=64
        ),
    ),
    "fnv1a_32": (
        fnv1a_32,
        lambda k: ref_fnv(k, basis=0x811C9DC5, prime=0x01000193, xor_first=True, bits=32),
    ),
    "fnv1_32": (
        fnv1_32,
        lambda k: ref_fnv(k, basis=0x811C9DC5, prime=0x01000193, xor_first=False, bits=32),
    ),
    "crc16": (crc16, ref_crc16),
}


@pytest.mark.parametrize("name", list(REFERENCES))
@given(key=st.binary(max_size=200) | st.text(max_size=150).map(str.encode))
@example(key=b"x" * 63)
@example(key=b"x" * 64)
@example(key=b"\xff" * 64)
@example(key=b"x" * 71 + b"\x80")
def test_fast_paths_match_plain_reference(name: str, key: bytes) -> None:
    fast, reference = REFERENCES[name]
    assert fast(key) == reference(key)


def test_long_key_is_not_quadratic() -> None:
    # nutcracker accepts keys up to the mbuf size; an unbounded Python int
    # would make this take seconds.
    key = b"k" * 16384
    assert fnv1a_64(key) == REFERENCES["fnv1a_64"][1](key)


@pytest.mark.parametrize(("impl", "name"), CASES)
@given(key=st.binary(max_size=300))
def test_unsigned_32_bit_and_deterministic(impl: str, name: str, key: bytes) -> None:
    fn = hash_table(impl)[name]
    value = fn(key)
    assert isinstance(value, int)
    assert 0 <= value < 2**32
    assert fn(bytes(key)) == value
    # Keys sliced out of an mbuf may be bytearrays; they hash the same.
    assert fn(cast("bytes", bytearray(key))) == value
