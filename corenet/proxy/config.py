"""nutcracker.yml, loaded into validated attrs records.

The file format is nutcracker's: a mapping of pool names to pool settings,
with the same keys, defaults and server syntax (``host:port:weight [name]``
or ``/path.sock:weight [name]``).  Every error names the file, the line, the
pool and the key, and says what was expected, in nutcracker's wording where
it has one (``directive "X" is unknown``, ``is a duplicate``, ``is not a
valid hash``, ``has a zero weight``).

Names of hash functions and distributions are checked against the plugin
registries when the pool is built, not here, so plugins can add their own.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from corenet.errors import ConfigError
from corenet.net import ListenAddress
from corenet.protocol import PoolOptions
from corenet.proxy._config_rules import check_cluster_keys, check_tls_keys
from corenet.proxy.naming import server_name
from corenet.tls import TLS_VERSIONS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "ListenAddress",
    "pool_options",
    "PoolConfig",
    "ServerConfig",
    "key_error",
    "load_config",
    "parse_config",
    "read_config_text",
]


READ_FROM = ("master", "replica", "prefer-replica")
"""The values of ``read_from``."""


@attrs.frozen
class ServerConfig:
    """One backend as written in ``servers``."""

    address: ListenAddress
    weight: int
    name: str
    """The name nutcracker hashes and reports (see :mod:`corenet.proxy.naming`)."""
    spec: str
    line: int = 0


@attrs.frozen
class PoolConfig:
    """One pool, with nutcracker's defaults."""

    name: str
    listen: ListenAddress
    servers: tuple[ServerConfig, ...]
    hash: str = "fnv1a_64"
    hash_tag: bytes | None = None
    distribution: str = "ketama"
    timeout: int | None = None
    backlog: int = 512
    client_connections: int = 0
    redis: bool = False
    redis_auth: str | None = attrs.field(default=None, repr=False)
    redis_db: int = 0
    tcpkeepalive: bool = False
    preconnect: bool = False
    auto_eject_hosts: bool = False
    server_connections: int = 1
    server_retry_timeout: int = 30000
    server_failure_limit: int = 2
    # corenet only (nutcracker does not know these keys):
    deny_commands: tuple[str, ...] = ()
    """Commands answered ``-ERR command 'X' is not allowed``."""
    client_max_pending: int = 1024
    max_pinned_connections: int = 256
    """Requests a client may have in flight before the proxy stops reading it."""
    client_output_buffer: int = 1024 * 1024
    """Unsent reply bytes for a client above which the proxy stops reading it."""
    client_output_limit: int = 64 * 1024 * 1024
    """Unsent reply bytes above which a client that does not read is dropped."""
    client_idle_timeout: int | None = None
    """ms without requests after which an idle client is closed (off by default)."""
    client_request_timeout: int | None = None
    """ms a client may take to send one complete request (off by default)."""
    sentinels: tuple[ListenAddress, ...] = ()
    """Redis Sentinels whose failovers the pool follows (docs/high-availability.md)."""
    sentinel_auth: str | None = attrs.field(default=None, repr=False)
    """The sentinels' password (``requirepass`` of the sentinels)."""
    sentinel_masters: Mapping[str, str] = attrs.field(factory=dict, hash=False)
    """Server name -> the master name Sentinel knows it by (default: the server name)."""
    read_from: str = "master"
    """``master``, ``replica`` or ``prefer-replica``: where read-only commands go
    (Sentinel or Redis Cluster replicas)."""
    redis_cluster: bool = False
    """The servers are seed nodes of one Redis Cluster, whose slots route keys
    (docs/cluster.md)."""
    health_check_interval: int | None = None
    """ms between active checks of each server (off by default, as in nutcracker)."""
    health_check_timeout: int = 1000
    """ms a check may take before it counts as a failure."""
    tls_cert: str | None = None
    """PEM certificate (chain) clients are shown: the listener accepts TLS only."""
    tls_key: str | None = None
    """PEM private key of ``tls_cert`` (default: read from ``tls_cert``)."""
    tls_ca: str | None = None
    """PEM CA certificates: clients must present a certificate they signed."""
    tls_protocols: tuple[str, ...] = ()
    """TLS versions clients may use (default: TLSv1.2 and TLSv1.3)."""
    tls_ciphers: str | None = None
    """OpenSSL cipher list for TLS 1.2 clients (default: OpenSSL's)."""
    tls_handshake_timeout: int | None = None
    """ms a TLS handshake may take, either side (default: ``timeout``, else 10 s)."""
    server_tls: bool = False
    """Connect to the servers over TLS."""
    server_tls_ca: str | None = None
    """PEM CA certificates the servers' certificates are verified with (default: the system's)."""
    server_tls_cert: str | None = None
    """PEM client certificate for servers that require one."""
    server_tls_key: str | None = None
    """PEM private key of ``server_tls_cert`` (default: read from ``server_tls_cert``)."""
    server_tls_sni: str | None = None
    """Host name sent (SNI) and verified (default: each server's host)."""
    server_tls_verify: bool = True
    """Verify the servers' certificates and host names (off: testing only)."""
    server_tls_protocols: tuple[str, ...] = ()
    """TLS versions used with the servers (default: TLSv1.2 and TLSv1.3)."""
    server_tls_ciphers: str | None = None
    """OpenSSL cipher list for TLS 1.2 servers (default: OpenSSL's)."""
    protocol_name: str | None = attrs.field(default=None, alias="protocol")
    """The ``protocol:`` key: a registered protocol by name (wins over ``redis``)."""
    extra: Mapping[str, tuple[Any, int]] = attrs.field(factory=dict, repr=False, hash=False)
    """Keys this file gives that corenet does not know, ``key -> (value, line)``:
    kept only for a pool with a ``protocol:`` plugin, which may declare them
    (``pool_keys``); checked when the pool is built."""
    line: int = 0
    key_lines: Mapping[str, int] = attrs.field(factory=dict, repr=False, eq=False)
    """Line of each key the file gave, for error messages."""
    source: str = "<string>"
    """The file this pool was read from, for error messages."""

    @property
    def protocol(self) -> str:
        """The registered protocol this pool speaks: ``protocol:`` if given, else
        ``"redis"`` when ``redis: true``, else ``"memcache"``."""
        if self.protocol_name is not None:
            return self.protocol_name
        return "redis" if self.redis else "memcache"


