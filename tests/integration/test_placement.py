"""Every key lands where Debian's nutcracker puts it: every hash, ketama and
modula, plain / weighted+named / hash_tag pools of 4 and 25 servers.

All the combinations are pools of one config file, served by one nutcracker
and then by one corenet-proxy over the same 25 redis-servers; each pool
writes its own prefixed keys, and where each key landed is read back from
the backends directly.
"""

from __future__ import annotations

import itertools
import random

import pytest

HASHES = (
    "one_at_a_time md5 crc16 crc32 crc32a fnv1_64 fnv1a_64 fnv1_32 fnv1a_32 hsieh murmur jenkins"
).split()
DISTRIBUTIONS = ("ketama", "modula")
VARIANTS = ("plain", "weighted_named", "hash_tag")
SIZES = (4, 25)
KEYS_PER_POOL = 1200


def pool_servers(backends, size: int, variant: str) -> list[str]:
    chosen = backends[:size]
    if variant == "weighted_named":
        rng = random.Random(size)
        return [
            f"{b.address}:{rng.randint(1, 5)} srv-{i:02d}-{rng.randint(0, 9999)}"
            for i, b in enumerate(chosen)
        ]
    return [f"{b.address}:1" for b in chosen]


def pool_keys(index: int, variant: str) -> list[bytes]:
    rng = random.Random(index)
    prefix = b"p%d:" % index
    keys = []
    for i in range(KEYS_PER_POOL):
        kind = i % 6
        if kind == 0:
            body = b"%x" % rng.getrandbits(48)
        elif kind == 1:
            body = bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randint(1, 12)))
        elif kind == 2:
            body = bytes(rng.randrange(1, 0x100) for _ in range(rng.randint(200, 400)))
        elif kind == 3:
            body = b"user:{%d}:name" % rng.randrange(500)
        elif kind == 4:
            body = b"{}" + b"%d" % i + b"{x}"
        else:
            body = b"{%d" % i
        keys.append(prefix + body + b":%d" % i)
    return keys


@pytest.mark.slow
def test_placement_matches_nutcracker_in_every_combination(
    redis_servers, nutcracker_factory, corenet_proxy_factory
):
    backends = redis_servers(max(SIZES))
    combos = list(itertools.product(HASHES, DISTRIBUTIONS, VARIANTS, SIZES))
    config = {}
    for index, (hash_name, dist, variant, size) in enumerate(combos):
        pool = {
            "listen": f"127.0.0.1:{0}",  # replaced below
            "redis": True,
            "hash": hash_name,
            "distribution": dist,
            "servers": pool_servers(backends, size, variant),
        }
        if variant == "hash_tag":
            pool["hash_tag"] = "{}"
        config[f"p{index}"] = pool
    from tests.servers import free_port

    for pool in config.values():
        pool["listen"] = f"127.0.0.1:{free_port()}"
    addresses = {b.address: i for i, b in enumerate(backends)}
    keys = {name: pool_keys(int(name[1:]), config[name].get("hash_tag", "")) for name in config}

    def placement(factory) -> dict[bytes, int]:
        proxy = factory(config)
        try:
            for name, pool_keys_ in keys.items():
                pipe = proxy.client(name).pipeline(transaction=False)
                for key in pool_keys_:
                    pipe.set(key, b"1")
                assert all(pipe.execute()), name
            where: dict[bytes, int] = {}
            for backend in backends:
                for key in backend.client().scan_iter(count=5000):
                    assert key not in where, f"{key!r} is on two servers"
                    where[key] = addresses[backend.address]
            empty = {}
            for name in config:
                client = proxy.client(name)
                client.set(b"", name)
                holders = [
                    i for i, b in enumerate(backends) if b.client().get(b"") == name.encode()
                ]
                assert len(holders) == 1
                empty[name] = holders[0]
                client.delete(b"")
            where.update({b"<empty>" + n.encode(): i for n, i in empty.items()})
            return where
        finally:
            proxy.stop()
            for backend in backends:
                backend.client().flushall()

    expected = placement(nutcracker_factory)
    actual = placement(corenet_proxy_factory)
    assert len(expected) == len(combos) * (KEYS_PER_POOL + 1)
    wrong = {}
    for index, combo in enumerate(combos):
        prefix = b"p%d:" % index
        misplaced = [k for k in keys[f"p{index}"] if expected[k] != actual.get(k)]
        if expected[b"<empty>p%d" % index] != actual[b"<empty>p%d" % index]:
            misplaced.append(b"")
        if misplaced:
            wrong[combo] = (len(misplaced), misplaced[:3])
        assert all(k.startswith(prefix) for k in keys[f"p{index}"])
    assert wrong == {}
