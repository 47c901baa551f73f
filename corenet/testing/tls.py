"""Throw-away certificates for TLS tests, benchmarks and examples, made with the openssl CLI.

:func:`make_test_pki` writes, into a directory, a CA and what tests need of
it: a server certificate for ``localhost`` and ``127.0.0.1``, a client
certificate, an expired server certificate, and a second CA with a server
certificate of its own (the "wrong CA" case).  Keys are unencrypted P-256
(quick to make); nothing here is fit for production.  The commands are the
ones ``docs/tls.md`` shows, so the documentation's example is tested too.
"""

from __future__ import annotations

import os
import ssl
import subprocess
from typing import TYPE_CHECKING

import attrs

from corenet.testing._system import find_binary

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["ServerTLS", "TLSFiles", "make_test_pki", "openssl_binary"]

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
# The extensions strict verification (RFC 5280; Python 3.13's default
# VERIFY_X509_STRICT) requires: a CA says it signs certificates (keyUsage),
# a leaf names the key that signed it (authorityKeyIdentifier).
_CA_EXT = ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
_LEAF_EXT = "authorityKeyIdentifier=keyid,issuer\nbasicConstraints=CA:FALSE\n"
_SERVER_EXT = (
    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    "extendedKeyUsage=serverAuth,clientAuth\n" + _LEAF_EXT
)
_CLIENT_EXT = "extendedKeyUsage=clientAuth\n" + _LEAF_EXT
# `openssl ca` is how OpenSSL 3.0 writes arbitrary validity dates (x509 -req
# has no -not_after before 3.4, and -days must be positive).
_CA_CONF = """\
[ca]
default_ca = test_ca
[test_ca]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = anything
copy_extensions = none
unique_subject = no
[anything]
commonName = supplied
[server_ext]
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid,issuer
basicConstraints = CA:FALSE
"""


@attrs.frozen
class TLSFiles:
    """Paths of the PEM files :func:`make_test_pki` wrote."""

    directory: str
    ca: str
    ca_key: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    expired_cert: str
    expired_key: str
    other_ca: str
    other_server_cert: str
    other_server_key: str


@attrs.frozen
class ServerTLS:
    """How a server the process harness starts speaks TLS.

    ``cert``/``key``: what it presents; ``ca``: the CA it verifies clients
    with; ``verify_clients``: ``"no"``, ``"optional"`` or ``"yes"`` (a client
    certificate is then required).  ``client_cert``/``client_key``: what the
    harness's own readiness probes and resets present (needed with ``"yes"``).
    """

    cert: str
    key: str
    ca: str | None = None
    verify_clients: str = "no"
    client_cert: str | None = None
    client_key: str | None = None

    def probe_context(self) -> ssl.SSLContext:
        """A context for the harness's own exchanges: it does not verify the
        server (a readiness probe is no security test) and shows the client
        certificate if there is one."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context


def openssl_binary() -> str | None:
    """The ``openssl`` command, or None when it is not installed."""
    return find_binary("openssl")


def _run(args: Sequence[str], cwd: str) -> None:
    binary = openssl_binary()
    if binary is None:
        raise FileNotFoundError("openssl is not installed")
    done = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


def _write(path: str, text: str) -> str:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(text)
    return path


def _make_ca(directory: str, name: str) -> tuple[str, str]:
    cert, key = f"{name}.crt", f"{name}.key"
    subject = f"/CN=corenet test {name}"
    _run(
        [
            *("req", "-x509", *_KEY, *_CA_EXT, "-keyout", key, "-out", cert),
            *("-days", "3650", "-subj", subject),
        ],
        directory,
    )
    return os.path.join(directory, cert), os.path.join(directory, key)


def _make_leaf(directory: str, name: str, ca: str, ca_key: str, subject: str, ext: str) -> None:
    ext_file = _write(os.path.join(directory, f"{name}.ext"), ext)
    _run(
        ["req", "-new", *_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject],
        directory,
    )
    _run(
        [
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "825",
            "-sha256",
            "-extfile",
            ext_file,
        ],
        directory,
    )


def _make_expired(directory: str, ca: str, ca_key: str) -> None:
    ca_dir = os.path.join(directory, "ca-db")
    os.makedirs(ca_dir, exist_ok=True)
    _write(os.path.join(ca_dir, "index.txt"), "")
    _write(os.path.join(ca_dir, "serial"), "1000\n")
    conf = _write(os.path.join(ca_dir, "ca.cnf"), _CA_CONF.format(dir=ca_dir))
    _run(
        [
            "req",
            "-new",
            *_KEY,
            "-keyout",
            "expired.key",
            "-out",
            "expired.csr",
            "-subj",
            "/CN=localhost",
        ],
        directory,
    )
    _run(
        [
            "ca",
            "-batch",
            "-config",
            conf,
            "-cert",
            ca,
            "-keyfile",
            ca_key,
            "-in",
            "expired.csr",
            "-out",
            "expired.crt",
            "-notext",
            "-extensions",
            "server_ext",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
        ],
        directory,
    )


def make_test_pki(directory: str) -> TLSFiles:
    """Write a test CA and its certificates into ``directory`` (made if missing).

    Raises:
        FileNotFoundError: openssl is not installed.
        RuntimeError: an openssl command failed (its error output is in the message).
    """
    os.makedirs(directory, exist_ok=True)
    ca, ca_key = _make_ca(directory, "ca")
    _make_leaf(directory, "server", ca, ca_key, "/CN=localhost", _SERVER_EXT)
    _make_leaf(directory, "client", ca, ca_key, "/CN=corenet test client", _CLIENT_EXT)
    _make_expired(directory, ca, ca_key)
    other_ca, other_key = _make_ca(directory, "other-ca")
    _make_leaf(directory, "other-server", other_ca, other_key, "/CN=localhost", _SERVER_EXT)

    def path(name: str) -> str:
        return os.path.join(directory, name)

    return TLSFiles(
        directory=directory,
        ca=ca,
        ca_key=ca_key,
        server_cert=path("server.crt"),
        server_key=path("server.key"),
        client_cert=path("client.crt"),
        client_key=path("client.key"),
        expired_cert=path("expired.crt"),
        expired_key=path("expired.key"),
        other_ca=other_ca,
        other_server_cert=path("other-server.crt"),
        other_server_key=path("other-server.key"),
    )
