"""A val split too small to choose on is named before training (tlcore.data.val_size), once, with the way out."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tlcore.data.val_size import MIN_GROUPS, MIN_IMAGES, small_val_classes, small_val_warning
from tlcore.errors import TlcoreWarning
from tlcore.specs import LabeledDataset, Record, Task

Tl = Callable[..., tuple[int, str, str]]


def dataset(val: list[Record], classes: list[str], task: Task = "classification") -> LabeledDataset:
    return LabeledDataset(classes, {"train": list(val), "val": val, "test": list(val)}, task=task)


def images(n: int, target: Any, group: Callable[[int], str | None] = lambda i: None) -> list[Record]:
    return [Record(f"{target}-{i}.png", target, group=group(i)) for i in range(n)]


def test_a_class_with_few_val_images_is_named_with_what_one_image_is_worth() -> None:
    ds = dataset(images(17, 0) + images(40, 1), ["benign", "malignant"])
    (entry,) = small_val_classes(ds)
    assert entry == {"class": "benign", "images": 17, "groups": None}
    line = small_val_warning([entry], ds)
    assert line is not None
    # 1 / (2 classes x 17 images): what one benign image moves balanced accuracy by.
    assert "val images: 'benign' 17)" in line and "by 0.029;" in line and "--folds 5" in line
    assert small_val_classes(dataset(images(MIN_IMAGES, 0) + images(40, 1), ["a", "b"])) == []


def test_enough_images_from_too_few_patients_is_still_too_few() -> None:
    three_scans = images(30, 0, group=lambda i: f"scan{i % 3}")
    many = images(30, 1, group=lambda i: f"patient{i}")
    ds = dataset(three_scans + many, ["benign", "normal"])
    assert small_val_classes(ds) == [{"class": "benign", "images": 30, "groups": 3}]
    line = small_val_warning(small_val_classes(ds), ds)
    assert line is not None and "'benign' 30 from 3 groups" in line
    # An image without a group is its own group: MIN_GROUPS ungrouped images are enough groups.
    mixed = images(MIN_IMAGES, 0, group=lambda i: "scan" if i < MIN_IMAGES - MIN_GROUPS + 1 else None)
    assert small_val_classes(dataset(mixed + many, ["benign", "normal"])) == []


def test_multilabel_counts_positives_and_regression_the_whole_split() -> None:
    rows = [Record(f"{i}.png", (1.0, float("nan") if i % 2 else 0.0)) for i in range(25)]
    rows += [Record(f"x{i}.png", (0.0, 1.0)) for i in range(3)]
    ds = dataset(rows, ["effusion", "nodule"], task="multilabel")
    assert small_val_classes(ds) == [{"class": "nodule", "images": 3, "groups": None}]
    line = small_val_warning(small_val_classes(ds), ds)
    assert line is not None and "positive val images: 'nodule' 3" in line and "balanced accuracy" not in line
    few = dataset([Record(f"{i}.png", (float(i),)) for i in range(10)], ["age"], task="regression")
    assert small_val_classes(few) == [{"class": "(all targets)", "images": 10, "groups": None}]
    enough = dataset([Record(f"{i}.png", (float(i),)) for i in range(MIN_IMAGES)], ["age"], task="regression")
    assert small_val_classes(enough) == [] and small_val_warning([], enough) is None


def test_training_warns_once_and_lists_the_classes_in_report_json(
    tl: Tl, tmp_path: Path, make_folder: Callable[..., Path]
) -> None:
    root = make_folder(tmp_path / "d", {"train": 4, "val": 2, "test": 2})
    fast = ["--set", "image_size=32", "--set", "batch_size=8", "--set", "progress=false", "--set", "bootstrap=0"]
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", root, "--output", tmp_path / "run", *fast)
    assert code == 0, err
    lines = [line for line in err.splitlines() if "small to choose on" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: the val split is small to choose on"), err
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    small = report["data"]["small_val"]
    assert [e["images"] for e in small] == [2] * len(report["data"]["classes"])


def said_while(train: Callable[[], dict[str, Any]]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train()
    return [str(w.message) for w in caught if issubclass(w.category, TlcoreWarning)]


def test_fold_runs_do_not_repeat_it(tmp_path: Path) -> None:
    """The folds answer the warning: neither the K-fold run nor its members warn about a fold's val split."""
    from tests import test_folds, test_tasks

    patients = test_folds.patients(tmp_path / "p", np.random.default_rng(0))  # 2 patients per class in val
    world = test_tasks.make_world(tmp_path, {"patients": patients})
    single = said_while(lambda: test_folds.train(world, "patients", "one"))
    assert sum("small to choose on" in s and "from 2 groups" in s for s in single) == 1, single
    folded = said_while(lambda: test_folds.train(world, "patients", "cv", folds=2))
    assert not any("small to choose on" in s for s in folded), folded
