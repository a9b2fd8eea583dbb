"""Field acquisition changes for ``tl stress``; each maps ``HxWxC`` float32 in [0, 1] to the same.

The core's changes (blur, JPEG, exposure, framing) apply to every photo; these are the ones a field, a
phone held in the wind or a drone adds.
"""

from __future__ import annotations

import cv2
import numpy as np

from tlcore.data.perturbations import keep_channels


def shadow(u: np.ndarray) -> np.ndarray:
    """The left 40 % of the image in shade (45 % less light), with a soft edge: a neighbouring leaf, the
    photographer or a cloud."""
    w = u.shape[1]
    x = np.arange(w, dtype=np.float32)
    edge = 0.4 * w
    light = 1.0 - 0.45 / (1.0 + np.exp((x - edge) / max(w * 0.02, 1.0)))
    out: np.ndarray = u * light[None, :, None]
    return out


def motion_blur(u: np.ndarray) -> np.ndarray:
    """A 7 px horizontal motion blur: a hand-held phone or a moving drone at a slow shutter."""
    kernel = np.full((1, 7), 1.0 / 7.0, np.float32)
    return keep_channels(cv2.filter2D(u, -1, kernel, borderType=cv2.BORDER_REFLECT))
