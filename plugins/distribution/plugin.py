"""Hook implementations registering nutcracker's key distributions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corenet.plugin import hookimpl

from . import DISTRIBUTIONS

if TYPE_CHECKING:
    from corenet.plugin import DistributionRegistry


@hookimpl
def corenet_register_distributions(registry: DistributionRegistry) -> None:
    for name, factory in DISTRIBUTIONS.items():
        registry.add(name, factory)
