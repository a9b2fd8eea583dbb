"""The covariate-shift check: a split like train scores ~0.5, a shifted one near 1, a class mix alone 0.5."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tlcore.metrics.shift import shift_report, shift_warning, split_shift


def blobs(n: int, classes: list[float], offset: float = 0.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points per class weight; class k is centred at 3*k on every axis, plus ``offset`` on axis 0."""
    rng = np.random.default_rng(seed)
    counts = [int(n * w) for w in classes]
    y = np.repeat(np.arange(len(counts)), counts)
    x = rng.normal(size=(len(y), 16)) + 3.0 * y[:, None]
    x[:, 0] += offset
    return x.astype(np.float32), y


def test_a_split_drawn_like_train_is_not_told_apart() -> None:
    xa, ya = blobs(300, [0.5, 0.5], seed=1)
    xb, yb = blobs(300, [0.5, 0.5], seed=2)
    out = split_shift(xa, xb, ya, yb, ["a", "b"], seed=0)
    assert out is not None
    assert 0.35 < out["auc"] < 0.65
    assert set(out["per_class_auc"]) == {"a", "b"} and out["images_per_side"] == {"a": 150, "b": 150}


def test_shifted_images_are_told_apart() -> None:
    xa, ya = blobs(300, [0.5, 0.5], seed=1)
    xb, yb = blobs(300, [0.5, 0.5], offset=3.0, seed=2)  # best possible AUC: Phi(3 / sqrt 2) = 0.98
    out = split_shift(xa, xb, ya, yb, ["a", "b"], seed=0)
    assert out is not None and out["auc"] > 0.9


def test_a_different_class_mix_alone_is_not_a_shift() -> None:
    # train 80/20, test 20/80: pooled, "test" is predictable from the class; within each class it is not
    xa, ya = blobs(500, [0.8, 0.2], seed=1)
    xb, yb = blobs(500, [0.2, 0.8], seed=2)
    within = split_shift(xa, xb, ya, yb, ["a", "b"], seed=0)
    pooled = split_shift(xa, xb, None, None, None, seed=0)
    assert within is not None and pooled is not None
    assert within["auc"] < 0.65
    assert pooled["auc"] > 0.75


def test_too_few_images_give_none_and_no_warning() -> None:
    xa, ya = blobs(300, [0.5, 0.5], seed=1)
    xb, yb = blobs(12, [0.5, 0.5], seed=2)  # 6 per class, under the 10 needed
    report = shift_report({"train": xa, "test": xb}, {"train": ya, "test": yb}, ["a", "b"], seed=0)
    assert report["test"] is None
    assert shift_warning(report) is None


def test_warning_names_a_shift_confined_to_one_class() -> None:
    def report(auc: float, per_class: dict[str, float], n: int = 200) -> dict[str, object]:
        return {"val": {"auc": 0.52}, "test": {"auc": auc, "per_class_auc": per_class,
                                                "images_per_side": dict.fromkeys(per_class, n)}}

    assert shift_warning(report(0.55, {"normal": 0.6, "pneumonia": 0.5})) is None
    line = shift_warning(report(0.74, {"normal": 0.9, "pneumonia": 0.64}))
    assert line is not None
    assert "AUC 0.74 (val: 0.52)" in line and "class normal (0.90)" in line and "pneumonia" not in line
    assert shift_warning(report(0.74, {"normal": 0.9, "pneumonia": 0.64}, n=20)) is None  # too few to say
    overall = shift_warning(report(0.8, {"normal": 0.79, "pneumonia": 0.79}))
    assert overall is not None and "most in class" not in overall
    assert shift_warning(report(0.8, {"normal": 0.79, "pneumonia": 0.79}, n=20)) is None  # 40 images: noise


def test_runs_report_the_shift_and_warn_when_test_comes_from_elsewhere(
    tl: Callable[..., tuple[int, str, str]], make_folder: Callable[..., Path], tmp_path: Path, fast: list[str]
) -> None:
    same = make_folder(tmp_path / "same", {"train": 12, "val": 3, "test": 12})
    code, out, err = tl("train", "--preset", "feature-extraction", "--data", same, "--output", tmp_path / "a", *fast)
    assert code == 0, err
    shift = json.loads((tmp_path / "a" / "report.json").read_text())["shift"]
    assert shift["val"] is None  # 3 images per class: too few to compare
    assert shift["test"]["auc"] < 0.75 and set(shift["test"]["per_class_auc"]) == {"blue", "green", "red"}
    assert "differ from the training images" not in out + err

    # another "site": the same classes, photographed darker
    other = make_folder(tmp_path / "other", {"train": 20, "val": 3})
    make_folder(other, {"test": 20}, classes={"red": (70, 12, 12), "green": (12, 63, 17), "blue": (13, 17, 70)})
    code, out, err = tl("train", "--preset", "feature-extraction", "--data", other, "--output", tmp_path / "b", *fast)
    assert code == 0, err
    shift = json.loads((tmp_path / "b" / "report.json").read_text())["shift"]
    assert shift["test"]["auc"] > 0.9
    assert "test images differ from the training images" in " ".join((out + err).split())

    code, _, err = tl("train", "--preset", "feature-extraction", "--data", other, "--output", tmp_path / "c", *fast,
                      "--set", "shift_check=false")
    assert code == 0, err
    assert json.loads((tmp_path / "c" / "report.json").read_text())["shift"] is None
