"""Former home of the plugin manager; kept so plugins written against the
0.1 documentation keep importing.  Use :mod:`corenet.plugin`."""

from corenet import plugin
from corenet.plugin import *  # noqa: F403  (every public name, as before)

__all__ = plugin.__all__
