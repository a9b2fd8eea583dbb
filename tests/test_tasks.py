"""Multilabel and regression tasks and multi-band float input, end to end on tiny generated data.

A tiny random-initialised timm model (``test_resnet``, weights=none, 32 px) keeps every run to seconds:
its random convolutional features still carry colour, brightness and band-mean information, which is
what the generated targets depend on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as skops_io
import torch
from PIL import Image

import tlcore
from tlcore.config import RunConfig, build_config
from tlcore.data.dataset import channel_stats
from tlcore.data.splits import ensure_splits
from tlcore.data.transforms import light, standard, trivial
from tlcore.errors import ConfigError, DataError, TlcoreError
from tlcore.metrics.multilabel import multilabel_metrics
from tlcore.metrics.regression import regression_metrics
from tlcore.models.heads import logistic_regression_head, svm_head
from tlcore.models.objective import Objective
from tlcore.models.transfer import ESTIMATOR_FILE, _load_estimator, load_meta
from tlcore.plugins import PluginHost, reset_host
from tlcore.specs import AugmentationContext, DatasetAdapter, HeadContext, LabeledDataset, Record
from tlcore.training.probe import fit_sklearn_head
from tlcore.training.run import run_training

SIZES = {"train": 64, "val": 16, "test": 32}
#: Small, quick and quiet; a random-initialised tiny timm model (no weights to load).
BASE = {
    "backbone": "test_resnet",
    "weights": "none",
    "image_size": 32,
    "batch_size": 16,
    "augmentation": "none",
    "progress": False,
    "bootstrap": 0,
}


# -- generated datasets ----------------------------------------------------------------------------


def squares(root: Path, rng: np.random.Generator, missing: float = 0.0) -> LabeledDataset:
    """Grey noise with a red and/or a blue 10 px square: labels ``red``, ``blue``; some labels NaN."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Record]] = {}
    for split, n in SIZES.items():
        records = []
        for i in range(n):
            pixels = rng.normal(120, 15, (32, 32, 3))
            labels = []
            for colour in ((220, 30, 30), (30, 30, 220)):
                present = bool(rng.integers(0, 2))
                if present:
                    y, x = rng.integers(0, 22, 2)
                    pixels[y : y + 10, x : x + 10] = colour
                known = split != "train" or rng.random() >= missing
                labels.append(float(present) if known else math.nan)
            path = root / f"{split}_{i}.png"
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
            records.append(Record(str(path), tuple(labels)))
        splits[split] = records
    return LabeledDataset(["red", "blue"], splits, task="multilabel", root=root)


