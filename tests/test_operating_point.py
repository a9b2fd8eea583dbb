"""Operating points: the threshold is chosen on val, never on test, and test is scored with it."""

from __future__ import annotations

import numpy as np
import pytest

from tlcore.config import build_config
from tlcore.errors import ConfigError
from tlcore.metrics.operating_point import (
    choose_threshold,
    evaluation_sections,
    operating_point,
    parse_rule,
    positive_index,
    rates_at,
)


def two_class(n: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + shift * (2 * y - 1))))
    return y, np.c_[1 - p, p]


def test_rules_parse_and_bad_rules_are_refused() -> None:
    assert parse_rule("youden") == ("youden", None)
    assert parse_rule("sensitivity:0.95") == ("sensitivity", 0.95)
    assert parse_rule("specificity:.9") == ("specificity", 0.9)
    for bad in ("sensitivity", "sensitivity:1.5", "recall:0.9", ""):
        with pytest.raises(ValueError):
            parse_rule(bad)
    assert build_config({}, {"operating_point": "sensitivity:0.9"}, "x").operating_point == "sensitivity:0.9"
    with pytest.raises(ConfigError, match="operating_point"):
        build_config({}, {"operating_point": "f1"}, "x")


def test_youden_threshold_maximises_sensitivity_plus_specificity() -> None:
    positive = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    scores = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9])
    t = choose_threshold(positive, scores)
    r = rates_at(positive, scores, t)
    best = max(
        rates_at(positive, scores, s)["sensitivity"] + rates_at(positive, scores, s)["specificity"] for s in scores
    )
    assert r["sensitivity"] + r["specificity"] == pytest.approx(best)
    assert t == pytest.approx(0.7)  # ties: the highest threshold (fewest false positives) wins


def test_target_sensitivity_is_reached_with_the_highest_threshold() -> None:
    positive = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05, 0.4, 0.35])
    t = choose_threshold(positive, scores, "sensitivity:0.8")
    assert t == pytest.approx(0.4)
    assert rates_at(positive, scores, t)["sensitivity"] == pytest.approx(0.8)
    t_spec = choose_threshold(positive, scores, "specificity:1.0")
    assert rates_at(positive, scores, t_spec)["specificity"] == 1.0
    assert t_spec == pytest.approx(0.7)


def test_rates_at_counts_ppv_and_npv() -> None:
    positive = np.array([1, 1, 0, 0, 0], dtype=bool)
    r = rates_at(positive, np.array([0.9, 0.2, 0.8, 0.1, 0.3]), 0.5)
    assert (r["tp"], r["fn"], r["fp"], r["tn"]) == (1, 1, 1, 2)
    assert r["ppv"] == pytest.approx(0.5)
    assert r["npv"] == pytest.approx(2 / 3)
    assert rates_at(positive, np.zeros(5), 0.5)["ppv"] is None  # nothing called positive


def test_threshold_comes_from_val_and_is_applied_unchanged_to_test() -> None:
    y_val, p_val = two_class(300, 1.0, seed=0)
    y_test, p_test = two_class(400, 1.0, seed=1)
    p_test_shifted = p_test.copy()
    p_test_shifted[:, 1] = p_test[:, 1] ** 3  # a test set the model is miscalibrated on
    p_test_shifted[:, 0] = 1 - p_test_shifted[:, 1]
    a = operating_point(y_val, p_val, y_test, p_test, ["neg", "pos"], n_boot=100)
    b = operating_point(y_val, p_val, y_test, p_test_shifted, ["neg", "pos"], n_boot=100)
    assert a is not None and b is not None
    assert a["threshold"] == b["threshold"] == choose_threshold(y_val == 1, p_val[:, 1])
    assert a["chosen_on"] == "val"
    assert a["test"] == rates_at(y_test == 1, p_test[:, 1], a["threshold"])
    assert b["test"]["sensitivity"] < a["test"]["sensitivity"]  # test scores never move the threshold
    ci = a["test_intervals"]["sensitivity"]
    assert ci["low"] <= a["test"]["sensitivity"] <= ci["high"]


def test_positive_class_names_the_class_whose_sensitivity_is_reported() -> None:
    y_val, p_val = two_class(200, 1.0, seed=2)
    out = operating_point(y_val, p_val, y_val, p_val, ["malignant", "benign"], positive_class="malignant", n_boot=0)
    assert out is not None and out["positive_class"] == "malignant"
    assert out["test"]["tp"] + out["test"]["fn"] == int((y_val == 0).sum())
    assert "test_intervals" not in out
    other = operating_point(y_val, p_val, y_val, p_val, ["a", "b"], positive_class="malignant", n_boot=0)
    assert other is not None and other["positive_class"] == "b"  # a preset's class this data does not have
    assert "not one of the classes" in other["note"]
    with pytest.raises(ValueError, match="not one of the classes"):
        positive_index(["a", "b"], "c")


def test_sections_for_binary_multiclass_and_a_one_class_val() -> None:
    y, p = two_class(200, 1.0, seed=4)
    both = evaluation_sections(y, p, y, p, ["a", "b"], n_boot=50)
    assert set(both) == {"operating_point", "intervals"}
    rng = np.random.default_rng(0)
    p3 = rng.dirichlet(np.ones(3), 90)
    multi = evaluation_sections(np.arange(90) % 3, p3, np.arange(90) % 3, p3, ["a", "b", "c"], n_boot=50)
    assert set(multi) == {"intervals"} and set(multi["intervals"]["per_class_auc"]) == {"a", "b", "c"}
    one_class = evaluation_sections(np.zeros(10, int), p[:10], y, p, ["a", "b"], n_boot=50)
    assert one_class["operating_point"]["threshold"] is None
    assert "val has no images of class 'b'" in one_class["operating_point"]["note"]  # which class, not a bare error
    off = evaluation_sections(y, p, y, p, ["a", "b"], n_boot=0)  # bootstrap=0: no intervals anywhere
    assert set(off) == {"operating_point"} and "test_intervals" not in off["operating_point"]
    assert off["operating_point"]["threshold"] == both["operating_point"]["threshold"]
