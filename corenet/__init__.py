"""corenet: a networking framework with pluggable event backends and protocol
plugins, and a Redis/memcache sharding proxy compatible with nutcracker."""

from corenet.config import ListenAddress, PoolConfig, ServerConfig, load_config, parse_config
from corenet.errors import (
    BackendError,
    ConfigError,
    CorenetError,
    LocalProtocolError,
    PluginError,
    ProtocolError,
    RemoteProtocolError,
)
from corenet.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [
    "BackendError",
    "ConfigError",
    "CorenetError",
    "ListenAddress",
    "LocalProtocolError",
    "PluginError",
    "PoolConfig",
    "ProtocolError",
    "RemoteProtocolError",
    "ServerConfig",
    "__version__",
    "hookimpl",
    "hookspec",
    "load_config",
    "parse_config",
]