def brightness(root: Path, rng: np.random.Generator) -> LabeledDataset:
    """Uniform noisy images; the target is their mean brightness (0-255)."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Record]] = {}
    for split, n in SIZES.items():
        records = []
        for i in range(n):
            pixels = np.clip(rng.normal(rng.uniform(30, 220), 10, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = root / f"{split}_{i}.png"
            Image.fromarray(pixels).save(path)
            records.append(Record(str(path), float(pixels.mean())))
        splits[split] = records
    return LabeledDataset(["brightness"], splits, task="regression", root=root)


def band_ratio(arr: np.ndarray) -> float:
    """The target of the 5-band set: a normalised difference of bands 4 and 3, times 100."""
    b3, b4 = float(arr[..., 2].mean()), float(arr[..., 3].mean())
    return 100 * (b4 - b3) / (b4 + b3)


def read_npy(path: str) -> np.ndarray:
    return np.load(path)


def bands(root: Path, rng: np.random.Generator) -> LabeledDataset:
    """32x32x5 float32 reflectance-like arrays (values in the thousands) saved as .npy."""
    root.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[Record]] = {}
    for split, n in SIZES.items():
        records = []
        for i in range(n):
            level = rng.uniform(1000, 2000, 5).astype(np.float32)
            arr = (level[None, None, :] * rng.normal(1, 0.03, (32, 32, 5))).astype(np.float32)
            path = root / f"{split}_{i}.npy"
            np.save(path, arr)
            records.append(Record(str(path), band_ratio(arr)))
        splits[split] = records
    return LabeledDataset(["index"], splits, task="regression", reader=read_npy, root=root, channels=5)


class TaskData:
    """An in-test plugin: one dataset adapter per generated dataset (``tasks/<name>``)."""

    def __init__(self, datasets: Mapping[str, LabeledDataset]) -> None:
        self.datasets = dict(datasets)

    @tlcore.hookimpl
    def register_dataset_adapters(self, register: Callable[[DatasetAdapter], None]) -> None:
        for name in self.datasets:
            register(DatasetAdapter(name=f"tasks/{name}", description=f"generated {name}", load=self._loader(name)))

    def _loader(self, name: str) -> Callable[[Path, Mapping[str, Any]], LabeledDataset]:
        def load(root: Path, options: Mapping[str, Any]) -> LabeledDataset:
            ds = self.datasets[name]  # a fresh copy each time: the engine carves splits in place
            return LabeledDataset(list(ds.classes), {s: list(r) for s, r in ds.splits.items()}, ds.task, ds.reader,
                                  ds.root, ds.channels)  # fmt: skip

        return load


def make_world(base: Path, extra: Mapping[str, LabeledDataset] | None = None, *plugins: Any) -> dict[str, Any]:
    """The three generated task datasets (and ``extra`` ones) behind an in-test plugin, on a fresh host
    that also holds ``plugins``: what the task, fold and one-path tests train on."""
    rng = np.random.default_rng(0)
    datasets = {
        "squares": squares(base / "squares", rng, missing=0.15),
        "brightness": brightness(base / "brightness", rng),
        "bands": bands(base / "bands", rng),
        **(extra or {}),
    }
    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(TaskData(datasets), name="tasks")
    for plugin in plugins:
        assert host.add_plugin(plugin, name=plugin.__name__.rsplit(".", 1)[-1].removeprefix("tlcore_"))
    return {"base": base, "host": host, "datasets": datasets, "cache": base / "features", "runs": {}}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_world(tmp_path_factory.mktemp("tasks"))


def train(world: dict[str, Any], name: str, run: str, **settings: Any) -> dict[str, Any]:
    config = RunConfig(**{**BASE, "adapter": f"tasks/{name}", "cache_dir": str(world["cache"]), **settings})
    return run_training(world["host"], config, str(world["datasets"][name].root), world["base"] / run, None)


@pytest.fixture
def tl_with(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str]]]:
    """Run ``tl`` in-process with the in-test plugin's host; returns (exit code, stdout + stderr)."""
    from tlcore.cli import main

    def run(*argv: Any) -> tuple[int, str]:
        reset_host(world["host"])
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out + err

    yield run
    reset_host(None)


# -- multilabel --------------------------------------------------------------------------------------


def test_multilabel_feature_extraction_learns_with_missing_labels_masked(world: dict[str, Any]) -> None:
    train_labels = np.array([r.target for r in world["datasets"]["squares"].splits["train"]])
    assert np.isnan(train_labels).any()  # the generator really left some labels out
    report = train(world, "squares", "ml-fe", technique="feature-extraction", head="logistic-regression")
    test = report["test"]
    assert report["task"] == {"task": "multilabel", "loss": "bce", "monitor": "auc"}
    assert test["auc"] > 0.8 and test["map"] > 0.8
    assert set(test["per_label"]) == {"red", "blue"}
    for key in ("micro_auc", "macro_f1", "micro_f1", "subset_accuracy", "log_loss"):
        assert test[key] is not None and math.isfinite(test[key]), key
    assert report["data"]["per_class"]["train"]["red"]["missing"] > 0
    meta = json.loads((world["base"] / "ml-fe" / "model.json").read_text())
    assert meta["task"] == "multilabel" and meta["head"] == "linear"  # per-label regressions folded into one layer


def test_multilabel_fine_tuning_learns_and_predict_prints_every_label(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]]
) -> None:
    report = train(world, "squares", "ml-ft", technique="fine-tuning", strategy="full", epochs=8, lr=0.01)
    assert report["test"]["auc"] > 0.8
    run = world["base"] / "ml-ft"
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,train_loss,val_loss,val_auc,val_micro_auc,val_map")
    assert all("nan" not in row for row in rows[1:])  # NaN labels never reach the loss
    records = world["datasets"]["squares"].splits["test"][:4]
    code, out = tl_with("predict", run, *[r.path for r in records])
    assert code == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    for line, record in zip(lines, records, strict=True):
        assert set(line["probabilities"]) == {"red", "blue"}
        assert all(0 <= p <= 1 for p in line["probabilities"].values())
        assert line["labels"] == [k for k, p in line["probabilities"].items() if p >= 0.5]
        assert line["image"] == record.path
    code, out = tl_with("evaluate", run)
    assert code == 0, out
    summary = json.loads(out.splitlines()[-1])
    # Same model, same test images; on a GPU the run predicts in bf16 and evaluate in fp32 on the CPU.
    assert summary["auc"] == pytest.approx(
        report["test"]["auc"], abs=1e-6 if report["environment"]["device"] == "cpu" else 0.02
    )


