"""tlcore: transfer learning for image classification, with plugins for medical and agricultural imaging.

``tlcore.train``, ``tlcore.load`` and ``tlcore.Run`` are the Python API (:mod:`tlcore.api`). They load on first
use: every plugin imports this package for ``tlcore.hookimpl``, and that import stays free of torch.
"""

from __future__ import annotations

import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pluggy

try:
    __version__ = version("tlcore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Decorator for plugin hook implementations: ``@tlcore.hookimpl``.
hookimpl = pluggy.HookimplMarker("tlcore")

#: The API's names, imported from tlcore.api when first used.
_API = ("Run", "load", "train")

__all__ = ["Run", "__version__", "hookimpl", "load", "train"]


def __getattr__(name: str) -> Any:
    """``tlcore.train``, ``tlcore.load`` and ``tlcore.Run``, imported on first use (PEP 562)."""
    if name in _API:
        from tlcore import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Package(types.ModuleType):
    """The package's module type. Importing the subpackage ``tlcore.train`` (the training engine) sets the
    package's attribute ``train`` to it; this property keeps ``tlcore.train`` the API's function, and the
    subpackage stays where imports find it (``sys.modules``)."""

    @property
    def train(self) -> Any:
        return __getattr__("train")

    @train.setter
    def train(self, module: Any) -> None:
        self.__dict__["train"] = module


sys.modules[__name__].__class__ = _Package
