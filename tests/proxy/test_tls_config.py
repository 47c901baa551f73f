"""TLS pool keys: parsing, the ``-t`` checks (files exist, load, match), errors
that name file, line, pool and key, and never a key's contents."""

from __future__ import annotations

import pathlib
import shutil
import ssl
from typing import TYPE_CHECKING

import pytest

from corenet.errors import ConfigError
from corenet.proxy.config import parse_config
from corenet.proxy.plugins import load_plugins
from corenet.proxy.tls import NO_TLS, build_contexts, check_protocol
from corenet.proxy.validate import check_pools
from tests.servers import run_corenet

if TYPE_CHECKING:
    from pathlib import Path

    from corenet.testing.tls import TLSFiles

HEAD = "alpha:\n  listen: 127.0.0.1:22121\n  redis: true\n  servers:\n    - 127.0.0.1:6379:1\n"


def pool(text: str, *, source: str = "t.yml") -> object:
    return parse_config(HEAD + text, source=source)["alpha"]


def test_a_pool_without_tls_keys_builds_no_context() -> None:
    config = parse_config(HEAD)["alpha"]
    assert build_contexts(config) is NO_TLS


def test_both_sides_build_verifying_contexts(pki: TLSFiles) -> None:
    config = parse_config(
        HEAD
        + f"  tls_cert: {pki.server_cert}\n  tls_key: {pki.server_key}\n  tls_ca: {pki.ca}\n"
        + f"  server_tls: true\n  server_tls_ca: {pki.ca}\n  timeout: 400\n"
    )["alpha"]
    tls = build_contexts(config)
    assert tls.accept is not None and tls.accept.verify_mode == ssl.CERT_REQUIRED
    assert tls.connect is not None and tls.connect.check_hostname
    assert tls.handshake_timeout == 0.4  # timeout, when no tls_handshake_timeout
    (server,) = config.servers
    assert tls.hostname(server) == "127.0.0.1"


def test_relative_paths_are_read_from_the_config_files_directory(
    pki: TLSFiles, tmp_path: Path
) -> None:
    for name in ("server.crt", "server.key"):
        shutil.copy(f"{pki.directory}/{name}", tmp_path / name)
    conf = tmp_path / "nutcracker.yml"
    conf.write_text(HEAD + "  tls_cert: server.crt\n  tls_key: server.key\n")
    config = parse_config(conf.read_text(), source=str(conf))["alpha"]
    assert config.tls_cert == str(tmp_path / "server.crt")
    assert build_contexts(config).accept is not None


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("  tls_key: /k.pem\n", 6, "tls_key", 'needs "tls_cert"'),
        ("  tls_ca: /ca.pem\n", 6, "tls_ca", 'needs "tls_cert"'),
        ("  server_tls_ca: /ca.pem\n", 6, "server_tls_ca", 'needs "server_tls: true"'),
        (
            "  server_tls: true\n  server_tls_key: /k.pem\n",
            7,
            "server_tls_key",
            'needs "server_tls_cert"',
        ),
        ("  tls_handshake_timeout: 100\n", 6, "tls_handshake_timeout", "needs"),
        (
            "  tls_cert: /c.pem\n  tls_protocols: TLSv1.1\n",
            7,
            "tls_protocols",
            "unknown TLS version 'TLSv1.1'",
        ),
        ("  tls_cert: 7\n", 6, "tls_cert", "expected a file path"),
    ],
)
def test_tls_keys_that_cannot_take_effect_are_refused(
    text: str, line: int, key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        pool(text)
    message = str(info.value)
    assert message.startswith(f"t.yml:{line}: pool 'alpha', key '{key}': ")
    assert words in message


def test_a_unix_server_needs_a_name_to_verify() -> None:
    text = "alpha:\n  listen: 127.0.0.1:22121\n  servers:\n    - /tmp/r.sock:1\n"
    with pytest.raises(ConfigError, match="server_tls_sni"):
        parse_config(text + "  server_tls: true\n")
    parse_config(text + "  server_tls: true\n  server_tls_sni: cache.example\n")
    parse_config(text + "  server_tls: true\n  server_tls_verify: false\n")


@pytest.mark.parametrize(
    ("keys", "key", "words"),
    [
        ({"tls_cert": "/nonexistent.crt"}, "tls_cert", "no such file"),
        ({"tls_key": "client_key"}, "tls_key", "does not match the certificate"),
        ({"tls_cert": "server_key", "tls_key": None}, "tls_cert", "no PEM certificate"),
        ({"tls_ca": "server_key"}, "tls_ca", "cannot load CA"),
        ({"tls_ciphers": "NOPE"}, "tls_ciphers", "no cipher matches"),
        ({"server_tls_ca": "/nowhere.crt"}, "server_tls_ca", "no such file"),
        ({"server_tls_cert": "client_cert"}, "server_tls_cert", "cannot load the private key"),
    ],
)
def test_check_pools_loads_the_files_and_names_the_key(
    pki: TLSFiles, keys: dict[str, str | None], key: str, words: str
) -> None:
    values: dict[str, str | None] = {
        "tls_cert": pki.server_cert,
        "tls_key": pki.server_key,
        "server_tls": "true",
    }
    for name, value in keys.items():
        values[name] = getattr(pki, value) if value and hasattr(pki, value) else value
    text = "".join(f"  {k}: {v}\n" for k, v in values.items() if v is not None)
    pools = parse_config(HEAD + text, source="t.yml")
    line = 6 + [k for k, v in values.items() if v is not None].index(key)
    with pytest.raises(ConfigError) as info:
        check_pools(pools, load_plugins(autoload=False))
    message = str(info.value)
    assert message.startswith(f"t.yml:{line}: pool 'alpha', key '{key}': "), message
    assert words in message
    assert "BEGIN" not in message


def test_dash_t_reports_a_mismatched_key_without_its_contents(
    pki: TLSFiles, tmp_path: Path
) -> None:
    conf = tmp_path / "tls.yml"
    conf.write_text(HEAD + f"  tls_cert: {pki.server_cert}\n  tls_key: {pki.client_key}\n")
    result = run_corenet("-t", "-c", conf)
    assert result.returncode == 1
    assert f"{conf}:7: pool 'alpha', key 'tls_key'" in result.stderr
    assert "does not match the certificate" in result.stderr
    key_text = pathlib.Path(pki.client_key).read_text().splitlines()[1]
    assert key_text not in result.stderr + result.stdout
    conf.write_text(HEAD + f"  tls_cert: {pki.server_cert}\n  tls_key: {pki.server_key}\n")
    good = run_corenet("-t", "-c", conf)
    assert good.returncode == 0, good.stderr


def test_a_protocol_that_cannot_do_tls_refuses_tls_keys(pki: TLSFiles) -> None:
    class PlainOnly:
        supports_tls = False

    config = parse_config(HEAD + f"  tls_cert: {pki.server_cert}\n", source="t.yml")["alpha"]
    with pytest.raises(ConfigError, match=r"t.yml:6: pool 'alpha', key 'tls_cert': .*TLS"):
        check_protocol(config, PlainOnly())
    check_protocol(config, object())  # no declaration: TLS is fine