def test_a_label_with_one_class_in_train_gets_its_prior(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4))
    y = np.stack([(x[:, 0] > 0).astype(np.float32), np.zeros(30, dtype=np.float32)], axis=1)
    y[:5, 0] = np.nan
    objective = Objective("multilabel", ["a", "never"])
    result = fit_sklearn_head(logistic_regression_head(HeadContext(4, 2, "multilabel")), x, y, 2, objective)
    assert result.head is not None  # folded: per-label logistic regressions + a constant row
    proba = result.predict_proba(x)
    assert proba[:, 1].max() < 1e-3
    direct = logistic_regression_head(HeadContext(4, 2, "multilabel")).fit(x[5:], y[5:, 0].astype(int))
    np.testing.assert_allclose(proba[:, 0], direct.predict_proba(x)[:, 1], atol=1e-5)  # fit on the known rows only
    svm = fit_sklearn_head(svm_head(HeadContext(4, 2, "multilabel")), x, y, 2, objective)
    assert svm.head is None and isinstance(svm.estimator, list) and len(svm.estimator) == 2
    expected = svm.predict_proba(x)
    assert expected[:, 1].max() < 1e-3
    # Saved as the run saves it (skops, a list with one estimator per label) and loaded as predict loads it.
    skops_io.dump(svm.estimator, tmp_path / ESTIMATOR_FILE)
    head = _load_estimator(tmp_path, "multilabel")
    with torch.no_grad():
        reloaded = torch.sigmoid(head(torch.from_numpy(x).float())).numpy()
    np.testing.assert_allclose(reloaded, expected, atol=1e-6)


# -- regression --------------------------------------------------------------------------------------


def test_regression_of_brightness_learns_in_original_units(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]]
) -> None:
    run = world["base"] / "reg-fe"
    settings = {**BASE, "adapter": "tasks/brightness", "cache_dir": world["cache"], "head": "ridge"}
    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
    data = world["datasets"]["brightness"].root
    code, out = tl_with("train", "--preset", "feature-extraction", "--data", data, "--output", run, *sets)
    assert code == 0, out
    assert "regression | val r2" in out and "rmse" in out  # the one-line summary speaks the task's metrics
    report = json.loads((run / "report.json").read_text())
    test = report["test"]
    assert test["r2"] > 0.5
    targets = [r.target for r in world["datasets"]["brightness"].splits["test"]]
    assert test["rmse"] < np.std(targets)  # better than predicting the mean, in grey levels
    assert test["per_target"]["brightness"]["mean_predicted"] == pytest.approx(np.mean(targets), abs=15)
    assert report["task"]["loss"] == "huber" and report["task"]["monitor"] == "r2"


def test_regression_torch_head_with_mse(world: dict[str, Any]) -> None:
    report = train(
        world, "brightness", "reg-mlp", technique="feature-extraction", head="linear", loss="mse", lr=0.01,
        head_epochs=150,
    )  # fmt: skip
    assert report["task"]["loss"] == "mse"
    assert report["test"]["r2"] > 0.5


