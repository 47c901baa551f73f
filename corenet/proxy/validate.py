"""What ``-t`` checks beyond the file's syntax: plugins, plugin output, addresses.

A pool is valid when its protocol, hash function and distribution are
registered, when the keys the file gives that corenet does not know are
ones its protocol declares (``pool_keys``), when its hash function returns
unsigned 32-bit integers for sample keys (a plugin returning ``1 << 40`` or
``-1`` would otherwise pass ``-t`` and then close every client in service),
when its TLS certificate and key files exist, load and match (see
:mod:`corenet.proxy.tls`), and when its listen host resolves.  Every error
names file, line, pool and key, like the syntax errors of :mod:`corenet.proxy.config`.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from corenet.proxy.config import key_error, pool_options
from corenet.proxy.tls import build_contexts, check_protocol

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from corenet.plugin import Plugins
    from corenet.proxy.config import PoolConfig

__all__ = [
    "HASH_PROBES",
    "check_extra_keys",
    "check_hash_function",
    "check_pools",
    "check_protocol_keys",
]

HASH_PROBES: tuple[bytes, ...] = (b"", b"a", b"key:000000000001", bytes(range(256)), b"\xff" * 300)
"""Keys every hash function is tried on before a pool uses it."""

_UINT32 = 1 << 32


def check_hash_function(name: str, fn: object) -> str | None:
    """Why ``fn`` is not a usable hash function, or None when it is."""
    for key in HASH_PROBES:
        # The proxy hashes bytes only; what else a hash accepts is the
        # plugin's business (corenet.testing checks it for plugin authors).
        try:
            value, again = fn(key), fn(key)  # type: ignore[operator]
        except Exception as exc:  # a plugin's bug, reported as such
            return f"hash function {name!r} fails on {key[:16]!r}: {exc!r}"
        if value != again:
            return f"hash function {name!r} gives {key[:16]!r} two different values"
        if type(value) is not int or not 0 <= value < _UINT32:
            return f"hash function {name!r} returned {value!r}, not an integer in 0..2**32-1"
    return None


def check_pools(pools: Mapping[str, PoolConfig], plugins: Plugins) -> None:
    """Check every pool against the plugins and the resolver.

    Raises:
        ConfigError: the first problem found, naming file, line, pool and key.
    """
    for pool in pools.values():
        for registry, name, key in (
            (plugins.protocols, pool.protocol, "protocol" if pool.protocol_name else "redis"),
            (plugins.hash_functions, pool.hash, "hash"),
            (plugins.distributions, pool.distribution, "distribution"),
        ):
            if name not in registry:
                known = ", ".join(sorted(registry))
                message = f'"{name}" is not a valid {registry.kind} (known: {known})'
                raise key_error(pool, key, message)
        protocol = plugins.protocols.get(pool.protocol)
        check_protocol_keys(pool, protocol)
        check_protocol(pool, protocol)
        build_contexts(pool)  # the certificate files exist, load and match
        problem = check_hash_function(pool.hash, plugins.hash_functions.get(pool.hash))
        if problem is not None:
            raise key_error(pool, "hash", problem)
        listen = pool.listen
        if listen.path is None:
            try:
                socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise key_error(
                    pool, "listen", f'host "{listen.host}" does not resolve: {exc.strerror}'
                ) from None


def check_protocol_keys(pool: PoolConfig, protocol: object) -> None:
    """Refuse keys neither corenet nor ``protocol`` knows (``pool_keys``), and
    bad values of the protocol's own keys (its optional ``check_pool(options)``,
    which raises ``ValueError(key, message)``).

    Raises:
        ConfigError: naming the key and its line.
    """
    check_extra_keys(pool, getattr(protocol, "pool_keys", ()))
    check_pool = getattr(protocol, "check_pool", None)
    if check_pool is not None:
        try:
            check_pool(pool_options(pool))
        except ValueError as exc:
            key, message = exc.args if len(exc.args) == 2 else ("", str(exc))
            line = pool.extra[key][1] if key in pool.extra else None
            raise key_error(pool, key, message, line) from None


def check_extra_keys(pool: PoolConfig, declared: Collection[str]) -> None:
    """Refuse the keys of ``pool`` that neither corenet nor its protocol knows.

    Raises:
        ConfigError: naming the first such key and its line, as nutcracker does.
    """
    for key, (_, line) in pool.extra.items():
        if key not in declared:
            raise key_error(pool, key, f'directive "{key}" is unknown', line)
