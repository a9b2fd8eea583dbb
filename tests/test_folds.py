"""Grouped k-fold cross-validation and the fold ensemble (``tl train --folds K``), on tiny generated data.

A random-initialised tiny timm model (``test_resnet``, 32 px) keeps each fold to seconds. The checks:
groups never straddle two folds, every train+val image is scored out-of-fold exactly once, and the
ensemble that ``tl evaluate`` / ``tl predict`` / ``tl export`` load reproduces the run's own test scores.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tests import test_tasks
from tlcore.errors import ConfigError
from tlcore.models.ensemble import FoldEnsemble
from tlcore.specs import LabeledDataset, Record
from tlcore.training import folds as folds_module
from tlcore.training.folds import assign_folds

tl_with = test_tasks.tl_with  # the same fixture: `tl` in-process with this module's plugin host

#: Feature extraction on test_tasks' tiny random model: a fold is a feature pass and a head fit.
FE = {"technique": "feature-extraction", "head": "logistic-regression"}
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def patients(root: Path, rng: np.random.Generator) -> LabeledDataset:
    """3 colour classes; train+val hold 30 patients of 2-3 images each (one class per patient)."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Record]] = {"train": [], "val": [], "test": []}
    for p in range(36):
        cls = p % 3
        split = "test" if p >= 30 else ("val" if p % 5 == 0 else "train")
        for i in range(2 + p % 2):
            pixels = np.clip(np.asarray(COLOURS[cls])[None, None, :] + rng.normal(0, 40, (32, 32, 3)), 0, 255)
            path = root / f"p{p:02d}_{i}.png"
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            splits[split].append(Record(str(path), cls, group=f"patient{p:02d}"))
    return LabeledDataset(["red", "green", "blue"], splits, root=root)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("folds")
    return test_tasks.make_world(base, {"patients": patients(base / "patients", np.random.default_rng(0))})


def train(world: dict[str, Any], name: str, run: str, **settings: Any) -> dict[str, Any]:
    return test_tasks.train(world, name, run, **{**FE, **settings})


def _val_paths(fold_dir: Path) -> list[str]:
    with (fold_dir / "predictions.csv").open() as fh:
        return [row["path"] for row in csv.DictReader(fh) if row["split"] == "val"]


# -- fold assignment -----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_folds_keep_each_group_whole_cover_every_record_and_are_seeded(task: str) -> None:
    rng = np.random.default_rng(1)
    records = [Record(f"img{i}.png", int(rng.integers(0, 2)) if task == "classification" else float(i),
                      group=f"g{i // 3}") for i in range(60)]  # fmt: skip
    fold = assign_folds(records, 4, task, seed=0)
    assert set(fold.tolist()) == {0, 1, 2, 3}
    by_group: dict[str, set[int]] = {}
    for r, f in zip(records, fold, strict=True):
        by_group.setdefault(str(r.group), set()).add(int(f))
    assert all(len(f) == 1 for f in by_group.values())  # no group in two folds
    sizes = np.bincount(fold)
    assert sizes.min() >= 9 and sizes.max() <= 21  # 60 images in 4 folds: roughly even
    assert (assign_folds(records, 4, task, seed=0) == fold).all()
    assert not (assign_folds(records, 4, task, seed=1) == fold).all()


def test_too_few_groups_for_the_folds_is_a_one_line_error() -> None:
    records = [Record(f"img{i}.png", i % 2, group=f"g{i % 3}") for i in range(12)]
    with pytest.raises(ConfigError, match=r"folds=5 needs at least 5 groups.*there are 3"):
        assign_folds(records, 5, "classification", seed=0)


# -- the fold ensemble as a module ---------------------------------------------------------------------