def test_stress_speaks_each_task(world: dict[str, Any], tl_with: Callable[..., tuple[int, str]]) -> None:
    """tl stress on regression, float bands and multilabel: each judged by its own headline metric."""
    # Regression of brightness: a darker image *is* another target, so `darker` must be flagged.
    train(world, "brightness", "stress-reg", technique="feature-extraction", head="ridge")
    code, out = tl_with("stress", world["base"] / "stress-reg", "--only", "darker,rotate", "--quiet")
    assert code == 0, out
    report = json.loads((world["base"] / "stress-reg" / "stress-val.json").read_text())
    rows = {r["name"]: r for r in report["perturbations"]}
    assert report["metric"] == "r2" and rows["darker"]["changed"] is None and "recall" not in rows["darker"]
    assert rows["darker"]["flagged"] and rows["darker"]["drop"] > 0.3
    assert rows["rotate"]["drop"] < rows["darker"]["drop"]
    assert "warning: darker (" in out and "r2 " in out
    # Five float32 bands: JPEG goes band by band, grey levels on each image's own range, shape kept.
    train(world, "bands", "stress-bands", technique="feature-extraction", head="ridge", backbone="test_convnext")
    code, out = tl_with("stress", world["base"] / "stress-bands", "--only", "jpeg,noise,zoom-out", "--quiet")
    assert code == 0, out
    report = json.loads((world["base"] / "stress-bands" / "stress-val.json").read_text())
    assert [r["name"] for r in report["perturbations"]] == ["jpeg", "noise", "zoom-out"]
    assert all(isinstance(r["r2"], float) for r in report["perturbations"])
    # Multilabel: judged by AUC; a changed decision is any label crossing 0.5.
    train(world, "squares", "stress-ml", technique="feature-extraction", head="logistic-regression")
    code, out = tl_with("stress", world["base"] / "stress-ml", "--only", "blur", "--quiet")
    assert code == 0, out
    report = json.loads((world["base"] / "stress-ml" / "stress-val.json").read_text())
    (row,) = report["perturbations"]
    assert report["metric"] == "auc" and 0.0 <= row["changed"] <= 1.0 and isinstance(row["auc"], float)
    assert (world["base"] / "stress-ml" / "stress-val.png").is_file()


# -- multi-band float input ------------------------------------------------------------------------


def test_five_band_float_data_trains_with_band_statistics_and_predicts_in_units(
    world: dict[str, Any], tl_with: Callable[..., tuple[int, str]]
) -> None:
    ds = world["datasets"]["bands"]
    # ConvNeXt's LayerNorm keeps random features informative for band levels (BatchNorm's untrained
    # running statistics blur them); it also checks a second architecture family with in_chans=5.
    report = train(world, "bands", "bands-fe", technique="feature-extraction", head="ridge", backbone="test_convnext")
    assert report["model"]["in_chans"] == 5
    assert report["test"]["r2"] > 0.5
    run = world["base"] / "bands-fe"
    meta = load_meta(run)
    # model.json keeps the train split's band statistics and target normaliser.
    train_arrays = np.stack([np.load(r.path) for r in ds.splits["train"]])
    np.testing.assert_allclose(meta.input_stats["mean"], train_arrays.mean(axis=(0, 1, 2)), rtol=1e-4)
    np.testing.assert_allclose(meta.input_stats["std"], train_arrays.std(axis=(0, 1, 2)), rtol=1e-3)
    y_train = np.array([r.target for r in ds.splits["train"]])
    assert meta.target_norm == {"mean": [pytest.approx(y_train.mean(), rel=1e-4)],
                                "std": [pytest.approx(y_train.std(), rel=1e-4)]}  # fmt: skip
    assert meta.normalization()[2] == 1.0  # raw-unit statistics, not 0-1 pixel ones
    records = ds.splits["test"]
    code, out = tl_with("predict", run, *[r.path for r in records])
    assert code == 0, out
    predicted = np.array([json.loads(line)["values"]["index"] for line in out.splitlines()])
    truth = np.array([r.target for r in records])
    assert np.corrcoef(predicted, truth)[0, 1] > 0.7  # original units: index points, not standardised
    assert abs(predicted.mean() - truth.mean()) < truth.std()


def test_five_band_fine_tuning_runs_with_geometric_augmentation(world: dict[str, Any]) -> None:
    report = train(world, "bands", "bands-ft", technique="fine-tuning", strategy="full", epochs=2,
                   augmentation="standard", backbone="test_convnext")  # fmt: skip
    assert report["model"]["input_stats"]["dtype"] == "float32"
    assert math.isfinite(report["test"]["rmse"])


