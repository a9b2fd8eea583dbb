"""The transfer engine end to end (real offline Lite0 weights, 64 px) and its pure parts."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from tlcore.default_plugins.presets import FINE_TUNING
from tlcore.metrics.classification import classification_metrics, monitor_value
from tlcore.models.heads import logistic_regression_head, svm_head
from tlcore.specs import HeadContext
from tlcore.training.finetune import trainable_groups
from tlcore.training.probe import sklearn_to_linear

CLASSES = ["blue", "green", "red"]
STRATEGIES = ["head-only", "partial", "gradual", "full", "lp-ft"]
METRIC_KEYS = {"accuracy", "balanced_accuracy", "macro_f1", "auc", "per_class", "confusion_matrix"}
Tl = Callable[..., tuple[int, str, str]]


def read_report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())


def read_metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


# -- feature extraction (one run shared by the module) ------------------------------------------


@pytest.fixture(scope="module")
def fe(
    tmp_path_factory: pytest.TempPathFactory,
    make_folder: Callable[..., Path],
    tl_module: Callable[..., int],
    fast: list[str],
) -> dict[str, Any]:
    """One feature-extraction run on the colour dataset, with its own feature cache."""
    base = tmp_path_factory.mktemp("fe")
    data = make_folder(base / "colours", {"train": 8, "val": 3, "test": 3})
    cache = base / "features"
    common = ["--data", data, *fast, "--set", f"cache_dir={cache}"]
    run = base / "run"
    code = tl_module("train", "--preset", "feature-extraction", "--output", run, *common)
    return {"code": code, "data": data, "run": run, "cache": cache, "common": common}


def test_feature_extraction_run_writes_a_full_report(fe: dict[str, Any]) -> None:
    assert fe["code"] == 0
    run = fe["run"]
    for name in ("report.json", "config.yaml", "model.safetensors", "model.json"):
        assert (run / name).is_file(), name
    report = read_report(run)
    assert report["technique"] == "feature-extraction"
    for split in ("val", "test"):
        assert set(report[split]) >= METRIC_KEYS
        assert set(report[split]["per_class"]) == set(CLASSES)
        matrix = np.array(report[split]["confusion_matrix"])
        assert matrix.shape == (3, 3)
        assert matrix.sum() == 9
    model = report["model"]
    assert model["backbone"] == "tf_efficientnet_lite0"
    assert model["weights"]["source"] == "file"
    assert model["weights"]["pretrained"] is True
    assert model["preprocessing"]["input_size"] == [64, 64]
    assert report["data"]["counts"] == {"train": 24, "val": 9, "test": 9}
    assert report["data"]["classes"] == CLASSES
    assert report["data"]["adapter"] == "image-folder"
    timing = report["timing"]
    assert timing["feature_extraction_s"] > 0
    assert "feature_cache_hits" not in timing
    assert timing["total_s"] > 0


def test_frozen_imagenet_features_separate_the_colours(fe: dict[str, Any]) -> None:
    report = read_report(fe["run"])
    assert report["test"]["accuracy"] >= 0.8
    assert report["test"]["auc"] >= 0.9


def test_logistic_regression_head_is_saved_as_a_plain_linear_layer(fe: dict[str, Any]) -> None:
    state = load_file(str(fe["run"] / "model.safetensors"))
    head = {k: v.shape for k, v in state.items() if k.startswith("head.")}
    assert head == {"head.1.weight": torch.Size([3, 1280]), "head.1.bias": torch.Size([3])}
    assert json.loads((fe["run"] / "model.json").read_text())["head"] == "linear"
    assert not (fe["run"] / "head.skops").exists()


def test_second_run_on_the_same_images_reuses_the_feature_cache(fe: dict[str, Any], tl: Tl, tmp_path: Path) -> None:
    code, _, err = tl("train", "--preset", "feature-extraction", "--output", tmp_path / "again", *fe["common"])
    assert code == 0, err
    again = read_report(tmp_path / "again")
    assert again["timing"]["feature_cache_hits"] == ["train", "val", "test"]
    assert again["timing"]["feature_extraction_s"] == 0
    assert again["test"]["accuracy"] == read_report(fe["run"])["test"]["accuracy"]


@pytest.mark.parametrize(
    ("head", "params"),
    # RBF's default gamma is poor on 24 samples of 1280 features; the linear kernel also checks head_params.
    [("svm", "{kernel: linear}"), ("mlp", "{hidden: 64}")],
)
def test_other_heads_train_on_cached_features(
    fe: dict[str, Any], tl: Tl, tmp_path: Path, head: str, params: str
) -> None:
    run = tmp_path / head
    extra = ["--set", f"head={head}", "--set", f"head_params={params}"]
    code, _, err = tl("train", "--preset", "feature-extraction", "--output", run, *fe["common"], *extra)
    assert code == 0, err
    report = read_report(run)
    assert report["model"]["head"] == head
    assert report["timing"]["feature_cache_hits"] == ["train", "val", "test"]
    assert report["test"]["accuracy"] >= 0.8
    assert (run / "head.skops").exists() == (head == "svm")


def test_predict_prints_top_k_json_lines(fe: dict[str, Any], tl: Tl) -> None:
    images = [next((fe["data"] / "test" / c).glob("*.png")) for c in CLASSES]
    code, out, err = tl("predict", fe["run"], *images, "--top-k", "2")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    for line in lines:
        preds = line["predictions"]
        assert len(preds) == 2
        assert {p["label"] for p in preds} <= set(CLASSES)
        assert preds[0]["probability"] >= preds[1]["probability"]
        assert 0 < preds[0]["probability"] <= 1
    assert sum(line["predictions"][0]["label"] == c for line, c in zip(lines, CLASSES, strict=True)) >= 2


def test_predict_missing_image_is_a_one_line_error(fe: dict[str, Any], tl: Tl, tmp_path: Path) -> None:
    code, out, err = tl("predict", fe["run"], tmp_path / "missing.png")
    assert code == 2
    assert out == ""
    assert err.startswith("error: image not found")
    assert len(err.strip().splitlines()) == 1


def test_evaluate_writes_the_split_metrics(fe: dict[str, Any], tl: Tl) -> None:
    code, out, err = tl("evaluate", fe["run"], "--data", fe["data"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["n"] == 9
    evaluation = json.loads((fe["run"] / "evaluation-test.json").read_text())
    assert evaluation["split"] == "test"
    assert set(evaluation["metrics"]) >= METRIC_KEYS
    assert evaluation["metrics"]["accuracy"] == pytest.approx(read_report(fe["run"])["test"]["accuracy"])


def test_evaluate_and_predict_work_for_an_svm_run(fe: dict[str, Any], tl: Tl, tmp_path: Path) -> None:
    run = tmp_path / "svm"
    extra = ["--set", "head=svm", "--set", "head_params={kernel: linear}"]
    assert tl("train", "--preset", "feature-extraction", "--output", run, *fe["common"], *extra)[0] == 0
    code, out, err = tl("evaluate", run, "--data", fe["data"])
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(read_report(run)["test"]["accuracy"])
    image = next((fe["data"] / "test" / "red").glob("*.png"))
    code, out, err = tl("predict", run, image)
    assert code == 0, err
    probabilities = [p["probability"] for p in json.loads(out)["predictions"]]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)


def _predictions_csv(run: Path, split: str) -> dict[str, list[float]]:
    with (run / "predictions.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["split"] == split]
    return {r["path"]: [float(r[f"proba_{c}"]) for c in CLASSES] for r in rows}


def test_crop_pct_travels_with_the_model_and_predict_reads_a_folder(fe: dict[str, Any], tl: Tl, tmp_path: Path) -> None:
    run = tmp_path / "whole-view"
    code, _, err = tl("train", "--preset", "feature-extraction", "--output", run, *fe["common"], "--set", "crop_pct=1")
    assert code == 0, err
    model = json.loads((run / "model.json").read_text())
    assert model["preprocessing"]["crop_pct"] == 1.0
    assert json.loads((fe["run"] / "model.json").read_text())["preprocessing"]["crop_pct"] == 0.875
    # The run remembers its adapter, so `tl predict` knows how its files were read.
    assert yaml.safe_load((run / "config.yaml").read_text())["adapter"] == "image-folder"
    # A folder stands for the images in it; predict decodes and crops as the run's test split was.
    code, out, err = tl("predict", run, fe["data"] / "test", "--top-k", "3")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    expected = _predictions_csv(run, "test")
    assert sorted(line["image"] for line in lines) == sorted(expected)
    for line in lines:
        got = {p["label"]: p["probability"] for p in line["predictions"]}
        assert [got[c] for c in CLASSES] == pytest.approx(expected[line["image"]], abs=1e-4)


def test_evaluate_split_all_scores_every_image_of_an_external_folder(
    fe: dict[str, Any], tl: Tl, make_folder: Callable[..., Path], tmp_path: Path
) -> None:
    # another site's labelled images in plain <class>/ folders: no split layout at all
    site = make_folder(tmp_path / "site_b", {"": 6})
    code, out, err = tl("evaluate", fe["run"], "--data", site, "--split", "all")
    assert code == 0, err
    assert json.loads(out)["n"] == 18
    evaluation = json.loads((fe["run"] / "evaluation-all.json").read_text())
    assert evaluation["split"] == "all" and evaluation["metrics"]["n"] == 18
    # the same images as a lone test/ split: adapters need train, and the error says what to do
    test_only = make_folder(tmp_path / "site_c", {"test": 2})
    code, out, err = tl("evaluate", fe["run"], "--data", test_only)
    assert code == 2 and out == ""
    assert "no train/ split" in err and "--split all" in err and len(err.strip().splitlines()) == 1


def test_evaluate_refuses_data_with_other_classes(
    fe: dict[str, Any], tl: Tl, make_folder: Callable[..., Path], tmp_path: Path
) -> None:
    other = make_folder(tmp_path / "other", {"train": 2, "test": 2}, classes={"cat": (1, 2, 3), "dog": (4, 5, 6)})
    code, _, err = tl("evaluate", fe["run"], "--data", other)
    assert code == 2
    assert "classes" in err
    assert len(err.strip().splitlines()) == 1


def test_unreadable_images_are_skipped_and_listed(tiny_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]) -> None:
    good = next((tiny_folder / "train" / "red").glob("*.png"))
    jpeg = tiny_folder / "train" / "red" / "cut.jpg"
    Image.open(good).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:-200])  # cut off mid-scan: PIL's verify() alone accepts it
    (tiny_folder / "val" / "blue" / "empty.png").write_bytes(b"")
    run = tmp_path / "run"
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", tiny_folder, "--output", run, *fast)
    assert code == 0, err
    assert "skipped 2 unreadable image(s)" in err
    data = read_report(run)["data"]
    assert sorted(Path(s["path"]).name for s in data["skipped_images"]) == ["cut.jpg", "empty.png"]
    assert data["counts"] == {"train": 24, "val": 9, "test": 9}


# -- fine-tuning -------------------------------------------------------------------------------


def lite0_reference() -> dict[str, torch.Tensor]:
    """The converted pretrained Lite0 tensors (timm names), as the engine loads them."""
    from tlcore.models.weights import resolve_weights
    from tlcore.plugins import PluginHost

    spec = PluginHost(load_entrypoints=False).backbone("tf_efficientnet_lite0")
    source = resolve_weights("default", spec.timm_name, spec.default_weights, spec.weights_file)
    assert source.file is not None
    return load_file(str(source.file))


def finetune_args(data: Path, run: Path, fast: list[str], *extra: str) -> list[Any]:
    return [
        "train", "--preset", "fine-tuning", "--data", data, "--output", run, *fast,
        "--set", "epochs=2", "--set", "head_epochs=5", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fine_tuning_strategy_writes_metrics_and_model(
    strategy: str, small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]
) -> None:
    run = tmp_path / "run"
    code, _, err = tl(*finetune_args(small_folder, run, fast, "--set", f"strategy={strategy}"))
    assert code == 0, err
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert (run / "model.safetensors").is_file()
    report = read_report(run)
    assert report["strategy"] == strategy
    assert report["timing"]["epochs_run"] == 2
    frozen = [int(r["frozen_stages"]) for r in rows]
    elapsed, seconds = [float(r["elapsed_s"]) for r in rows], [float(r["seconds"]) for r in rows]
    # Counted from the run's start: epoch 1 also holds data checks, model building (and lp-ft's probe).
    assert 0 < seconds[0] < elapsed[0] and elapsed[1] - elapsed[0] >= seconds[1]
    state = load_file(str(run / "model.safetensors"))
    reference = lite0_reference()
    backbone = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    assert set(backbone) == set(reference) - {"classifier.weight", "classifier.bias"}
    changed = [k for k, v in backbone.items() if not torch.equal(v, reference[k])]
    if strategy == "head-only":
        n_groups = frozen[0]
        assert frozen == [n_groups, n_groups]
        assert n_groups >= 5
        assert changed == []  # weights and BatchNorm statistics untouched
        assert report["model"]["parameters"]["backbone_trainable_at_end"] == 0
    elif strategy == "full":
        assert frozen == [0, 0]
        assert "conv_stem.weight" in changed
    elif strategy in ("partial", "lp-ft"):
        expected = FINE_TUNING.settings["freeze_stages"]
        assert expected >= 1 and frozen == [expected, expected]  # the preset's freeze_stages (stem included)
        assert "conv_stem.weight" not in changed
        assert any(k.startswith("conv_head") for k in changed)
    else:  # gradual: head only first, then one more stage each epoch
        assert frozen[1] == frozen[0] - 1
        assert "conv_stem.weight" not in changed
    if strategy == "lp-ft":
        assert "linear_probe_val_accuracy" in report["training"]
        assert "linear_probe_s" in report["timing"]


def test_mixup_and_cutmix_run(small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]) -> None:
    run = tmp_path / "mix"
    extra = ["--set", "strategy=full", "--set", "mixup=0.4", "--set", "cutmix=1.0", "--set", "batch_size=4"]
    code, _, err = tl(*finetune_args(small_folder, run, fast, *extra))
    assert code == 0, err
    rows = read_metrics(run)
    assert len(rows) == 2
    assert all(float(r["train_loss"]) > 0 for r in rows)  # batches were seen (drop_last with even batches)
    assert read_report(run)["config"]["mixup"] == 0.4


def test_a_last_batch_of_one_image_is_dropped(small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]) -> None:
    # 12 training images at batch 11 leave one; at 32 px the last feature map is 1x1, so BatchNorm
    # would see a single value per channel and refuse to train.
    run = tmp_path / "odd"
    extra = ["--set", "strategy=full", "--set", "batch_size=11", "--set", "epochs=1", "--set", "image_size=32"]
    code, _, err = tl(*finetune_args(small_folder, run, fast, *extra))
    assert code == 0, err
    assert len(read_metrics(run)) == 1


def test_class_weights_and_balanced_sampling_run_on_imbalanced_data(
    make_folder: Callable[..., Path], tl: Tl, tmp_path: Path, fast: list[str]
) -> None:
    data = make_folder(tmp_path / "imbalanced", {"train": 6, "val": 2, "test": 2})
    for extra in sorted((data / "train" / "red").glob("*.png"))[2:]:
        extra.unlink()  # red: 2 training images, the others 6
    run = tmp_path / "run"
    extra = ["--set", "strategy=head-only", "--set", "class_weights=balanced", "--set", "balanced_sampling=true"]
    code, _, err = tl(*finetune_args(data, run, fast, *extra))
    assert code == 0, err
    report = read_report(run)
    assert report["data"]["per_class"]["train"] == {"blue": 6, "green": 6, "red": 2}
    assert report["config"]["class_weights"] == "balanced"
    assert report["config"]["balanced_sampling"] is True
    assert len(read_metrics(run)) == 2


def test_resume_continues_an_interrupted_run(small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]) -> None:
    run = tmp_path / "run"
    code, _, err = tl(*finetune_args(small_folder, run, fast, "--set", "epochs=1"))
    assert code == 0, err
    first = read_metrics(run)
    assert len(first) == 1
    assert (run / "checkpoint_state.pt").exists()
    code, _, err = tl("train", "--resume", run, "--set", "epochs=2")
    assert code == 0, err
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0] == first[0]
    # The clock continues from the stored history: the resumed process's setup and epoch 2 on top.
    assert float(rows[1]["elapsed_s"]) > float(rows[0]["elapsed_s"]) + float(rows[1]["seconds"])
    report = read_report(run)
    assert report["config"]["epochs"] == 2
    assert report["timing"]["epochs_run"] == 2
    assert "linear_probe_s" not in report["timing"]  # lp-ft's probe is not redone on resume


def test_checkpoint_last_keeps_the_final_epoch_and_best_keeps_the_best(
    small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]
) -> None:
    from safetensors.torch import load_file

    for mode in ("last", "best"):
        run = tmp_path / mode
        code, _, err = tl(
            *finetune_args(
                small_folder, run, fast, "--set", "epochs=3", "--set", f"checkpoint={mode}", "--set", "early_stopping=0"
            )
        )
        assert code == 0, err
        report = read_report(run)
        kept, last = load_file(str(run / "model.safetensors")), load_file(str(run / "checkpoint.safetensors"))
        same_as_last = all(torch.equal(kept[k], last[k]) for k in kept)
        if mode == "last":
            assert report["training"]["best_epoch"] == 3
            assert same_as_last
        else:
            scores = [float(r["val_accuracy"]) for r in read_metrics(run)]
            assert scores[report["training"]["best_epoch"] - 1] == max(scores)


def test_resume_of_a_folder_without_a_run_is_a_one_line_error(tl: Tl, tmp_path: Path) -> None:
    code, _, err = tl("train", "--resume", tmp_path)
    assert code == 2
    assert err.startswith("error:")
    assert "nothing to resume" in err


def test_sklearn_head_cannot_be_fine_tuned(small_folder: Path, tl: Tl, tmp_path: Path, fast: list[str]) -> None:
    code, _, err = tl(*finetune_args(small_folder, tmp_path / "r", fast, "--set", "head=svm"))
    assert code == 2
    assert "cannot be fine-tuned" in err


# -- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "epoch", "every", "expected"),
    [
        ("head-only", 0, 1, 8),
        ("head-only", 5, 1, 8),
        ("full", 0, 1, 0),
        ("partial", 0, 1, 3),
        ("partial", 9, 1, 3),
        ("lp-ft", 4, 1, 3),
        ("gradual", 0, 1, 8),
        ("gradual", 1, 1, 7),
        ("gradual", 3, 1, 5),
        ("gradual", 20, 1, 3),  # never below freeze_stages
        ("gradual", 1, 2, 8),
        ("gradual", 2, 2, 7),
    ],
)
def test_trainable_groups_per_strategy(strategy: str, epoch: int, every: int, expected: int) -> None:
    assert trainable_groups(strategy, n_groups=8, freeze_stages=3, epoch=epoch, unfreeze_every=every) == expected


def test_partial_freezing_is_capped_at_the_number_of_groups() -> None:
    assert trainable_groups("partial", n_groups=4, freeze_stages=10, epoch=0, unfreeze_every=1) == 4


@pytest.mark.parametrize("k", [2, 3])
def test_sklearn_to_linear_matches_predict_proba(k: int) -> None:
    rng = np.random.default_rng(k)
    centres = rng.normal(0, 3, (k, 6))
    y = np.repeat(np.arange(k), 20)
    x = (centres[y] + rng.normal(0, 2, (len(y), 6))) * rng.uniform(0.1, 10, 6) + rng.normal(0, 5, 6)
    pipeline = logistic_regression_head(HeadContext(6, k, params={"dropout": 0.3}))
    pipeline.fit(x, y)
    layer = sklearn_to_linear(pipeline, 6, k)
    assert layer is not None
    layer.eval()
    with torch.no_grad():
        proba = torch.softmax(layer(torch.from_numpy(x).float()), dim=1).numpy()
    np.testing.assert_allclose(proba, pipeline.predict_proba(x), atol=1e-5)


def test_sklearn_to_linear_leaves_other_estimators_alone() -> None:
    svm = svm_head(HeadContext(4, 3))
    assert sklearn_to_linear(svm, 4, 3) is None


def test_classification_metrics_on_a_hand_made_example() -> None:
    y = [0, 0, 1, 1, 2, 2]
    proba = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.3, 0.6, 0.1],  # a 0 predicted as 1
            [0.1, 0.8, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
            [0.5, 0.1, 0.4],  # a 2 predicted as 0
        ]
    )
    m = classification_metrics(y, proba, ["a", "b", "c"])
    assert m["n"] == 6
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["a"]["support"] == 2
    # class c: scores 0.8, 0.4 for positives vs 0.1, 0.1, 0.1, 0.1 for negatives -> perfect ranking
    assert m["per_class"]["c"]["auc"] == 1.0
    assert 0.5 < m["auc"] <= 1.0
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.3, 0.8, 0.7, 0.8, 0.4])))


def test_auc_is_none_when_a_class_is_absent() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    m = classification_metrics([0, 0, 1, 1], proba, ["a", "b", "c"])
    assert m["auc"] is None
    assert m["per_class"]["c"]["auc"] is None
    assert m["per_class"]["a"]["auc"] == 1.0
    assert m["accuracy"] == 1.0
    assert monitor_value(m, "auc") == pytest.approx(1.0, abs=1e-3)  # falls back to accuracy


def test_binary_auc_is_none_with_a_single_class_present() -> None:
    m = classification_metrics([1, 1, 1], np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]), ["neg", "pos"])
    assert m["auc"] is None
    assert m["accuracy"] == pytest.approx(2 / 3)


def test_monitor_loss_is_negated() -> None:
    m = classification_metrics([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), ["a", "b"])
    assert monitor_value(m, "loss") == pytest.approx(-m["log_loss"])
    assert monitor_value(m, "macro_f1") == pytest.approx(1.0, abs=1e-3)


def test_monitor_breaks_accuracy_ties_by_log_loss_but_never_outweighs_a_correct_image() -> None:
    confident = classification_metrics([0, 1], np.array([[0.99, 0.01], [0.01, 0.99]]), ["a", "b"])
    hesitant = classification_metrics([0, 1], np.array([[0.6, 0.4], [0.4, 0.6]]), ["a", "b"])
    one_wrong = classification_metrics([0, 1, 1], np.array([[0.99, 0.01], [0.01, 0.99], [0.9, 0.1]]), ["a", "b"])
    all_right = classification_metrics([0, 1, 1], np.array([[0.6, 0.4], [0.4, 0.6], [0.4, 0.6]]), ["a", "b"])
    assert monitor_value(confident, "accuracy") > monitor_value(hesitant, "accuracy")
    assert monitor_value(all_right, "accuracy") > monitor_value(one_wrong, "accuracy")
