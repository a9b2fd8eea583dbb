"""Default acquisition changes for ``tl stress``: resolution, compression, noise, exposure and framing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tlcore import hookimpl
from tlcore.specs import Perturbation

DESCRIPTIONS = {
    "blur": "Gaussian blur, sigma 1 px (softer detector, focus)",
    "downscale": "half the resolution and back (lower-resolution detector or camera)",
    "sharpen": "unsharp mask, amount 1 (edge-enhancing post-processing)",
    "jpeg": "JPEG re-compression at quality 30 (another export setting)",
    "noise": "Gaussian noise, 2.5 % of the range (lower dose, higher ISO)",
    "low-contrast": "contrast x0.7 about mid-grey",
    "high-contrast": "contrast x1.3 about mid-grey",
    "darker": "12 % of the range darker (exposure)",
    "brighter": "12 % of the range brighter (exposure)",
    "gamma-0.7": "gamma 0.7: mid-tones lifted (another display or processing curve)",
    "gamma-1.4": "gamma 1.4: mid-tones lowered",
    "zoom-in": "framed 1.2x tighter (centre enlarged, edges lost)",
    "zoom-out": "framed 1.25x looser (scene shrunk to 0.8, black border)",
    "narrow": "width x0.85 (another aspect ratio squashed to the input size)",
    "wide": "width x1.15",
    "rotate": "rotated 10 degrees (patient or camera tilt)",
}


def _lazy(name: str) -> Callable[[np.ndarray], np.ndarray]:
    # OpenCV loads when a change is applied, not when `tl list` loads the default plugins.
    def apply(image: np.ndarray) -> np.ndarray:
        from tlcore.data.perturbations import CHANGES

        return CHANGES[name](image)

    return apply


@hookimpl
def register_perturbations(register: Callable[[Perturbation], None]) -> None:
    for name, description in DESCRIPTIONS.items():
        register(Perturbation(name=name, description=description, apply=_lazy(name)))
