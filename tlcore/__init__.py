"""tlcore: transfer learning for image classification, with plugins for medical and agricultural imaging."""

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("tlcore")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Decorator for plugin hook implementations: ``@tlcore.hookimpl``.
hookimpl = pluggy.HookimplMarker("tlcore")

__all__ = ["__version__", "hookimpl"]
