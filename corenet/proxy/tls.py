"""A pool's TLS: the contexts its settings describe, built by one function.

:func:`build_contexts` turns a :class:`~corenet.proxy.config.PoolConfig`
into a :class:`PoolTLS`: the context the pool's listener accepts clients
with (``tls_cert``, ``tls_key``, ``tls_ca``, ``tls_protocols``,
``tls_ciphers``), the context its server connections connect with
(``server_tls``, ``server_tls_ca``, ``server_tls_cert``, ``server_tls_key``,
``server_tls_verify``, ``server_tls_protocols``, ``server_tls_ciphers``),
the host name each server is verified against (``server_tls_sni``, else the
server's host) and the handshake timeout.  It reads the certificate and key
files each time it is called: building a pool calls it, ``-t`` calls it (so
a missing file, a key that does not match its certificate, or an encrypted
key fails the test with the pool, key and line named), and a configuration
reload calls it again for the new configuration, so renewed certificates
are read then; connections already open keep the session they have.

The TLS itself is the framework's (:mod:`corenet.tls`); the pool only picks
the TLS flavour of its connection classes when a context is set, so a pool
without TLS runs exactly the plain code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from corenet.proxy.config import key_error
from corenet.tls import TLSSetupError, client_context, server_context

if TYPE_CHECKING:
    import ssl

    from corenet.proxy.config import PoolConfig, ServerConfig

__all__ = ["DEFAULT_HANDSHAKE_TIMEOUT", "NO_TLS", "PoolTLS", "build_contexts", "check_protocol"]

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
"""Seconds a handshake may take when neither ``tls_handshake_timeout`` nor ``timeout`` is set."""


@attrs.frozen
class PoolTLS:
    """What a pool's connections need to speak TLS (None: that side is plain)."""

    accept: ssl.SSLContext | None = None
    """For clients: the listener's side (None: plain-text clients)."""
    connect: ssl.SSLContext | None = None
    """For servers: the backend side (None: plain-text servers)."""
    sni: str | None = None
    verify: bool = True
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT

    def hostname(self, server: ServerConfig) -> str | None:
        """The name sent as SNI to ``server`` and checked against its certificate."""
        if self.sni is not None:
            return self.sni
        return server.address.host or None


NO_TLS = PoolTLS()


def _setup_error(config: PoolConfig, prefix: str, exc: TLSSetupError) -> Exception:
    # The framework names the role ("key"); the configuration knows the key
    # name, and a key read from the certificate file is that key's problem.
    role = exc.role
    names = {"versions": "protocols"}
    key = f"{prefix}tls_{names.get(role, role)}"
    if role == "key" and getattr(config, key) is None:
        key = f"{prefix}tls_cert"
    return key_error(config, key, str(exc))


def build_contexts(config: PoolConfig) -> PoolTLS:
    """The TLS contexts of ``config``, reading its certificate files now.

    Called when a pool is built, by ``-t``, and by a reload for the new
    configuration (certificates renewed on disk are picked up then).

    Raises:
        ConfigError: a file is missing, unreadable, encrypted or does not
            load, a key does not match its certificate, or no cipher matches;
            the message names file, line, pool and key (never key contents).
    """
    if config.tls_cert is None and not config.server_tls:
        return NO_TLS
    accept = connect = None
    if config.tls_cert is not None:
        try:
            accept = server_context(
                config.tls_cert,
                config.tls_key,
                ca=config.tls_ca,
                versions=config.tls_protocols,
                ciphers=config.tls_ciphers,
            )
        except TLSSetupError as exc:
            raise _setup_error(config, "", exc) from None
    if config.server_tls:
        try:
            connect = client_context(
                ca=config.server_tls_ca,
                cert=config.server_tls_cert,
                key=config.server_tls_key,
                verify=config.server_tls_verify,
                versions=config.server_tls_protocols,
                ciphers=config.server_tls_ciphers,
            )
        except TLSSetupError as exc:
            raise _setup_error(config, "server_", exc) from None
    ms = config.tls_handshake_timeout or config.timeout
    return PoolTLS(
        accept=accept,
        connect=connect,
        sni=config.server_tls_sni,
        verify=config.server_tls_verify,
        handshake_timeout=ms / 1000.0 if ms else DEFAULT_HANDSHAKE_TIMEOUT,
    )


def check_protocol(config: PoolConfig, protocol: object) -> None:
    """Refuse TLS settings on a pool whose protocol declares ``supports_tls = False``.

    Raises:
        ConfigError: naming the first TLS key the pool gives.
    """
    if getattr(protocol, "supports_tls", True):
        return
    for key, used in (("tls_cert", config.tls_cert is not None), ("server_tls", config.server_tls)):
        if used:
            raise key_error(config, key, f'protocol "{config.protocol}" does not support TLS')
