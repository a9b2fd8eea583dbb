"""Operating points: a decision threshold chosen on validation and applied unchanged to test.

A binary classifier's argmax (threshold 0.5) is rarely where it should operate, but choosing the
threshold on test makes test optimistic. So the threshold is chosen on the validation
probabilities, by Youden's J (max sensitivity + specificity - 1) or as the most specific
threshold that reaches a target sensitivity (or specificity), and test is only scored with it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

from tlcore.config import OPERATING_POINT_RULE
from tlcore.metrics.intervals import bootstrap_intervals


def parse_rule(rule: str) -> tuple[str, float | None]:
    """``"sensitivity:0.95"`` -> ``("sensitivity", 0.95)``; ``"youden"`` -> ``("youden", None)``."""
    if not re.fullmatch(OPERATING_POINT_RULE, rule):
        raise ValueError(f"operating point {rule!r}: expected youden, sensitivity:X or specificity:X (0 <= X <= 1)")
    name, _, target = rule.partition(":")
    return name, float(target) if target else None


def choose_threshold(positive: np.ndarray, scores: np.ndarray, rule: str = "youden") -> float:
    """The threshold (predict positive when ``score >= threshold``) that ``rule`` picks on these scores."""
    name, target = parse_rule(rule)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ValueError("choosing a threshold needs both classes among the scores")
    fpr, tpr, thresholds = roc_curve(positive, scores, drop_intermediate=False)
    # thresholds[0] is +inf (nothing predicted positive); never pick it when a finite one does as well.
    fpr, tpr, thresholds = fpr[1:], tpr[1:], thresholds[1:]
    if name == "youden":
        i = int(np.argmax(tpr - fpr))  # the first, i.e. highest, threshold among ties
    elif name == "sensitivity":
        assert target is not None
        i = int(np.flatnonzero(tpr >= target - 1e-12)[0])  # highest threshold reaching the sensitivity
    else:
        assert target is not None
        ok = np.flatnonzero(1 - fpr >= target - 1e-12)
        i = int(ok[-1]) if len(ok) else 0  # lowest threshold keeping the specificity
    return float(thresholds[i])


def rates_at(positive: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Confusion counts, sensitivity, specificity, PPV and NPV when ``score >= threshold`` means positive."""
    positive = np.asarray(positive, dtype=bool)
    called = np.asarray(scores) >= threshold
    tp, fn = int((called & positive).sum()), int((~called & positive).sum())
    fp, tn = int((called & ~positive).sum()), int((~called & ~positive).sum())

    def ratio(a: int, b: int) -> float | None:
        return a / (a + b) if a + b else None

    sens, spec = ratio(tp, fn), ratio(tn, fp)
    return {
        "n": len(positive),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "sensitivity": sens,
        "specificity": spec,
        "ppv": ratio(tp, fp),
        "npv": ratio(tn, fn),
        "accuracy": (tp + tn) / len(positive) if len(positive) else None,
        "balanced_accuracy": (sens + spec) / 2 if sens is not None and spec is not None else None,
    }


def positive_index(classes: Sequence[str], positive_class: str | None) -> int:
    """The index of the positive class: ``positive_class`` if given, else the second class."""
    if positive_class is None:
        return 1
    if positive_class not in classes:
        raise ValueError(f"positive_class {positive_class!r} is not one of the classes {list(classes)}")
    return list(classes).index(positive_class)


def operating_point(
    y_val: np.ndarray,
    val_proba: np.ndarray,
    y_test: np.ndarray,
    test_proba: np.ndarray,
    classes: Sequence[str],
    rule: str = "youden",
    positive_class: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any] | None:
    """Two classes: the threshold ``rule`` picks on val, and val/test rates at it (test with intervals).

    Returns ``None`` for more than two classes (see the per-class AUCs of :func:`bootstrap_intervals`).
    """
    if len(classes) != 2:
        return None
    note = None
    if positive_class is not None and positive_class not in classes:
        # A preset may name the class that matters (e.g. malignant) for data that calls it otherwise.
        note = f"positive_class {positive_class!r} is not one of the classes; using {classes[1]!r}"
        positive_class = None
    pos = positive_index(classes, positive_class)
    val_pos, test_pos = np.asarray(y_val) == pos, np.asarray(y_test) == pos
    out: dict[str, Any] = {"rule": rule, "positive_class": classes[pos], "chosen_on": "val"}
    if note:
        out["note"] = note
    if val_pos.all() or not val_pos.any():
        absent = classes[1 - pos] if val_pos.all() else classes[pos]
        out.update(
            threshold=None,
            note=f"no threshold chosen: val has no images of class {absent!r}, "
            "and a threshold needs both classes in val",
        )
        return out
    threshold = choose_threshold(val_pos, val_proba[:, pos], rule)
    out["threshold"] = threshold
    out["val"] = rates_at(val_pos, val_proba[:, pos], threshold)
    out["test"] = rates_at(test_pos, test_proba[:, pos], threshold)
    if n_boot and test_pos.any() and not test_pos.all():
        ci = bootstrap_intervals(
            y_test, test_proba, classes, n_boot=n_boot, seed=seed, threshold=threshold, positive=pos
        )["metrics"]
        out["test_intervals"] = {k: ci[k] for k in ("sensitivity", "specificity", "accuracy", "balanced_accuracy")}
    return out


def evaluation_sections(
    y_val: np.ndarray,
    val_proba: np.ndarray,
    y_test: np.ndarray,
    test_proba: np.ndarray,
    classes: Sequence[str],
    rule: str = "youden",
    positive_class: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The report's ``operating_point`` and ``intervals`` sections for a single-label classifier."""
    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices of classes absent from a split
        point = operating_point(y_val, val_proba, y_test, test_proba, classes, rule, positive_class, n_boot, seed)
        if point is not None:
            out["operating_point"] = point
        if n_boot and len(y_test):
            pos = positive_index(classes, positive_class if positive_class in classes else None)
            out["intervals"] = bootstrap_intervals(y_test, test_proba, classes, n_boot=n_boot, seed=seed, positive=pos)
    return out