def load_config(path: str | os.PathLike[str]) -> dict[str, PoolConfig]:
    """Read and validate the nutcracker.yml at ``path``.

    Raises:
        ConfigError: the file cannot be read or is invalid; the message names
            the file, line, pool and key.
    """
    path = os.fspath(path)
    return parse_config(read_config_text(path), source=path)


def read_config_text(path: str) -> str:
    """The text of the configuration file at ``path``.

    Raises:
        ConfigError: it cannot be read, or is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: configuration file is not UTF-8 text: {exc}") from exc


def parse_config(text: str, *, source: str = "<string>") -> dict[str, PoolConfig]:
    """Validate the nutcracker.yml ``text``; see :func:`load_config`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{at}: invalid YAML: {exc}") from exc
    if root is None:
        raise ConfigError(f"{source}: configuration file has no pools")
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError(
            f"{source}:{root.start_mark.line + 1}: expected a mapping of pool names to pools"
        )
    pools: dict[str, PoolConfig] = {}
    listens: dict[str, str] = {}
    for key_node, value_node in root.value:
        name = str(key_node.value)
        line = key_node.start_mark.line + 1
        where = _Where(source, name, line)
        if name in pools:
            raise where.error(None, f'pool "{name}" is a duplicate')
        pool = _build_pool(name, value_node, where)
        other = listens.get(str(pool.listen))
        if other is not None:
            raise where.error(
                "listen", f'"{pool.listen}" is already the listen address of pool "{other}"'
            )
        listens[str(pool.listen)] = name
        pools[name] = pool
    return pools


