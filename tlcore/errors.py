"""Errors a user can act on. The CLI prints them as one line, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class TlcoreError(Exception):
    """A problem the user can fix. ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UnknownNameError(TlcoreError):
    """A name (preset, backbone, dataset, ...) that no registry knows."""

    def __init__(self, kind: str, name: str, known: Iterable[str], list_command: str | None = None) -> None:
        known = list(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else None
        listing = list_command or f"tl list {kind.replace(' ', '-')}s"
        hint = f"{hint} " if hint else ""
        super().__init__(f"unknown {kind} {name!r}", f"{hint}see `{listing}`")
        self.kind = kind
        self.name = name
        self.close_matches = close


class DuplicateNameError(TlcoreError):
    """Two plugins claimed the same name in one registry."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        super().__init__(
            f"{kind} {name!r} is registered by both plugin {first!r} and plugin {second!r}",
            f"rename one of them, or disable one with TLCORE_DISABLE_PLUGINS={second}",
        )
        self.first = first
        self.second = second


class DataError(TlcoreError):
    """The data on disk is not what the adapter expects."""


class NoTrainSplitError(DataError):
    """The data has split folders but no train split. ``tl evaluate`` points to ``--split all``."""


class WeightsError(TlcoreError):
    """Pretrained weights could not be found or loaded."""


class ConfigError(TlcoreError):
    """A preset, ``--set`` override or YAML file is invalid."""


class StorageError(TlcoreError):
    """A file could not be written (disk full, no permission)."""


class PluginError(TlcoreError):
    """A plugin's code failed while tlcore used it."""


class MissingExtraError(TlcoreError):
    """A feature needs a package from an optional extra that is not installed; the message ends with the
    ``pip install`` that fixes it (see :func:`tlcore.extras.require`)."""

    def __init__(self, feature: str, extra: str, module: str, distribution: str = "tlcore") -> None:
        super().__init__(
            f"{feature} needs the {extra!r} extra ({module} is not installed)",
            f'pip install "{distribution}[{extra}]"',
        )
        self.feature = feature
        self.extra = extra
        self.module = module
        self.distribution = distribution

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}"


class TlcoreWarning(UserWarning):
    """Something a run or a command did that the user should know about; the CLI prints it as ``warning: ...``."""
