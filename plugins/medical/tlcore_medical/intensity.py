"""Grey levels to uint8: DICOM windows, percentile clipping, and the channel layout the model wants.

Medical images carry 12-16 bit (or float) intensities; they stay float until this step, so the
window decides what the 256 output levels are spent on. The scaling itself is MONAI's
(``ScaleIntensityRange``, between a window's ends or two percentiles), imported when a file is first read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tlcore.errors import ConfigError

DEFAULT_PERCENTILES = (0.5, 99.5)


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear VOI window (PS3.3 C.11.2.1.2.1) mapped to [0, 1], by MONAI's ScaleIntensityRange:
    the standard's line runs from ``center - 0.5 - (width - 1) / 2`` (0) to ``center - 0.5 + (width - 1) / 2`` (1)."""
    from monai.transforms.intensity.array import ScaleIntensityRange

    c, half = center - 0.5, max(width - 1.0, 1e-6) / 2
    scale = ScaleIntensityRange(a_min=c - half, a_max=c + half, b_min=0.0, b_max=1.0, clip=True, dtype=np.float32)
    return np.asarray(scale(np.asarray(values, dtype=np.float32)))


def percentile_window(values: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> np.ndarray:
    """Clip to the given percentiles of ``values`` and scale to [0, 1] (robust to a few hot pixels), by MONAI's
    ScaleIntensityRange; a flat image (no range between the percentiles) is all zeros."""
    from monai.transforms.intensity.array import ScaleIntensityRange

    values = np.asarray(values, dtype=np.float32)
    # Computed once here: MONAI's ScaleIntensityRangePercentiles would compute them again, and the flat
    # case needs them first.
    lo, hi = np.percentile(values, list(percentiles))
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float32)
    scale = ScaleIntensityRange(a_min=float(lo), a_max=float(hi), b_min=0.0, b_max=1.0, clip=True, dtype=np.float32)
    return np.asarray(scale(values))


def to_uint8(unit: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.rint(np.asarray(unit, dtype=np.float32) * 255.0).astype(np.uint8)
    return result


def with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """``HxW`` or ``HxWxC`` uint8 to ``HxWxchannels``: grey is repeated, colour averaged to grey."""
    if image.ndim == 2:
        image = image[:, :, None]
    have = image.shape[2]
    if have == channels:
        return np.ascontiguousarray(image)
    if have == 1:
        return np.ascontiguousarray(np.repeat(image, channels, axis=2))
    if channels == 1:
        result: np.ndarray = np.rint(image[:, :, :3].mean(axis=2, keepdims=True)).astype(np.uint8)
        return result
    raise ValueError(f"cannot turn {have} channels into {channels}")


def channels_option(options: Any, adapter: str, default: int = 3) -> int:
    """The ``channels`` adapter option: 3 (grey repeated; ImageNet stems expect it) or 1."""
    value = options.get("channels", default)
    if value not in (1, 3) or isinstance(value, bool):
        raise ConfigError(f"{adapter}: channels must be 1 or 3, got {value!r}",
                          "--set adapter_options={channels: 1}")
    return int(value)


def pair_option(options: Any, key: str, adapter: str, example: str) -> tuple[float, float] | None:
    """A two-number option such as ``window: [40, 400]`` or ``percentiles: [1, 99]``."""
    value = options.get(key)
    if value is None:
        return None
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{adapter}: {key} must be two numbers, got {value!r}",
                          f"--set adapter_options={{{key}: {example}}}") from None
    return a, b