@attrs.frozen
class _Where:
    source: str
    pool: str
    line: int

    def error(self, key: str | None, message: str, line: int | None = None) -> ConfigError:
        at = f"{self.source}:{line or self.line}"
        what = f"pool '{self.pool}'" + (f", key '{key}'" if key else "")
        return ConfigError(f"{at}: {what}: {message}")


def _construct(node: yaml.Node, where: _Where, key: str, line: int) -> Any:
    try:
        return yaml.SafeLoader("").construct_document(node)
    except yaml.YAMLError as exc:
        # A tag (``!custom 1``, ``!!python/object/apply:...``) the safe loader
        # refuses: a configuration error like any other, with its line.
        problem = getattr(exc, "problem", None) or str(exc)
        raise where.error(key, f"cannot read the value: {problem}", line) from None


def _build_pool(name: str, node: yaml.Node, where: _Where) -> PoolConfig:
    if not isinstance(node, yaml.MappingNode):
        raise where.error(None, "expected a mapping of settings")
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    extra: dict[str, tuple[Any, int]] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key in values or key in extra:
            raise where.error(key, f'directive "{key}" is a duplicate', line)
        if key in _FIELDS:
            values[key] = _construct(value_node, where, key, line)
            lines[key] = line
        else:
            extra[key] = (_construct(value_node, where, key, line), line)
    for required in ("listen", "servers"):
        if required not in values:
            raise where.error(required, f'directive "{required}" is missing')
    # Keys corenet does not know are kept for the pool's protocol, which may
    # declare them (``pool_keys``); the rest are refused when the pool is
    # checked, with nutcracker's words (corenet.proxy.validate).
    kwargs: dict[str, Any] = {
        "name": name,
        "line": where.line,
        "extra": extra,
        "source": where.source,
        "key_lines": lines,
    }
    for key, value in values.items():
        kwargs[key] = _FIELDS[key](value, _KeyWhere(where, key, lines[key]))
    check_tls_keys(kwargs, lines, where)
    pool = PoolConfig(**kwargs)
    if pool.sentinels and pool.protocol != "redis":
        raise where.error("sentinels", "Sentinel serves Redis pools only", lines["sentinels"])
    if pool.redis_cluster:
        check_cluster_keys(pool, lines, where)
    elif pool.read_from != "master" and not pool.sentinels:
        raise where.error(
            "read_from",
            "replicas are found through sentinels or a cluster: add sentinels "
            "or redis_cluster: true",
            lines["read_from"],
        )
    names = {server.name for server in pool.servers}
    for named in pool.sentinel_masters:
        if named not in names:
            raise where.error("sentinel_masters", f'"{named}" is not a server name of this pool')
    return pool


@attrs.frozen
class _KeyWhere:
    where: _Where
    key: str
    line: int

    def error(self, message: str) -> ConfigError:
        return self.where.error(self.key, message, self.line)


def _as_bool(value: Any, at: _KeyWhere) -> bool:
    # nutcracker reads every scalar as text and compares it with "true" and
    # "false", so templated configs that quote everything work there.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise at.error(f"expected true or false, got {value!r}")


