"""Former home of the proxy's configuration types.

The proxy's nutcracker.yml loader is :mod:`corenet.proxy.config` now.  A
protocol receives its pool's options as a :class:`corenet.protocol.PoolOptions`;
``PoolConfig`` is kept here as that type's old name, so plugins annotated
against the 0.1 documentation keep type-checking.
"""

from corenet.protocol import PoolOptions as PoolConfig

__all__ = ["PoolConfig"]
