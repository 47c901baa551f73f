"""corenet: a networking framework with pluggable event backends and protocol
plugins.

The framework's layers, bottom up: :mod:`corenet.event` (readiness
backends), :mod:`corenet.loop` and :mod:`corenet.timers` (the reactor),
:mod:`corenet.stream` and :mod:`corenet.net` (connections, listeners, the
accept loop), :mod:`corenet.framing` (bytes to messages), the contracts
(:mod:`corenet.protocol`, :mod:`corenet.msg`, :mod:`corenet.routing`),
:mod:`corenet.plugin` (hooks and registries) and :mod:`corenet.testing`.
Its reference application, the twemproxy-compatible proxy, is the separate
package :mod:`corenet.proxy`, built on these alone.
"""

from corenet import errors
from corenet.errors import *  # noqa: F403  (the exception hierarchy, re-exported)
from corenet.plugin import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [*errors.__all__, "__version__", "hookimpl", "hookspec"]
