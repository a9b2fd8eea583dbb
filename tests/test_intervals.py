"""Bootstrap intervals of test metrics: point estimates equal scikit-learn's, intervals are honest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from tlcore.metrics.intervals import bootstrap_intervals, stratified_resamples


def scored(n: int, k: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities of a decent but imperfect classifier."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_binary_estimates_match_sklearn_and_lie_inside_their_intervals() -> None:
    y, proba = scored(300)
    out = bootstrap_intervals(y, proba, ["neg", "pos"], n_boot=500)
    m = out["metrics"]
    pred = proba.argmax(axis=1)
    assert m["accuracy"]["estimate"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"]["estimate"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["auc"]["estimate"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert m["sensitivity"]["estimate"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))
    assert m["specificity"]["estimate"] == pytest.approx(skm.recall_score(y, pred, pos_label=0))
    for name, ci in m.items():
        assert ci["low"] <= ci["estimate"] <= ci["high"], name
        assert ci["high"] - ci["low"] > 0.01, name
    assert (out["n_boot"], out["level"], out["decision"]) == (500, 0.95, "argmax")


def test_intervals_narrow_as_the_test_set_grows() -> None:
    widths = []
    for n in (100, 1600):
        y, proba = scored(n, seed=3)
        m = bootstrap_intervals(y, proba, ["a", "b"], n_boot=400)["metrics"]
        widths.append({k: m[k]["high"] - m[k]["low"] for k in m})
    for name in widths[0]:
        # the width shrinks roughly like 1/sqrt(n): 16x the images, about a quarter of the width
        assert widths[1][name] < 0.5 * widths[0][name], name


def test_fixed_seed_is_reproducible_and_another_seed_differs() -> None:
    y, proba = scored(200)
    a = bootstrap_intervals(y, proba, ["a", "b"], n_boot=200, seed=1)
    assert a == bootstrap_intervals(y, proba, ["a", "b"], n_boot=200, seed=1)
    assert a["metrics"]["auc"] != bootstrap_intervals(y, proba, ["a", "b"], n_boot=200, seed=2)["metrics"]["auc"]


def test_resampling_is_stratified() -> None:
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    idx = stratified_resamples(y, 50, np.random.default_rng(0))
    assert idx.shape == (50, 15)
    np.testing.assert_array_equal(y[idx], np.broadcast_to(y, (50, 15)))  # every resample keeps the class counts


def test_multiclass_macro_and_per_class_auc() -> None:
    y, proba = scored(400, k=4, seed=5)
    out = bootstrap_intervals(y, proba, list("abcd"), n_boot=200)
    assert out["metrics"]["auc"]["estimate"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert set(out["per_class_auc"]) == set("abcd")
    auc_b = skm.roc_auc_score(y == 1, proba[:, 1])
    assert out["per_class_auc"]["b"]["estimate"] == pytest.approx(auc_b)
    assert out["per_class_auc"]["b"]["low"] <= auc_b <= out["per_class_auc"]["b"]["high"]
    # one-vs-rest sensitivity macro-averaged is the balanced accuracy
    m = out["metrics"]
    assert m["sensitivity"]["estimate"] == pytest.approx(m["balanced_accuracy"]["estimate"])


def test_a_threshold_changes_the_decision() -> None:
    y, proba = scored(300)
    strict = bootstrap_intervals(y, proba, ["neg", "pos"], n_boot=100, threshold=0.9)
    lenient = bootstrap_intervals(y, proba, ["neg", "pos"], n_boot=100, threshold=0.1)
    assert strict["decision"] == "p(pos) >= 0.9"
    assert strict["metrics"]["sensitivity"]["estimate"] < lenient["metrics"]["sensitivity"]["estimate"]
    assert strict["metrics"]["specificity"]["estimate"] > lenient["metrics"]["specificity"]["estimate"]
    assert strict["metrics"]["auc"] == lenient["metrics"]["auc"]  # threshold-free


def test_an_absent_class_leaves_its_auc_undefined() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    proba = np.full((6, 3), 1 / 3)
    out = bootstrap_intervals(y, proba, ["a", "b", "c"], n_boot=20)
    assert out["per_class_auc"]["c"] == {"estimate": None, "low": None, "high": None}
    assert out["metrics"]["auc"]["estimate"] is None


def test_multilabel_per_label_auc_intervals_leave_missing_labels_out() -> None:
    from tlcore.metrics.intervals import multilabel_intervals
    from tlcore.metrics.multilabel import multilabel_metrics

    rng = np.random.default_rng(7)
    y = (rng.random((400, 3)) < 0.3).astype(float)
    y[rng.random((400, 3)) < 0.15] = np.nan  # missing labels (CheXpert's uncertain, ignored)
    proba = np.clip(0.35 * np.nan_to_num(y) + 0.65 * rng.random((400, 3)), 0, 1)
    proba[np.isnan(y)] = 1.0  # scores of missing labels must not count
    out = multilabel_intervals(y, proba, ["edema", "effusion", "mass"], n_boot=300)
    reference = multilabel_metrics(y, proba, ["edema", "effusion", "mass"])
    for name, ci in out["per_label_auc"].items():
        assert ci["estimate"] == pytest.approx(reference["per_label"][name]["auc"])
        assert ci["low"] < ci["estimate"] < ci["high"]
    assert out["metrics"]["auc"]["estimate"] == pytest.approx(reference["auc"])
    assert out["metrics"]["auc"]["high"] - out["metrics"]["auc"]["low"] < out["per_label_auc"]["mass"]["high"] - out[
        "per_label_auc"]["mass"]["low"]  # the mean of three labels is known better than one label
