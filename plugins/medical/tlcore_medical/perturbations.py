"""Acquisition changes of medical modalities for ``tl stress``; each maps ``HxWxC`` float32 in [0, 1] to the same.

The core's changes (blur, JPEG, exposure, framing) apply to every modality; these are the ones a scanner or
probe adds on its own.
"""

from __future__ import annotations

import cv2
import numpy as np

from tlcore.data.perturbations import image_rng, keep_channels


def bias_field(u: np.ndarray) -> np.ndarray:
    """A smooth multiplicative field, 25 % brighter on the left to 25 % darker on the right: the intensity
    inhomogeneity of MR receive coils (and of uneven film exposure across a radiograph)."""
    w = u.shape[1]
    ramp = np.linspace(1.25, 0.75, w, dtype=np.float32)[None, :, None]
    out: np.ndarray = u * ramp
    return out


def speckle(u: np.ndarray) -> np.ndarray:
    """Multiplicative speckle (ultrasound): grains of about 2 px, 20 % standard deviation, seeded by the image."""
    noise = image_rng(u).normal(0.0, 1.0, u.shape[:2]).astype(np.float32)
    grains = np.asarray(cv2.GaussianBlur(noise, (0, 0), 1.0), dtype=np.float32)
    grains /= max(float(grains.std()), 1e-6)
    out: np.ndarray = u * (1.0 + 0.2 * keep_channels(grains))
    return out
