"""The process harness's recipes: redis-server, memcached, nutcracker, corenet-proxy.

Built on :mod:`corenet.testing.process` (free loopback ports, stop by PID,
restart on a taken port, log files): ``RedisServer`` and ``Memcached`` (with
``ServerPool`` and the raw wire helpers, from ``_harness_backends``), and here
the proxies reading a nutcracker.yml, ``Nutcracker`` and ``CorenetProxy``,
with ``pool_config``/``dump_config``/``listen_addresses`` to write and read
such configurations.  Used by corenet's tests, its benchmark and
``corenet-proxy --demo``; pytest fixtures over it are in
``corenet.proxy.fixtures``.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from corenet.proxy._harness_backends import (
    Memcached,
    RedisSentinel,
    RedisServer,
    ServerPool,
    count_resp_replies,
    encode_command,
    memcache_client,
    memcache_raw,
    redis_client,
    redis_raw,
    resp_reply_end,
)
from corenet.proxy._harness_cluster import RedisCluster
from corenet.testing import process
from corenet.testing.process import (
    LOOPBACK,
    Process,
    accepts,
    find_binary,
    owns_port,
    parse_address,
    port_is_free,
    port_taken,
    raw_exchange,
)

if TYPE_CHECKING:
    import pymemcache  # type: ignore[import-untyped]  # no stubs; a test dependency
    import redis

__all__ = [
    "CorenetProxy",
    "Memcached",
    "Nutcracker",
    "RedisCluster",
    "RedisSentinel",
    "RedisServer",
    "ServerPool",
    "count_resp_replies",
    "dump_config",
    "encode_command",
    "listen_addresses",
    "memcache_client",
    "memcache_raw",
    "pool_config",
    "redis_client",
    "redis_raw",
    "resp_reply_end",
]


# --------------------------------------------------------------------------
# configurations


def pool_config(
    name: str,
    listen_port: int | str | None,
    servers: Sequence[str],
    **keys: Any,
) -> dict[str, dict[str, Any]]:
    """One nutcracker.yml pool: ``{name: {"listen": ..., "servers": [...], ...}}``.

    ``listen_port``: a port on 127.0.0.1, a ``/unix/path`` (with optional
    permissions), or None for a free port.  ``servers``: ``"host:port"``
    (weight 1 is appended), or full ``"host:port:weight [name]"`` /
    ``"/path:weight [name]"`` entries kept as they are.  Defaults: redis
    true, hash fnv1a_64, distribution ketama; ``keys`` add or override
    (``redis=False`` for a memcache pool; a key given as None is left out).
    """
    if listen_port is None:
        listen = f"{LOOPBACK}:{process.free_port()}"
    elif isinstance(listen_port, int):
        listen = f"{LOOPBACK}:{listen_port}"
    else:
        listen = listen_port
    entries = []
    for server in servers:
        server = server.strip()
        addr = server.split()[0]
        is_unix = addr.startswith("/")
        has_weight = addr.count(":") >= (1 if is_unix else 2)
        entries.append(server if has_weight or " " in server else f"{server}:1")
    pool: dict[str, Any] = {
        "listen": listen,
        "redis": True,
        "hash": "fnv1a_64",
        "distribution": "ketama",
    }
    pool.update(keys)
    pool["servers"] = entries
    return {name: {key: value for key, value in pool.items() if value is not None}}


def dump_config(cfg: Mapping[str, Any]) -> str:
    """YAML text of a nutcracker.yml-shaped dict (block style, key order kept)."""
    return yaml.safe_dump(dict(cfg), default_flow_style=False, sort_keys=False)


def listen_addresses(config: Mapping[str, Any] | str) -> dict[str, str]:
    """``{pool: listen}`` of a config (dict or YAML text); {} if it cannot be read."""
    if isinstance(config, str):
        try:
            config = yaml.safe_load(config)
        except yaml.YAMLError:
            return {}
    if not isinstance(config, Mapping):
        return {}
    result = {}
    for pool, body in config.items():
        if isinstance(body, Mapping) and isinstance(body.get("listen"), str):
            result[str(pool)] = body["listen"]
    return result


# --------------------------------------------------------------------------
# proxies


class _Proxy(Process):
    """A proxy reading a nutcracker.yml; ready when every pool's listen address accepts."""

    config_name = "proxy.yml"

    def __init__(
        self, config: Mapping[str, Any] | str, extra_args: Iterable[str] = (), **kwargs: Any
    ) -> None:
        self.config: dict[str, Any] | str = (
            copy.deepcopy(dict(config)) if isinstance(config, Mapping) else config
        )
        self.extra_args = list(extra_args)
        self.stats_port = 0
        super().__init__(**kwargs)

    @property
    def config_path(self) -> str:
        return os.path.join(self.tmpdir, self.config_name)

    @property
    def config_text(self) -> str:
        return self.config if isinstance(self.config, str) else dump_config(self.config)

    @property
    def pools(self) -> list[str]:
        return list(listen_addresses(self.config))

    @property
    def listen(self) -> dict[str, str]:
        """``{pool: listen address}`` as started (ports may differ from the input, see start)."""
        return listen_addresses(self.config)

    def address(self, pool: str | None = None) -> str:
        """Listen address of ``pool`` (default: the only pool), without unix permissions."""
        listen = self.listen
        if pool is None:
            if len(listen) != 1:
                raise ValueError(f"config has pools {sorted(listen)}: name one")
            (pool,) = listen
        return listen[pool].split()[0]

    @property
    def stats_address(self) -> str:
        return f"{LOOPBACK}:{self.stats_port}"

    def describe(self) -> str:
        pools = ", ".join(f"{k}={v}" for k, v in self.listen.items())
        return f"{self.kind} [{pools}] stats={self.stats_port} pid={self.pid}"

    def _owned_ports(self) -> list[int]:
        ports = []
        for addr in self.listen.values():
            try:
                target = parse_address(addr)
            except ValueError:
                continue
            if isinstance(target, tuple):
                ports.append(target[1])
        return ports

    def _prepare(self, attempt: int) -> list[str]:
        # Through the module, so that a test replacing process.free_port
        # (to hand out a taken port) reaches this call too.
        self.stats_port = process.free_port()
        if attempt > 0 and isinstance(self.config, dict):
            # A port taken by someone else: move that pool to a fresh port.
            for body in self.config.values():
                if not isinstance(body, dict) or not isinstance(body.get("listen"), str):
                    continue
                try:
                    target = parse_address(body["listen"])
                except ValueError:
                    continue
                if (
                    isinstance(target, tuple)
                    and target[0] == LOOPBACK
                    and not port_is_free(target[1])
                ):
                    body["listen"] = f"{LOOPBACK}:{process.free_port()}"
        with open(self.config_path, "w", encoding="utf-8") as fh:
            fh.write(self.config_text)
        return self._command()

    def _command(self) -> list[str]:
        """Both proxies take nutcracker's options; ``_program`` and ``_options`` differ."""
        return [
            *self._program(),
            "-c",
            self.config_path,
            "-s",
            str(self.stats_port),
            "-a",
            LOOPBACK,
            *self._options(),
            *self.extra_args,
        ]

    def _program(self) -> list[str]:
        raise NotImplementedError

    def _options(self) -> list[str]:
        return []

    def _retryable(self, log: str) -> bool:
        return port_taken(log)

    def _probe(self) -> bool:
        """Every pool's listen address (else the stats port) accepts, and is this process's."""
        targets = [addr.split()[0] for addr in self.listen.values()] or [self.stats_address]
        for addr in targets:
            try:
                target = parse_address(addr)
            except ValueError:
                return False  # a bad listen value: the process is expected to exit
            if isinstance(target, tuple) and not owns_port(self.pid, target[1]):
                return False
            if not accepts(addr):
                return False
        return True

    def client(self, pool: str | None = None, **kwargs: Any) -> redis.Redis:
        """A redis-py client (see ``redis_client``) for a redis pool."""
        return redis_client(self.address(pool), **kwargs)

    def memcache_client(self, pool: str | None = None, **kwargs: Any) -> pymemcache.Client:
        """A pymemcache client for a memcache pool."""
        return memcache_client(self.address(pool), **kwargs)

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The stats JSON: connect to the stats port, read to EOF, parse."""
        data = raw_exchange(self.stats_address, b"", timeout=timeout)
        result: dict[str, Any] = json.loads(data)
        return result


class Nutcracker(_Proxy):
    """Debian's ``nutcracker`` (twemproxy 0.5.0) with its log in the process log.

    Pass a dict config to let a taken listen port be replaced by a free one
    (read the final ports from ``address(pool)``); a taken stats port is always
    replaced.
    """

    kind = "nutcracker"
    config_name = "nutcracker.yml"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        extra_args: Iterable[str] = (),
        *,
        verbosity: int = 4,
        **kwargs: Any,
    ) -> None:
        self.binary = find_binary("nutcracker") or "nutcracker"
        self.verbosity = verbosity
        super().__init__(config, extra_args, **kwargs)

    def _program(self) -> list[str]:
        return [self.binary]

    def _options(self) -> list[str]:
        # -o appends (O_APPEND) to the same file our stdout/stderr go to.
        return ["-v", str(self.verbosity), "-o", self.log_path]


class CorenetProxy(_Proxy):
    """``python -m corenet -c FILE -s STATSPORT -a 127.0.0.1 -i 0 *extra_args``.

    Runs with ``CORENET_DISABLE_PLUGIN_AUTOLOAD=1`` added to a copy of the
    environment (``env=`` replaces the copied environment; the variable is
    still added), so that whatever else is installed cannot change what a
    test sees.  ``autoload_plugins=True`` removes the variable instead: a
    plugin's own tests run the proxy with the plugin found through its entry
    point.  ``command`` replaces ``[sys.executable, "-m", "corenet"]``.
    """

    kind = "corenet-proxy"
    config_name = "corenet.yml"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        extra_args: Iterable[str] = (),
        *,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        autoload_plugins: bool = False,
        **kwargs: Any,
    ) -> None:
        self.command = list(command) if command is not None else [sys.executable, "-m", "corenet"]
        full_env = dict(os.environ if env is None else env)
        if autoload_plugins:
            full_env.pop("CORENET_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            full_env["CORENET_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        super().__init__(config, extra_args, env=full_env, **kwargs)

    def _program(self) -> list[str]:
        return self.command

    def _options(self) -> list[str]:
        # A fresh stats snapshot per read, so that a test sees what it just
        # did (the default serves one for 30 s, as nutcracker); extra_args
        # come after, so ``-i`` there wins.
        return ["-i", "0"]