def _as_int(minimum: int, maximum: int | None = None) -> Callable[[Any, _KeyWhere], int]:
    def convert(value: Any, at: _KeyWhere) -> int:
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)  # "400": nutcracker's nc_atoi reads quoted digits too
        if isinstance(value, bool) or not isinstance(value, int):
            raise at.error(f"expected an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise at.error(f"expected an integer {bound}, got {value}")
        return value

    return convert


def _as_name(value: Any, at: _KeyWhere) -> str:
    if not isinstance(value, str) or not value:
        raise at.error(f"expected a name, got {value!r}")
    return value


def _as_names(value: Any, at: _KeyWhere) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise at.error(f"expected a list of names, got {value!r}")
    return tuple(value)


def _as_str(value: Any, at: _KeyWhere) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise at.error(f"expected a string, got {value!r}")
    return str(value)


def _as_secret(value: Any, at: _KeyWhere) -> str:
    # Never echo the value: a mistyped password must not reach -t output or logs.
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise at.error(f"expected a string, got a {type(value).__name__} (value not shown)")
    return str(value)


def _as_sentinels(value: Any, at: _KeyWhere) -> tuple[ListenAddress, ...]:
    if not isinstance(value, list) or not value:
        raise at.error("expected a list of at least one sentinel")
    found: list[ListenAddress] = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise at.error(f'expected "host:port[:weight]", got {item!r}')
        text = item.strip()
        # "host:port:weight" as twemproxy's sentinel fork writes them; the
        # weight means nothing for a sentinel and is ignored.
        parts = text.rsplit(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() and "]" not in parts[0]:
            text = f"{parts[0]}:{parts[1]}"
        host, port = _split_host_port(text, at)
        found.append(ListenAddress(host=host, port=port))
    return tuple(found)


def _as_read_from(value: Any, at: _KeyWhere) -> str:
    if value not in READ_FROM:
        raise at.error(f"expected one of {', '.join(READ_FROM)}, got {value!r}")
    return str(value)


def _as_name_map(value: Any, at: _KeyWhere) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
    ):
        raise at.error(f"expected a mapping of server names to master names, got {value!r}")
    return dict(value)


def _as_path(value: Any, at: _KeyWhere) -> str:
    if not isinstance(value, str) or not value.strip():
        raise at.error(f"expected a file path, got {value!r}")
    path = os.path.expanduser(value.strip())
    source = at.where.source
    if not os.path.isabs(path) and os.path.isfile(source):
        # Relative to the configuration file, wherever the proxy runs from
        # (a daemon's working directory is /).
        path = os.path.join(os.path.dirname(os.path.abspath(source)), path)
    return path


def _as_tls_versions(value: Any, at: _KeyWhere) -> tuple[str, ...]:
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) for v in items):
        raise at.error(f'expected TLS versions such as "TLSv1.2 TLSv1.3", got {value!r}')
    for item in items:
        if item not in TLS_VERSIONS:
            known = ", ".join(TLS_VERSIONS)
            raise at.error(f"unknown TLS version {item!r} (known: {known})")
    return tuple(items)


def _as_hash_tag(value: Any, at: _KeyWhere) -> bytes:
    if not isinstance(value, str) or len(value.encode()) != 2:
        raise at.error(f'expected exactly two characters such as "{{}}", got {value!r}')
    return value.encode()


def _as_listen(value: Any, at: _KeyWhere) -> ListenAddress:
    if not isinstance(value, str) or not value.strip():
        raise at.error(f'expected "host:port" or "/path [permissions]", got {value!r}')
    text = value.strip()
    if text.startswith("/"):
        path, _, perm_text = text.partition(" ")
        perm = None
        if perm_text.strip():
            try:
                perm = int(perm_text.strip(), 8)
            except ValueError:
                raise at.error(
                    f"expected octal permissions after the path, got {perm_text.strip()!r}"
                ) from None
        return ListenAddress(path=path, perm=perm)
    host, port = _split_host_port(text, at)
    return ListenAddress(host=host, port=port)


def _split_host_port(text: str, at: _KeyWhere) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise at.error(f'expected "host:port" with a port from 1 to 65535, got {text!r}')
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def _as_servers(value: Any, at: _KeyWhere) -> tuple[ServerConfig, ...]:
    if not isinstance(value, list) or not value:
        raise at.error("expected a list of at least one server")
    servers: list[ServerConfig] = []
    names: set[str] = set()
    for item in value:
        server = _parse_server(item, at)
        if server.name in names:
            raise at.error(f'server name "{server.name}" is a duplicate')
        names.add(server.name)
        servers.append(server)
    return tuple(servers)


