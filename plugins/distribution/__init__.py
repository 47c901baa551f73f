"""nutcracker's key distributions (ketama, modula, random).

Each distribution is a factory ``build(nodes) -> Dispatcher`` taking the live
servers as ``(name, weight)`` in pool order; the proxy names and
orders them as nutcracker does (:mod:`corenet.proxy.naming`).  A pool
rebuilds its dispatcher whenever the live set changes (nutcracker rebuilds
over live servers only, with the live total weight), and handles "no server
is live" itself: the factories refuse an empty node list.

:data:`DISTRIBUTIONS` maps nutcracker's configuration names to the
factories; the ``corenet_register_distributions`` hook in :mod:`.plugin`
registers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._ketama import KetamaDispatcher, points_per_node
from ._ketama import build as build_ketama
from ._modula import ModulaDispatcher, WideModulaDispatcher
from ._modula import build as build_modula
from ._random import RandomDispatcher
from ._random import build as build_random

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corenet.routing import DistributionFactory

__all__ = [
    "DISTRIBUTIONS",
    "KetamaDispatcher",
    "ModulaDispatcher",
    "RandomDispatcher",
    "WideModulaDispatcher",
    "build_ketama",
    "build_modula",
    "build_random",
    "points_per_node",
]

DISTRIBUTIONS: Mapping[str, DistributionFactory] = {
    "ketama": build_ketama,
    "modula": build_modula,
    "random": build_random,
}
"""nutcracker distribution name -> factory."""
