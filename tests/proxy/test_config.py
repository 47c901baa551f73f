"""nutcracker.yml loading: defaults, server syntax, and errors that say where."""

from __future__ import annotations

import pytest

from corenet.errors import ConfigError
from corenet.proxy.config import ListenAddress, parse_config
from corenet.proxy.plugins import load_plugins
from corenet.proxy.validate import check_pools

GOOD = """\
alpha:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  hash_tag: "{}"
  distribution: ketama
  auto_eject_hosts: true
  redis: true
  redis_db: 3
  server_retry_timeout: 2000
  server_failure_limit: 1
  timeout: 400
  servers:
   - 127.0.0.1:6379:1 server1
   - 127.0.0.1:6380:2
   - 10.0.0.1:11211:1
beta:
  listen: /tmp/beta.sock 0666
  servers:
   - /tmp/memcached.sock:1 mc
"""


def test_good_file_with_nutcracker_defaults():
    pools = parse_config(GOOD)
    alpha, beta = pools["alpha"], pools["beta"]
    assert alpha.listen == ListenAddress(host="127.0.0.1", port=22121)
    assert alpha.hash_tag == b"{}"
    assert alpha.timeout == 400 and alpha.redis_db == 3 and alpha.redis
    assert [s.name for s in alpha.servers] == ["server1", "127.0.0.1:6380", "10.0.0.1"]
    assert [s.weight for s in alpha.servers] == [1, 2, 1]
    assert beta.listen.path == "/tmp/beta.sock" and beta.listen.perm == 0o666
    assert beta.servers[0].address.path == "/tmp/memcached.sock"
    # nutcracker's defaults
    assert (beta.hash, beta.distribution, beta.redis, beta.backlog) == (
        "fnv1a_64",
        "ketama",
        False,
        512,
    )
    assert (beta.server_connections, beta.server_retry_timeout, beta.server_failure_limit) == (
        1,
        30000,
        2,
    )
    assert beta.timeout is None and beta.client_connections == 0 and beta.protocol == "memcache"


def test_password_is_not_in_repr():
    pools = parse_config(
        "a:\n  listen: 127.0.0.1:1\n  redis_auth: hunter2\n  servers:\n   - 127.0.0.1:2:1\n"
    )
    assert "hunter2" not in repr(pools["a"])
    assert pools["a"].redis_auth == "hunter2"


def test_unknown_keys_are_refused_when_the_pools_are_checked():
    # Kept by the parser for the pool's protocol (pool_keys), refused by the check.
    pools = parse_config(
        "a:\n  listen: 127.0.0.1:1\n  hashx: md5\n  servers: [127.0.0.1:2:1]\n", source="x.yml"
    )
    with pytest.raises(ConfigError) as info:
        check_pools(pools, load_plugins(autoload=False))
    assert str(info.value) == "x.yml:3: pool 'a', key 'hashx': directive \"hashx\" is unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a:\n  listen: 127.0.0.1:1\n  hash: md5\n  hash: md5\n  servers: [127.0.0.1:2:1]\n",
            'directive "hash" is a duplicate',
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:0\n",
            'server "127.0.0.1:2:0" has a zero weight',
        ),
        ("a:\n  listen: 127.0.0.1:1\n", 'directive "servers" is missing'),
        ("a:\n  listen: nope\n  servers: [127.0.0.1:2:1]\n", "key 'listen'"),
        (
            "a:\n  listen: 127.0.0.1:1\n  timeout: soon\n  servers: [127.0.0.1:2:1]\n",
            "key 'timeout': expected an integer",
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  redis: yes please\n  servers: [127.0.0.1:2:1]\n",
            "key 'redis': expected true or false",
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  hash_tag: '{'\n  servers: [127.0.0.1:2:1]\n",
            "key 'hash_tag': expected exactly two characters",
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  servers:\n   - 127.0.0.1:2:1 x\n   - 127.0.0.1:3:1 x\n",
            'server name "x" is a duplicate',
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  servers: [127.0.0.1:2]\n",
            'expected "host:port:weight [name]"',
        ),
        (
            "a:\n  listen: 127.0.0.1:1\n  servers: [127.0.0.1:2:1]\n"
            "b:\n  listen: 127.0.0.1:1\n  servers: [127.0.0.1:2:1]\n",
            'is already the listen address of pool "a"',
        ),
        ("a: [1, 2]\n", "pool 'a': expected a mapping"),
        ("- a\n", "expected a mapping of pool names"),
        ("a:\n  listen: [\n", "invalid YAML"),
        ("", "has no pools"),
    ],
)
def test_errors_name_file_line_pool_and_key(text, expected):
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="x.yml")
    message = str(info.value)
    assert message.startswith("x.yml")
    assert expected in message


@pytest.mark.parametrize("value", ["[hunter2]", "{pw: hunter2}"])
def test_a_malformed_redis_auth_is_refused_without_showing_it(value: str) -> None:
    text = (
        "alpha:\n  listen: 127.0.0.1:22121\n"
        f"  redis_auth: {value}\n  servers:\n   - 127.0.0.1:6379:1\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert "redis_auth" in str(info.value) and "value not shown" in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_bad_redis_commands_entry_names_pool_key_and_line() -> None:
    text = (
        "a:\n  listen: 127.0.0.1:1\n  redis: true\n  servers: [127.0.0.1:2:1]\n"
        "  redis_commands:\n    fetch: keyed\n    lcsx: sideways\n"
    )
    with pytest.raises(ConfigError) as info:
        check_pools(parse_config(text, source="x.yml"), load_plugins(autoload=False))
    assert str(info.value).startswith("x.yml:5: pool 'a', key 'redis_commands': ")
    assert "command lcsx: route 'sideways'" in str(info.value)
    good = parse_config(text.replace("sideways", "colocated"), source="x.yml")
    check_pools(good, load_plugins(autoload=False))  # accepted