# -- errors a user can act on ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "settings", "message"),
    [
        ("brightness", {"head": "svm", "technique": "feature-extraction"}, "head 'svm' does not support task"),
        ("squares", {"head": "ridge", "technique": "feature-extraction"}, "head 'ridge' does not support task"),
        ("brightness", {"loss": "bce"}, "loss=bce does not apply to regression"),
        ("squares", {"loss": "huber"}, "loss=huber does not apply to multilabel"),
        ("brightness", {"class_weights": "balanced"}, "class_weights=balanced does not apply to regression"),
        ("squares", {"mixup": 0.2}, "mixup/cutmix apply to classification only"),
    ],
)
def test_settings_that_do_not_fit_the_task_fail_before_any_work(
    world: dict[str, Any], name: str, settings: dict[str, Any], message: str
) -> None:
    run = world["base"] / f"bad-{len(message)}"
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        train(world, name, run.name, **settings)
    assert not run.exists()


def test_bad_targets_are_one_line_data_errors(world: dict[str, Any], tmp_path: Path) -> None:
    ds = world["datasets"]["squares"]
    first = ds.splits["train"][0]
    broken = LabeledDataset(ds.classes, {"train": [Record(first.path, (1.0, 2.0))]}, task="multilabel")
    host = PluginHost(load_entrypoints=False)
    host.add_plugin(TaskData({"broken": broken}), name="tasks")
    config = RunConfig(**{**BASE, "adapter": "tasks/broken"})
    with pytest.raises(DataError, match=r"values other than 0\.0, 1\.0 and NaN"):
        run_training(host, config, str(tmp_path), tmp_path / "run", None)


def test_classification_monitor_on_a_regression_run_falls_back_with_a_note() -> None:
    objective = Objective("regression", ["y"], monitor="accuracy")
    assert objective.monitor == "r2"
    assert objective.monitor_note is not None and "does not apply" in objective.monitor_note
    assert Objective("multilabel", ["a"], monitor="auto").monitor == "auc"
    assert Objective("classification", ["a", "b"], monitor="auto").monitor == "accuracy"


# -- pure parts --------------------------------------------------------------------------------------


def test_masked_bce_ignores_missing_labels_and_pos_weight_balances() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0], [-2.0, 0.0]])
    y = torch.tensor([[1.0, math.nan], [0.0, 1.0], [math.nan, math.nan]])
    loss = Objective("multilabel", ["a", "b"]).loss(logits, y)
    known = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor([2.0, 0.5, 3.0]), torch.tensor([1.0, 0.0, 1.0])
    )
    assert loss.item() == pytest.approx(known.item())
    config = RunConfig(class_weights="balanced")
    y_train = np.array([[1, 0], [0, 0], [0, math.nan], [0, 1]], dtype=np.float32)
    weighted = Objective.for_training("multilabel", ["a", "b"], config, y_train)
    assert weighted.weight is not None
    assert weighted.weight.tolist() == pytest.approx([3.0, 2.0])  # negatives / positives among known labels


def test_regression_objective_standardises_and_inverts() -> None:
    y = np.array([[10.0], [20.0], [30.0], [math.nan]], dtype=np.float32)
    objective = Objective.for_training("regression", ["y"], RunConfig(), y)
    assert objective.scaler is not None
    assert objective.scaler.mean == pytest.approx((20.0,))
    z = objective.fit_targets(y)
    assert z[:3, 0].tolist() == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-4)
    np.testing.assert_allclose(objective.to_units(z[:3]), y[:3], rtol=1e-6)
    # Huber (delta 1) on standardised values: |error| 1.2247 is in the linear part; the NaN target is masked out.
    loss = objective.loss(torch.tensor([[0.0], [0.0], [0.0], [5.0]]), torch.from_numpy(z))
    assert loss.item() == pytest.approx(2 * (1.2247 - 0.5) / 3, rel=1e-3)
    assert Objective("regression", ["y"], loss="mse", scaler=objective.scaler).loss(
        torch.tensor([[0.0], [0.0], [0.0], [5.0]]), torch.from_numpy(z)
    ).item() == pytest.approx(2 * 1.2247**2 / 3, rel=1e-3)


def test_multilabel_metrics_leave_missing_labels_out() -> None:
    y = np.array([[1, 0], [0, math.nan], [1, 1], [0, 0]], dtype=np.float64)
    p = np.array([[0.9, 0.2], [0.3, 0.99], [0.6, 0.7], [0.4, 0.1]])
    m = multilabel_metrics(y, p, ["a", "b"])
    assert m["per_label"]["a"]["auc"] == 1.0
    assert m["per_label"]["b"]["auc"] == 1.0  # the 0.99 on a missing label would otherwise be a false positive
    assert m["per_label"]["b"]["labelled"] == 3
    assert m["auc"] == 1.0 and m["map"] == 1.0
    assert m["subset_accuracy"] == 1.0  # every known label right at 0.5
    assert m["missing_labels"] == 1
    single = multilabel_metrics(np.array([[1.0], [1.0]]), np.array([[0.8], [0.6]]), ["a"])
    assert single["auc"] is None and single["map"] == 1.0  # AUC undefined with one class present


