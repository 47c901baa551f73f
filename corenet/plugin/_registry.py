"""The registries that registration hooks fill: name -> implementation.

Each refuses a second claim on a name (naming both plugins) and checks what
it can of an implementation when it is added, so a broken plugin fails at
start-up (and in ``corenet-proxy -t``), not on the first request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

from corenet.errors import PluginError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from corenet.event import EventBase
    from corenet.protocol import Protocol
    from corenet.routing import DistributionFactory, HashFn

__all__ = [
    "DistributionRegistry",
    "EventBackendRegistry",
    "HashRegistry",
    "ProtocolRegistry",
    "Registry",
]

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> implementation, refusing a second claim on a name."""

    kind = "implementation"

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self.current_plugin = "<unknown>"

    def add(self, name: str, item: T) -> None:
        """Register ``item`` as ``name``.

        Raises:
            PluginError: ``name`` is not a non-empty string, or another plugin
                already registered it.
        """
        if not isinstance(name, str) or not name:
            raise PluginError(
                f"plugin {self.current_plugin!r} registered a {self.kind} "
                f"with an invalid name {name!r}"
            )
        if name in self._items:
            raise PluginError(
                f"{self.kind} {name!r} is registered by both plugin {self._owners[name]!r} "
                f"and plugin {self.current_plugin!r}"
            )
        self._items[name] = item
        self._owners[name] = self.current_plugin

    def get(self, name: str) -> T:
        """Return the implementation called ``name``.

        Raises:
            PluginError: no plugin registered ``name``.
        """
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise PluginError(f"no {self.kind} named {name!r} (known: {known})") from None

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class HashRegistry(Registry["HashFn"]):
    kind = "hash function"

    def add(self, name: str, item: HashFn) -> None:
        if not callable(item):
            raise PluginError(
                f"hash function {name!r} from {self.current_plugin!r} is not callable"
            )
        super().add(name, item)


class DistributionRegistry(Registry["DistributionFactory"]):
    kind = "distribution"

    def add(self, name: str, item: DistributionFactory) -> None:
        if not callable(item):
            raise PluginError(f"distribution {name!r} from {self.current_plugin!r} is not callable")
        super().add(name, item)


class ProtocolRegistry(Registry["Protocol"]):
    kind = "protocol"

    def add(self, name: str, item: Protocol) -> None:
        missing = [
            attr
            for attr in ("new_request_parser", "new_reply_parser", "error_reply")
            if not callable(getattr(item, attr, None))
        ]
        if missing:
            raise PluginError(
                f"protocol {name!r} from {self.current_plugin!r} lacks {', '.join(missing)}"
            )
        super().add(name, item)


class EventBackendRegistry(Registry["Callable[[], EventBase]"]):
    kind = "event backend"

    def __init__(self) -> None:
        super().__init__()
        self.priorities: dict[str, int] = {}

    def add(self, name: str, item: Callable[[], EventBase], priority: int = 0) -> None:
        """Register backend ``name``; ``auto`` tries higher ``priority`` first."""
        if not callable(item):
            raise PluginError(
                f"event backend {name!r} from {self.current_plugin!r} is not callable"
            )
        super().add(name, item)
        self.priorities[name] = priority

    def by_priority(self) -> list[str]:
        return sorted(self._items, key=lambda n: -self.priorities[n])
