"""Can a linear classifier tell the training images from another split's? A covariate-shift check.

Each split's images are described by the pretrained backbone's features (computed before any
fine-tuning, on the evaluation view). A logistic regression is cross-validated on "train or
other split?". An AUC near 0.5 means the split looks like training data. An AUC near 1 means its
images differ (another scanner, hospital, season or camera), and a model selected on val may score
lower on it.

The check runs within each class and averages the AUCs, weighted by the class's share of the
compared images. That way a different class mix alone (more normal films in test than in train)
does not read as a shift. Labels only say which images to compare; nothing here is tuned or selected.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Above this AUC the run warns that the split's images differ from the training images.
WARN_AUC = 0.75
#: ... (with at least MIN_PER_SIDE_TO_WARN images per side in all), or when one class with that many
#: images per side reaches this AUC.
WARN_CLASS_AUC = 0.8
MIN_PER_SIDE_TO_WARN = 50
#: Images per side and class, at most: enough for a stable AUC, cheap on 2 cores.
MAX_PER_SIDE = 1000
#: A class with fewer images than this on either side is left out of the average.
MIN_PER_SIDE = 10


def _domain_auc(a: np.ndarray, b: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([a, b]).astype(np.float64)
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def _sample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= n else x[rng.choice(len(x), n, replace=False)]


def split_shift(
    train: np.ndarray,
    other: np.ndarray,
    train_classes: np.ndarray | None,
    other_classes: np.ndarray | None,
    class_names: list[str] | None,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Cross-validated AUC of train-vs-``other`` on features; per class when class indices are given.

    Returns None when too few images are left to compare."""
    rng = np.random.default_rng(seed)
    if train_classes is None or other_classes is None or class_names is None:
        groups = [("all", train, other)]
    else:
        groups = [(name, train[train_classes == k], other[other_classes == k]) for k, name in enumerate(class_names)]
    per_class: dict[str, float] = {}
    weights: list[int] = []
    for name, a, b in groups:
        n = min(len(a), len(b), MAX_PER_SIDE)
        if n < MIN_PER_SIDE:
            continue
        per_class[name] = _domain_auc(_sample(a, n, rng), _sample(b, n, rng), seed)
        weights.append(n)
    if not per_class:
        return None
    auc = float(np.average(list(per_class.values()), weights=weights))
    out: dict[str, Any] = {"auc": auc, "images_per_side": dict(zip(per_class, weights, strict=True))}
    if len(groups) > 1:
        out["per_class_auc"] = per_class
    return out


def shift_report(
    features: dict[str, np.ndarray], classes: dict[str, np.ndarray] | None, class_names: list[str] | None, seed: int
) -> dict[str, Any]:
    """``{"val": ..., "test": ..., "method": ...}`` for the splits in ``features`` besides train."""
    report: dict[str, Any] = {
        "method": "5-fold cross-validated AUC of a logistic regression telling train from the split, on the "
        "pretrained backbone's features of the eval view, within each class (weighted mean); 0.5: alike",
        "warn_above": {"auc": WARN_AUC, "class_auc": WARN_CLASS_AUC},
    }
    for split in ("val", "test"):
        if split in features:
            report[split] = split_shift(
                features["train"],
                features[split],
                classes["train"] if classes else None,
                classes[split] if classes else None,
                class_names,
                seed,
            )
    return report


def shift_warning(report: dict[str, Any]) -> str | None:
    """One line when test images differ from train images: overall, or within a class with enough images
    (a shift confined to one class, such as the normal films, hides in the average)."""
    test = report.get("test")
    if not test:
        return None
    counts = test.get("images_per_side", {})
    shifted = {c: a for c, a in test.get("per_class_auc", {}).items()
               if a >= WARN_CLASS_AUC and counts.get(c, 0) >= MIN_PER_SIDE_TO_WARN}
    # an AUC from a few dozen images swings by 0.1 or more: below that count only the numbers are reported
    enough = sum(counts.values()) >= MIN_PER_SIDE_TO_WARN
    if (test["auc"] < WARN_AUC or not enough) and not shifted:
        return None
    val = report.get("val")
    versus = f" (val: {val['auc']:.2f})" if val else ""
    where = f"; most in class {', '.join(f'{c} ({a:.2f})' for c, a in shifted.items())}" if shifted else ""
    return (
        f"test images differ from the training images: a linear probe tells them apart with AUC {test['auc']:.2f}"
        f"{versus}{where}; expect test scores below val (report.json: shift)"
    )