def test_regression_metrics_on_a_hand_made_example() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0, math.nan]), np.array([1.0, 2.0, 4.0, 100.0]), ["y"])
    assert m["n"] == 4
    assert m["per_target"]["y"]["n"] == 3
    assert m["rmse"] == pytest.approx(math.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
    assert m["r2"] == pytest.approx(1 - 1 / 2)
    assert regression_metrics(np.array([5.0, 5.0]), np.array([4.0, 6.0]), ["y"])["r2"] is None


def test_carving_splits_of_tuple_and_float_targets(tmp_path: Path) -> None:
    records = [Record(f"{i}.png", (float(i % 2), math.nan)) for i in range(20)]
    ds = LabeledDataset(["a", "b"], {"train": records}, task="multilabel")
    origin = ensure_splits(ds, 0.2, seed=0)
    assert sorted(origin) == ["test", "train", "val"]
    assert sum(len(r) for r in ds.splits.values()) == 20
    floats = LabeledDataset(["y"], {"train": [Record(f"{i}.png", i / 3) for i in range(20)]}, task="regression")
    ensure_splits(floats, 0.2, seed=0)
    assert len(floats.splits["val"]) >= 1


def test_channel_stats_stream_a_bounded_sample(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = [rng.normal([10, 200, 3000], [1, 5, 50], (16, 16, 3)).astype(np.float32) for _ in range(6)]
    records = []
    for i, arr in enumerate(arrays):
        np.save(tmp_path / f"{i}.npy", arr)
        records.append(Record(str(tmp_path / f"{i}.npy"), 0.0))
    stats = channel_stats(records, read_npy)
    stacked = np.stack(arrays)
    np.testing.assert_allclose(stats["mean"], stacked.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(stats["std"], stacked.std(axis=(0, 1, 2)), rtol=1e-4)
    assert channel_stats(records, read_npy, max_images=2)["images"] == 2


@pytest.mark.parametrize("build", [standard, light, trivial])
def test_default_augmentations_keep_float_bands_in_their_units(build: Callable[..., Any]) -> None:
    rng = np.random.default_rng(2)
    for channels in (5, 3):
        image = rng.uniform(1000, 3000, (40, 40, channels)).astype(np.float32)
        pipeline = build(AugmentationContext((32, 32), train=True, channels=channels))
        for _ in range(10):  # colour jitter (p=0.5) would clip float values to 0-1
            out = pipeline(image=image)["image"]
            assert out.shape == (32, 32, channels) and out.dtype == np.float32
            assert out.max() > 500


@pytest.mark.parametrize("channels", [1, 3, 5])
def test_trivial_applies_one_operation_at_a_random_strength_to_8_bit_images(channels: int) -> None:
    ramp = np.linspace(60, 180, 48, dtype=np.float32)  # smooth: resizing cannot overshoot to 250
    image = np.repeat(np.tile(ramp, (40, 1))[..., None], channels, axis=2).astype(np.uint8)
    pipeline = trivial(AugmentationContext((32, 32), train=True, channels=channels, params={"hflip": False}))
    pipeline.set_random_seed(0)
    outs = [pipeline(image=image)["image"] for _ in range(40)]
    assert all(o.shape == (32, 32, channels) and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) > 30
    # Intensity operations (equalize, autocontrast, solarize...) reach 8-bit grey and RGB, not other bands:
    assert any(int(o.max()) >= 250 for o in outs) == (channels in (1, 3))
    again = trivial(AugmentationContext((32, 32), train=True, channels=channels, params={"hflip": False}))
    again.set_random_seed(0)
    assert all(np.array_equal(a, again(image=image)["image"]) for a in outs)  # seeded: a resumed run repeats it
    assert trivial(AugmentationContext((32, 32), train=False, channels=channels)) is not None


def test_unknown_loss_is_a_config_error() -> None:
    with pytest.raises(TlcoreError, match="loss"):
        build_config({}, {"loss": "focal"}, "test")
