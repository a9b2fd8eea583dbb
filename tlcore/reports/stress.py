"""``tl stress``: how a trained run's predictions move when the same images are acquired differently.

A model can score well on a validation split that shares the training set's quirks (one device's sharpness,
one site's framing or JPEG quality) and fail on the next site. Re-scoring the validation images under small,
named acquisition changes shows which quirks the model leans on, without touching the test split: a change
that flips many predictions is a cue to add to the augmentation (or to remove from the data) before the
test set is ever looked at.

Every perturbation acts on the model's input view (after the run's resize and crop), so its strength means
the same at any source resolution. Grey levels are handled on the image's own range: ``[0, 255]`` for uint8
images, the image's min-max for other data (bands, windowed scans), which is mapped back afterwards.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from tlcore.errors import ConfigError

#: A result is flagged when this share of predictions changes ...
CHANGED_WARN = 0.05
#: ... or the headline metric falls by this much.
DROP_WARN = 0.03
#: The metric a perturbation is judged by, per task (higher is better for each).
HEADLINE = {"classification": "balanced_accuracy", "multilabel": "auc", "regression": "r2"}


@dataclass(frozen=True)
class Perturbation:
    name: str
    description: str
    #: ``HxWxC`` float32 in ``[0, 1]`` -> the same shape and range
    apply: Callable[[np.ndarray], np.ndarray]


def _contrast(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: (u - 0.5) * factor + 0.5


def _shift(amount: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: u + amount


def _gamma(gamma: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda u: np.power(np.clip(u, 0.0, 1.0), gamma)


def _blur(u: np.ndarray) -> np.ndarray:
    return _keep_channels(cv2.GaussianBlur(u, (0, 0), 1.0), u)


def _downscale(u: np.ndarray) -> np.ndarray:
    h, w = u.shape[:2]
    small = cv2.resize(u, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return _keep_channels(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), u)


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
        return _keep_channels(encode(u), u)
    return np.stack([encode(u[:, :, c]) for c in range(u.shape[2])], axis=2)


def _noise(u: np.ndarray) -> np.ndarray:
    # Seeded by the image itself: the same image gets the same noise on every run.
    rng = np.random.default_rng(zlib.crc32(u.tobytes()))
    return u + rng.normal(0.0, 0.025, u.shape).astype(np.float32)


def _warp(u: np.ndarray, sx: float, sy: float, angle: float = 0.0) -> np.ndarray:
    """Scale about the centre (and rotate), black outside: framing and pose changes of the same scene."""
    h, w = u.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, :2] = m[:, :2] @ np.diag([sx, sy])
    m[:, 2] = np.array([w / 2, h / 2]) - m[:, :2] @ np.array([w / 2, h / 2])
    out = cv2.warpAffine(u, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return _keep_channels(out, u)


def _keep_channels(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of size 1; put it back."""
    return out[:, :, None] if out.ndim == 2 else out


PERTURBATIONS: tuple[Perturbation, ...] = (
    Perturbation("blur", "Gaussian blur, sigma 1 px (softer detector, focus)", _blur),
    Perturbation("downscale", "half the resolution and back (lower-resolution detector or camera)", _downscale),
    Perturbation("sharpen", "unsharp mask, amount 1 (edge-enhancing post-processing)", _sharpen),
    Perturbation("jpeg", "JPEG re-compression at quality 30 (another export setting)", _jpeg),
    Perturbation("noise", "Gaussian noise, 2.5 % of the range (lower dose, higher ISO)", _noise),
    Perturbation("low-contrast", "contrast x0.7 about mid-grey", _contrast(0.7)),
    Perturbation("high-contrast", "contrast x1.3 about mid-grey", _contrast(1.3)),
    Perturbation("darker", "12 % of the range darker (exposure)", _shift(-0.12)),
    Perturbation("brighter", "12 % of the range brighter (exposure)", _shift(0.12)),
    Perturbation("gamma-0.7", "gamma 0.7: mid-tones lifted (another display or processing curve)", _gamma(0.7)),
    Perturbation("gamma-1.4", "gamma 1.4: mid-tones lowered", _gamma(1.4)),
    Perturbation("zoom-in", "framed 1.2x tighter (centre enlarged, edges lost)", lambda u: _warp(u, 1.2, 1.2)),
    Perturbation("zoom-out", "framed 1.25x looser (scene shrunk to 0.8, black border)", lambda u: _warp(u, 0.8, 0.8)),
    Perturbation("narrow", "width x0.85 (another aspect ratio squashed to the input size)",
                 lambda u: _warp(u, 0.85, 1.0)),
    Perturbation("wide", "width x1.15", lambda u: _warp(u, 1.15, 1.0)),
    Perturbation("rotate", "rotated 10 degrees (patient or camera tilt)", lambda u: _warp(u, 1.0, 1.0, 10.0)),
)