class Scaled(nn.Module):
    """A fixed 'model': a per-channel mean of its input times ``w``."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x.mean(dim=(2, 3))[:, :1]


def test_ensemble_gives_each_member_its_own_input_and_averages_regression_in_target_units() -> None:
    from types import SimpleNamespace

    metas = [
        SimpleNamespace(classes=["y"], in_chans=1, input_stats={"mean": [10.0], "std": [2.0]},
                        target_norm={"mean": [100.0], "std": [5.0]}),
        SimpleNamespace(classes=["y"], in_chans=1, input_stats={"mean": [12.0], "std": [4.0]},
                        target_norm={"mean": [90.0], "std": [10.0]}),
    ]  # fmt: skip
    ensemble = FoldEnsemble([Scaled(1.0), Scaled(2.0)], metas, "regression")
    raw = torch.full((1, 1, 4, 4), 16.0)
    x = (raw - 10.0) / 2.0  # normalised the first member's way
    # member 1: z = (16-10)/2 = 3 -> 100 + 5*3 = 115; member 2: z = 2 * (16-12)/4 = 2 -> 90 + 10*2 = 110
    out = ensemble(x)
    assert out.shape == (1, 1)
    assert float(out) * 5.0 + 100.0 == pytest.approx((115 + 110) / 2)


def test_ensemble_averages_class_probabilities() -> None:
    from types import SimpleNamespace

    class Fixed(nn.Module):
        def __init__(self, logits: list[float]) -> None:
            super().__init__()
            self.logits = torch.tensor([logits])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logits.expand(len(x), -1)

    metas = [SimpleNamespace(classes=["a", "b"], in_chans=3, input_stats=None, target_norm=None)] * 2
    ensemble = FoldEnsemble([Fixed([2.0, 0.0]), Fixed([0.0, 1.0])], metas, "classification")
    p = torch.softmax(ensemble(torch.zeros(2, 3, 8, 8)), dim=1)
    expected = (torch.softmax(torch.tensor([2.0, 0.0]), 0) + torch.softmax(torch.tensor([0.0, 1.0]), 0)) / 2
    assert torch.allclose(p[0], expected, atol=1e-6)


# -- end to end ------------------------------------------------------------------------------------------


def test_grouped_folds_score_every_image_out_of_fold_and_the_ensemble_is_what_tl_uses(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]]
) -> None:
    report = train(world, "patients", "cls", folds=3)
    run = world["base"] / "cls"
    ds = world["datasets"]["patients"]
    pool = ds.splits["train"] + ds.splits["val"]
    group_of = {r.path: r.group for r in pool}

    folds = report["folds"]
    assert folds["k"] == 3 and folds["members"] == ["folds/fold-1", "folds/fold-2", "folds/fold-3"]
    assert sum(f["val"] for f in folds["per_fold"]) == len(pool)
    assert set(folds["cv"]["balanced_accuracy"]) == {"mean", "std"}
    per_fold = [f["val_metrics"]["balanced_accuracy"] for f in folds["per_fold"]]
    assert folds["cv"]["balanced_accuracy"]["mean"] == pytest.approx(float(np.mean(per_fold)))
    assert report["val"]["n"] == len(pool)  # out-of-fold: every train+val image once
    assert report["test"]["n"] == len(ds.splits["test"])

    held_out = [_val_paths(run / m) for m in folds["members"]]
    assert sorted(p for paths in held_out for p in paths) == sorted(group_of)  # a partition of the pool
    fold_of_group: dict[str | None, int] = {}
    for i, paths in enumerate(held_out):
        for p in paths:
            assert fold_of_group.setdefault(group_of[p], i) == i  # a patient's images share one fold
    meta = json.loads((run / "model.json").read_text())
    assert meta["members"] == folds["members"] and not (run / "model.safetensors").exists()

    code, out = tl_with("evaluate", run, "--data", ds.root, "--split", "test")
    assert code == 0, out
    scored = json.loads(out.strip().splitlines()[-1])
    assert scored["accuracy"] == report["test"]["accuracy"]
    assert scored["auc"] == pytest.approx(report["test"]["auc"], rel=1e-9)  # the same path, the same numbers

    with (run / "predictions.csv").open() as fh:
        row = next(r for r in csv.DictReader(fh) if r["split"] == "test")
    code, out = tl_with("predict", run, row["path"], "--top-k", "3")
    assert code == 0, out
    predicted = {p["label"]: p["probability"] for p in json.loads(out.strip().splitlines()[-1])["predictions"]}
    for name in ds.classes:
        assert predicted[name] == pytest.approx(float(row[f"proba_{name}"]), abs=1e-5)

    code, out = tl_with("export", run, "--format", "onnx")
    assert code == 0, out
    exported = json.loads(out.strip().splitlines()[-1])
    assert exported["same_predictions"] is True and exported["max_abs_diff"] < 1e-3


@pytest.mark.parametrize(("name", "metric"), [("squares", "auc"), ("bands", "rmse")])
def test_multilabel_and_regression_fold_ensembles_reproduce_their_test_scores(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]], name: str, metric: str
) -> None:
    head = "logistic-regression" if name == "squares" else "linear"
    report = train(world, name, f"{name}-folds", folds=2, head=head)
    assert report["folds"]["k"] == 2 and metric in report["folds"]["cv"]
    assert report["val"]["n"] == sum(len(world["datasets"][name].splits[s]) for s in ("train", "val"))
    assert math.isfinite(report["test"][metric])
    code, out = tl_with("evaluate", world["base"] / f"{name}-folds", "--data", world["datasets"][name].root,
                        "--split", "test")  # fmt: skip
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])[metric] == pytest.approx(report["test"][metric], rel=1e-9)


def test_an_interrupted_fold_run_resumes_without_retraining_finished_folds(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = world["datasets"]["patients"]
    run = world["base"] / "resumed"
    real = folds_module._train_fold
    calls: list[Path] = []

    def stop_at_second(*args: Any) -> dict[str, Any]:
        calls.append(args[3])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(folds_module, "_train_fold", stop_at_second)
    fast = ["--set", "backbone=test_resnet", "--set", "weights=none", "--set", "image_size=32", "--set",
            "progress=false", "--set", "bootstrap=0", "--set", "adapter=tasks/patients", "--set",
            f"cache_dir={world['cache']}"]  # fmt: skip
    code, out = tl_with("train", "--preset", "feature-extraction", "--data", ds.root, "--output", run, "--folds", "3",
                        *fast)  # fmt: skip
    assert code == 130 and "interrupted" in out  # Ctrl-C during the second fold
    first_id = json.loads((run / "folds" / "fold-1" / "report.json").read_text())["run_id"]
    code, out = tl_with("evaluate", run, "--data", ds.root)
    assert code == 2 and "unfinished" in out  # never a half ensemble

    monkeypatch.setattr(folds_module, "_train_fold", real)
    code, out = tl_with("train", "--resume", run)
    assert code == 0, out
    assert json.loads((run / "folds" / "fold-1" / "report.json").read_text())["run_id"] == first_id
    assert json.loads((run / "report.json").read_text())["folds"]["k"] == 3

    code, out = tl_with("train", "--preset", "feature-extraction", "--data", ds.root, "--output", run, "--folds",
                        "2", "--overwrite", *fast)  # fmt: skip
    assert code == 0, out
    assert sorted(p.name for p in (run / "folds").iterdir()) == ["fold-1", "fold-2"]  # the old fold-3 is gone