def _parse_server(item: Any, at: _KeyWhere) -> ServerConfig:
    if not isinstance(item, str) or not item.strip():
        raise at.error(f'expected "host:port:weight [name]", got {item!r}')
    spec = item.strip()
    address_part, _, given_name = spec.partition(" ")
    given_name = given_name.strip()
    if given_name.split() != [given_name] and given_name:
        # nutcracker splits a server line at its last space: anything after
        # a name is garbage there, not part of the name.
        raise at.error(f'server "{spec}": expected one name after the weight')
    rest, sep, weight_text = address_part.rpartition(":")
    if not sep or not weight_text.isdigit() or not (rest.startswith("/") or ":" in rest):
        raise at.error(
            f'server "{spec}": expected "host:port:weight [name]" or "/path:weight [name]"'
        )
    weight = int(weight_text)
    if weight == 0:
        raise at.error(f'server "{spec}" has a zero weight')
    if rest.startswith("/"):
        address = ListenAddress(path=rest)
        name = server_name(rest, None, given_name)
    else:
        host, port = _split_host_port(rest, at)
        address = ListenAddress(host=host, port=port)
        # The port text as written: nutcracker keeps leading zeros in names.
        name = server_name(host, rest.rpartition(":")[2], given_name)
    return ServerConfig(address=address, weight=weight, name=name, spec=spec, line=at.line)


_FIELDS: Mapping[str, Callable[[Any, _KeyWhere], Any]] = {
    "listen": _as_listen,
    "hash": _as_name,
    "hash_tag": _as_hash_tag,
    "distribution": _as_name,
    "timeout": _as_int(1),
    "backlog": _as_int(1),
    "client_connections": _as_int(0),
    "redis": _as_bool,
    "redis_auth": _as_secret,
    "redis_db": _as_int(0, 63),  # the proxy keeps connections per database: 64 of them
    "tcpkeepalive": _as_bool,
    "preconnect": _as_bool,
    "auto_eject_hosts": _as_bool,
    "server_connections": _as_int(1),
    "server_retry_timeout": _as_int(1),
    "server_failure_limit": _as_int(1),
    "servers": _as_servers,
    "deny_commands": _as_names,
    "client_max_pending": _as_int(1),
    "max_pinned_connections": _as_int(1),
    "client_output_buffer": _as_int(1024),
    "client_output_limit": _as_int(1024),
    "client_idle_timeout": _as_int(1),
    "client_request_timeout": _as_int(1),
    "sentinels": _as_sentinels,
    "sentinel_auth": _as_secret,
    "sentinel_masters": _as_name_map,
    "read_from": _as_read_from,
    "redis_cluster": _as_bool,
    "health_check_interval": _as_int(10),
    "health_check_timeout": _as_int(1),
    "tls_cert": _as_path,
    "tls_key": _as_path,
    "tls_ca": _as_path,
    "tls_protocols": _as_tls_versions,
    "tls_ciphers": _as_str,
    "tls_handshake_timeout": _as_int(1),
    "server_tls": _as_bool,
    "server_tls_ca": _as_path,
    "server_tls_cert": _as_path,
    "server_tls_key": _as_path,
    "server_tls_sni": _as_name,
    "server_tls_verify": _as_bool,
    "server_tls_protocols": _as_tls_versions,
    "server_tls_ciphers": _as_str,
    "protocol": _as_name,
}


def pool_options(pool: PoolConfig) -> PoolOptions:
    """The read-only view of ``pool`` a protocol's parsers get: every setting
    (with its default), plus the plugin keys the file gave."""
    values: dict[str, Any] = {f.name: getattr(pool, f.name) for f in attrs.fields(PoolConfig)}
    del values["extra"], values["protocol_name"], values["source"]
    values["protocol"] = pool.protocol
    values.update({key: value for key, (value, _) in pool.extra.items()})
    return PoolOptions(values)


def key_error(pool: PoolConfig, key: str, message: str, line: int | None = None) -> ConfigError:
    """A ConfigError about ``pool``'s ``key``, naming file, line, pool and key."""
    if line is None:
        line = pool.key_lines.get(key, pool.line)
    return _Where(pool.source, pool.name, pool.line).error(key, message, line)
