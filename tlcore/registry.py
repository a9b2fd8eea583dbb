"""A name -> object registry that remembers which plugin registered each name."""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from tlcore.errors import DuplicateNameError, TlcoreWarning, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    item: T
    plugin: str


class Registry(Generic[T]):
    """Objects of one kind (``kind`` is used in messages: "preset", "backbone", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        #: Plugins that were not loaded -> why: looking up a missing ``PLUGIN/...`` name warns with the reason.
        self.skipped: dict[str, str] = {}

    def add(self, name: str, item: T, plugin: str) -> None:
        """Add ``item``; a name already taken raises :class:`DuplicateNameError` naming both plugins."""
        if not name or not isinstance(name, str):
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        existing = self._entries.get(name)
        if existing is not None:
            raise DuplicateNameError(self.kind, name, existing.plugin, plugin)
        self._entries[name] = Entry(name, item, plugin)

    def get(self, name: str) -> T:
        return self.entry(name).item

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            plugin = name.split("/", 1)[0] if isinstance(name, str) and "/" in name else None
            if plugin in self.skipped:
                warnings.warn(
                    f"{self.kind} {name!r} would come from plugin {plugin!r}, which was not loaded: "
                    f"{self.skipped[plugin]}",
                    TlcoreWarning,
                    stacklevel=3,
                )
            raise UnknownNameError(self.kind, name, self._entries) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def names(self) -> list[str]:
        return sorted(self._entries)

    def matching(self, pattern: str | None = None) -> list[Entry[T]]:
        """Entries whose name matches a shell-style ``pattern`` (a plain word matches as a substring)."""
        if not pattern:
            return list(self)
        if not any(ch in pattern for ch in "*?["):
            pattern = f"*{pattern}*"
        return [e for e in self if fnmatch.fnmatchcase(e.name.lower(), pattern.lower())]