def select(names: Sequence[str] | None) -> list[Perturbation]:
    """The perturbations named (all when ``names`` is empty), in the order of :data:`PERTURBATIONS`."""
    if not names:
        return list(PERTURBATIONS)
    known = {p.name: p for p in PERTURBATIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown perturbation {unknown[0]!r}", f"choose from: {', '.join(known)}")
    return [p for p in PERTURBATIONS if p.name in set(names)]


class Perturbed:
    """An albumentations-style transform (``t(image=...)["image"]``): the run's eval view, then a perturbation."""

    def __init__(self, view: Callable[..., dict[str, Any]], perturbation: Perturbation) -> None:
        self.view = view
        self.perturbation = perturbation

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        return {"image": perturb(self.view(image=image)["image"], self.perturbation)}


def perturb(image: np.ndarray, perturbation: Perturbation) -> np.ndarray:
    """Apply on the image's own grey-level range and return the same dtype and shape."""
    if image.dtype == np.uint8:
        lo, span = 0.0, 255.0
    else:
        lo, hi = float(image.min()), float(image.max())
        span = hi - lo if hi > lo else 1.0
    u = (image.astype(np.float32) - lo) / span
    out = np.clip(perturbation.apply(u), 0.0, 1.0) * span + lo
    if image.dtype == np.uint8:
        return np.round(out).astype(np.uint8)
    return out.astype(image.dtype)


def _changed(task: str, clean: np.ndarray, moved: np.ndarray) -> float | None:
    """Share of decisions that differ: the top class, or each label's 0.5 cut; none for regression."""
    if task == "classification":
        return float(np.mean(clean.argmax(axis=1) != moved.argmax(axis=1)))
    if task == "multilabel":
        return float(np.mean((clean >= 0.5) != (moved >= 0.5)))
    return None


def _class_recalls(metrics: dict[str, Any]) -> dict[str, float]:
    return {name: float(row["recall"]) for name, row in metrics.get("per_class", {}).items()}


def summarise(
    task: str,
    clean_metrics: dict[str, Any],
    clean_outputs: np.ndarray,
    results: Sequence[tuple[Perturbation, dict[str, Any], np.ndarray]],
) -> dict[str, Any]:
    """The machine-readable stress report: per perturbation, the headline metric and its change, the share of
    changed decisions, and (classification) the class whose recall fell most; flagged ones listed first."""
    key = HEADLINE.get(task, "accuracy")
    base = clean_metrics.get(key)
    base_recall = _class_recalls(clean_metrics)
    rows = []
    for perturbation, metrics, outputs in results:
        value = metrics.get(key)
        drop = float(base - value) if base is not None and value is not None else None
        changed = _changed(task, clean_outputs, outputs)
        row: dict[str, Any] = {
            "name": perturbation.name,
            "description": perturbation.description,
            key: value,
            "drop": drop,
            "changed": changed,
        }
        recalls = _class_recalls(metrics)
        if recalls:
            worst = min(recalls, key=lambda c: recalls[c] - base_recall[c])
            row["worst_class"] = {"class": worst, "recall": recalls[worst], "clean_recall": base_recall[worst]}
            row["recall"] = recalls
        row["flagged"] = (changed is not None and changed >= CHANGED_WARN) or (drop is not None and drop >= DROP_WARN)
        row["metrics"] = {k: metrics.get(k) for k in ("accuracy", "balanced_accuracy", "auc", "micro_auc", "r2",
                                                        "rmse") if k in metrics}
        rows.append(row)
    return {
        "metric": key,
        "clean": {key: base, "metrics": {k: clean_metrics.get(k) for k in ("n", "accuracy", "balanced_accuracy",
                                                                             "auc", "r2", "rmse")
                                         if k in clean_metrics}, **({"recall": base_recall} if base_recall else {})},
        "thresholds": {"changed": CHANGED_WARN, "drop": DROP_WARN},
        "perturbations": rows,
        "flagged": [r["name"] for r in rows if r["flagged"]],
    }


def warning_lines(report: dict[str, Any]) -> list[str]:
    """One line per flagged perturbation, in words a user acts on."""
    lines = []
    key = report["metric"]
    for row in report["perturbations"]:
        if not row["flagged"]:
            continue
        parts = []
        if row["changed"] is not None:
            parts.append(f"changes {row['changed']:.0%} of predictions")
        if row["drop"] is not None:
            parts.append(f"{key.replace('_', ' ')} {report['clean'][key]:.3f} -> {row[key]:.3f}")
        worst = row.get("worst_class")
        if worst and worst["recall"] < worst["clean_recall"]:
            parts.append(f"{worst['class']} recall {worst['clean_recall']:.2f} -> {worst['recall']:.2f}")
        lines.append(f"warning: {row['name']} ({row['description']}) {', '.join(parts)}: "
                     "the model leans on it; add it to the augmentation or check how the data was collected")
    return lines
