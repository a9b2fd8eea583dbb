"""The core's acquisition changes for ``tl stress`` (registered by :mod:`tlcore.default_plugins.perturbations`).

Each maps an ``HxWxC`` float32 image in ``[0, 1]`` to the same shape and range, deterministically.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import cv2
import numpy as np

from tlcore.errors import ConfigError


def _contrast(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: (u - 0.5) * factor + 0.5


def _shift(amount: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: u + amount


def _gamma(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: np.power(np.clip(u, 0.0, 1.0), gamma)


def _blur(u: np.ndarray) -> np.ndarray:
    return keep_channels(cv2.GaussianBlur(u, (0, 0), 1.0))


def _downscale(u: np.ndarray) -> np.ndarray:
    h, w = u.shape[:2]
    small = cv2.resize(u, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return keep_channels(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC))


def _sharpen(u: np.ndarray) -> np.ndarray:
    return u + (u - _blur(u))


def _jpeg(u: np.ndarray) -> np.ndarray:
    # OpenCV encodes 1 or 3 channels; other counts go channel by channel.
    def encode(plane: np.ndarray) -> np.ndarray:
        ok, buf = cv2.imencode(".jpg", np.round(plane * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 30])
        if not ok:
            raise ConfigError("OpenCV could not encode a JPEG for the jpeg perturbation")
        decoded = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if decoded is None:
            raise ConfigError("OpenCV could not decode its own JPEG for the jpeg perturbation")
        return decoded.astype(np.float32) / 255

    if u.shape[2] in (1, 3):
        return keep_channels(encode(u))
    return np.stack([encode(u[:, :, c]) for c in range(u.shape[2])], axis=2)


def image_rng(u: np.ndarray) -> np.random.Generator:
    """A generator seeded by the image itself: the same image gets the same noise on every run."""
    return np.random.default_rng(zlib.crc32(u.tobytes()))


def _noise(u: np.ndarray) -> np.ndarray:
    rng = image_rng(u)
    return u + rng.normal(0.0, 0.025, u.shape).astype(np.float32)


def warp(u: np.ndarray, sx: float, sy: float, angle: float = 0.0) -> np.ndarray:
    """Scale about the centre (and rotate), black outside: framing and pose changes of the same scene."""
    h, w = u.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, :2] = m[:, :2] @ np.diag([sx, sy])
    m[:, 2] = np.array([w / 2, h / 2]) - m[:, :2] @ np.array([w / 2, h / 2])
    out = cv2.warpAffine(u, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return keep_channels(out)


def keep_channels(out: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back."""
    return out[:, :, None] if out.ndim == 2 else out


#: name -> change, in the order ``tl stress`` runs and reports them
CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "blur": _blur,
    "downscale": _downscale,
    "sharpen": _sharpen,
    "jpeg": _jpeg,
    "noise": _noise,
    "low-contrast": _contrast(0.7),
    "high-contrast": _contrast(1.3),
    "darker": _shift(-0.12),
    "brighter": _shift(0.12),
    "gamma-0.7": _gamma(0.7),
    "gamma-1.4": _gamma(1.4),
    "zoom-in": lambda u: warp(u, 1.2, 1.2),
    "zoom-out": lambda u: warp(u, 0.8, 0.8),
    "narrow": lambda u: warp(u, 0.85, 1.0),
    "wide": lambda u: warp(u, 1.15, 1.0),
    "rotate": lambda u: warp(u, 1.0, 1.0, 10.0),
}
