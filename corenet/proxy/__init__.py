"""corenet-proxy: the twemproxy (nutcracker) compatible Redis/memcache proxy.

The reference application of the corenet framework, and only a user of it:
``nutcracker.yml`` (:mod:`.config`, :mod:`.naming`), server pools and
routing (:mod:`.pool`), client and server connections (:mod:`.client`,
:mod:`.server`), stats and metrics (:mod:`.stats`, :mod:`.metrics`,
:mod:`.http`), the process (:mod:`.app`, :mod:`.workers`, :mod:`.cli`) and
its helpers (:mod:`.explain`, :mod:`.demo`, :mod:`.harness`).
"""

from corenet.proxy.config import ListenAddress, PoolConfig, ServerConfig, load_config, parse_config

__all__ = ["ListenAddress", "PoolConfig", "ServerConfig", "load_config", "parse_config"]
