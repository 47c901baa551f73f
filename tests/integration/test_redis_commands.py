"""``redis_commands``: commands the built-in table lacks, routed by the pool's
entries, against real redis-servers.  The servers rename ``GET`` to
``FETCH`` and ``LCS`` to ``LCSX``, which is what a newer server's command
looks like to the proxy: one it has never heard of."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import redis as redis_py
import yaml

from tests.servers import pool_config, spread_keys

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.servers import CorenetProxy, RedisServer

RENAMED = ["--rename-command", "GET", "FETCH", "--rename-command", "LCS", "LCSX"]
ENTRIES = {"fetch": "keyed", "lcsx": {"first_key": 1, "last_key": 2}, "keys": "refused"}


def test_a_command_unknown_to_the_table_routes_by_its_entry(
    redis_servers: Callable[..., list[RedisServer]],
    corenet_proxy_factory: Callable[..., CorenetProxy],
) -> None:
    servers = redis_servers(3, extra_args=RENAMED)
    addresses = [s.address for s in servers]
    plain = corenet_proxy_factory(pool_config("plain", None, addresses))
    proxy = corenet_proxy_factory(
        pool_config("alpha", None, addresses, hash_tag="{}", redis_commands=ENTRIES)
    )
    keys = spread_keys(200)
    with (
        plain.client() as client,
        pytest.raises(redis_py.ResponseError, match="unknown command 'FETCH'"),
    ):
        client.execute_command("FETCH", keys[0])
    with proxy.client() as client:
        client.mset({key: f"v{key}" for key in keys})
        # Each key from its own server (elsewhere it would be nil).
        assert [client.execute_command("FETCH", key) for key in keys] == [
            f"v{key}".encode() for key in keys
        ]
        client.mset({"{t}a": "ohmytext", "{t}b": "mynewtext"})
        with servers[0].client() as direct:
            direct.mset({"a": "ohmytext", "b": "mynewtext"})
            assert client.execute_command("LCSX", "{t}a", "{t}b") == direct.execute_command(
                "LCSX", "a", "b"
            )
        with servers[0].client() as direct:
            here = [key for key in keys if direct.exists(key)]
        elsewhere = next(key for key in keys if key not in here)
        with pytest.raises(redis_py.ResponseError, match="don't hash to the same slot"):
            client.execute_command("LCSX", here[0], elsewhere, "LEN")  # -CROSSSLOT
        # A known command overridden; the others as before.
        with pytest.raises(redis_py.ResponseError, match="'keys' is not supported by the proxy"):
            client.keys("*")
        assert client.dbsize() == len(keys) + 4  # and a, b written directly


def test_check_mode_accepts_good_entries_and_names_a_bad_one(tmp_path: Path) -> None:
    def check(entries: object) -> subprocess.CompletedProcess[str]:
        config = pool_config("alpha", 22190, ["127.0.0.1:6390"], redis_commands=entries)
        path = tmp_path / "corenet.yml"
        path.write_text(yaml.safe_dump(config))
        return subprocess.run(
            [sys.executable, "-m", "corenet", "-t", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"CORENET_DISABLE_PLUGIN_AUTOLOAD": "1", "PATH": "/usr/bin:/bin"},
        )

    good = check(ENTRIES)
    assert good.returncode == 0 and "syntax is ok" in good.stderr + good.stdout
    bad = check({**ENTRIES, "json.get": {"first_key": 1, "step": 0}})
    assert bad.returncode != 0
    assert (
        "pool 'alpha', key 'redis_commands': redis_commands: command json.get: "
        "first_key and step must be at least 1"
    ) in bad.stderr
