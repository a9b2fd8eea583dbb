"""tlcore: transfer learning for image classification, with plugins for medical and agricultural imaging.

``tlcore.train``, ``tlcore.load``, ``tlcore.Run``, ``tlcore.advise`` and ``tlcore.compare`` (with their results,
``tlcore.Advice`` and ``tlcore.Comparison``) are the Python API (:mod:`tlcore.api`). They load on first use:
every plugin imports this package for ``tlcore.hookimpl``, and that import stays free of torch.

The subpackage behind ``tlcore.advise`` and ``tlcore.compare`` is ``tlcore.advice``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pluggy

#: The hook contract this tlcore speaks (``MAJOR.MINOR``, see :mod:`tlcore.hookspecs`); plugins declare theirs
#: as ``TLCORE_HOOKS``.
from tlcore.hookspecs import HOOKS_VERSION

try:
    __version__ = version("tlcore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Decorator for plugin hook implementations: ``@tlcore.hookimpl``.
hookimpl = pluggy.HookimplMarker("tlcore")

#: The API's names, imported from tlcore.api when first used.
_API = ("Advice", "Comparison", "Run", "advise", "compare", "load", "train")

__all__ = [
    "HOOKS_VERSION", "Advice", "Comparison", "Run", "__version__", "advise", "compare", "hookimpl", "load", "train"
]


def __getattr__(name: str) -> Any:
    """The API's names (``tlcore.train``, ``tlcore.advise``, ...), imported on first use (PEP 562)."""
    if name in _API:
        from tlcore import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

