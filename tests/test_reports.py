"""Reports people read: plots, predictions.csv, Grad-CAM, the HTML page (checked in headless chromium), export.

Two small feature-extraction runs on generated images with timm's tiny ``test_efficientnet`` (random weights):
one on three well-separated colours with a torch head (epoch history, exportable), one on two classes that
look the same, with the default scikit-learn head (no epochs, and errors for the gallery).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tlcore.errors import TlcoreError, TlcoreWarning
from tlcore.models.transfer import EstimatorHead, TransferModel, load_meta
from tlcore.reports.calibration import reliability
from tlcore.reports.explain import find_cam_layer
from tlcore.reports.export import check_exportable
from tlcore.reports.plots import PLOTS, write_plots
from tlcore.reports.predictions import SplitPredictions, confident_mistakes
from tlcore.reports.run_outputs import write_run_outputs

Tl = Callable[..., tuple[int, str, str]]
TINY = ["--set", "backbone=test_efficientnet", "--set", "weights=none", "--set", "bootstrap=200"]
SECTIONS = ("summary", "metrics", "plots", "gallery", "data", "model", "training", "environment")
CLASSIFICATION_PLOTS = ("learning_curves", "confusion_matrix", "roc", "precision_recall", "calibration")


def _report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "predictions.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    make_folder: Callable[..., Path],
    tl_module: Callable[..., int],
    fast: list[str],
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("reports")
    colours = make_folder(base / "colours", {"train": 6, "val": 3, "test": 3})
    alike = make_folder(
        base / "alike", {"train": 8, "val": 4, "test": 6}, classes={"cat": (120, 120, 120), "dog": (120, 120, 120)}
    )
    common = [*fast, *TINY, "--set", f"cache_dir={base / 'features'}"]
    torch_head = ["--set", "head=linear", "--set", "head_epochs=12"]
    out = {"colours": base / "colours-run", "alike": base / "alike-run", "colours_data": colours}
    assert (
        tl_module(
            "train", "--preset", "feature-extraction", "--data", colours, "-o", out["colours"], *common, *torch_head
        )
        == 0
    )
    assert tl_module("train", "--preset", "feature-extraction", "--data", alike, "-o", out["alike"], *common) == 0
    return out


# -- plots and predictions.csv ------------------------------------------------------------------


def _assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 10_000, f"{path.name} is suspiciously small"
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) >= 300
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5, f"{path.name} is blank"


def test_training_writes_the_classification_plots(runs: dict[str, Path]) -> None:
    for run in (runs["colours"], runs["alike"]):
        for name in CLASSIFICATION_PLOTS:
            _assert_png(run / PLOTS[name].file)
        assert not (run / PLOTS["predicted_vs_true"].file).exists()


def test_predictions_csv_matches_the_report(runs: dict[str, Path]) -> None:
    for run in (runs["colours"], runs["alike"]):
        report, rows = _report(run), _rows(run)
        classes = report["data"]["classes"]
        for split in ("val", "test"):
            mine = [r for r in rows if r["split"] == split]
            assert len(mine) == report[split]["n"] == report["data"]["counts"][split]
            proba = np.array([[float(r[f"proba_{c}"]) for c in classes] for r in mine])
            truth = np.array([classes.index(r["target"]) for r in mine])
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
            assert [r["prediction"] for r in mine] == [classes[i] for i in proba.argmax(axis=1)]
            assert np.mean(proba.argmax(axis=1) == truth) == pytest.approx(report[split]["accuracy"])
            matrix = np.zeros((len(classes), len(classes)), dtype=int)
            np.add.at(matrix, (truth, proba.argmax(axis=1)), 1)
            assert matrix.tolist() == report[split]["confusion_matrix"]
            nll = -np.mean(np.log(np.clip(proba[np.arange(len(truth)), truth], 1e-12, 1)))
            assert nll == pytest.approx(report[split]["log_loss"], rel=1e-3, abs=1e-4)
            assert all(Path(r["path"]).is_file() for r in mine)


def test_torch_head_learning_curve_is_per_epoch_and_sklearn_head_per_training_size(runs: dict[str, Path]) -> None:
    history = _report(runs["colours"])["training"]["head_history"]
    assert len(history) == 12 and {"train_loss", "val_loss"} <= set(history[0])
    curve = _report(runs["alike"])["training"]["head_size_curve"]
    sizes = [row["train_images"] for row in curve]
    assert sizes == sorted(set(sizes)) and sizes[-1] == 16 and len(sizes) >= 2
    assert all(row["val_loss"] is not None and 0 <= row["val_accuracy"] <= 1 for row in curve)


def test_ece_of_constructed_predictions() -> None:
    # All at confidence 0.8, right 6 times in 10: off by 0.2.
    assert reliability(np.full(10, 0.8), np.arange(10) < 6).ece == pytest.approx(0.2)
    # Two bins, each off by 0.05, weighted equally.
    confidence = np.r_[np.full(10, 0.95), np.full(10, 0.55)]
    correct = np.r_[np.arange(10) < 9, np.arange(10) < 5]
    assert reliability(confidence, correct).ece == pytest.approx(0.05)
    # Unequal weights: 30 well calibrated at 0.7 (21 right), 10 at 0.9 never right -> 10/40 * 0.9.
    confidence = np.r_[np.full(30, 0.7), np.full(10, 0.9)]
    correct = np.r_[np.arange(30) < 21, np.zeros(10, dtype=bool)]
    assert reliability(confidence, correct).ece == pytest.approx(0.225)
    # Edges: 1.0 lands in the last bin, 0.0 in the first; bins are (a, b].
    rel = reliability(np.array([0.0, 0.1, 1.0]), np.array([0, 0, 1]), bins=10)
    assert rel.counts.tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert rel.ece == pytest.approx((0.05 * 2 + 0.0) / 3)


def test_regression_and_multilabel_get_the_plots_that_apply(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(10, 3, (40, 1))
    reg = SplitPredictions(
        "regression", ["yield"], [f"{i}.png" for i in range(40)], truth, truth + rng.normal(0, 1, (40, 1))
    )
    report = {"data": {"task": "regression", "classes": ["yield"]}, "test": {}}
    written, warnings = write_plots(tmp_path, report, {"test": reg, "val": reg})
    assert not warnings
    assert {p.name for p in written} == {PLOTS["predicted_vs_true"].file}
    _assert_png(tmp_path / PLOTS["predicted_vs_true"].file)

    labels = ["a", "b", "c"]
    y = (rng.random((50, 3)) < 0.4).astype(float)
    y[0, 1] = np.nan  # an unknown label is left out, not counted as absent
    proba = np.clip(np.nan_to_num(y) * 0.4 + rng.random((50, 3)) * 0.6, 0, 1)  # some on the wrong side of 0.5
    multi = SplitPredictions("multilabel", labels, [f"{i}.png" for i in range(50)], y, proba)
    report = {"data": {"task": "multilabel", "classes": labels}, "test": {}}
    (tmp_path / "ml").mkdir()
    written, warnings = write_plots(tmp_path / "ml", report, {"test": multi})
    assert not warnings
    assert {p.name for p in written} == {PLOTS[k].file for k in ("roc", "precision_recall", "calibration")}
    mistakes = confident_mistakes(multi, 3)
    assert mistakes and all(m.score >= 0.5 for m in mistakes)


def test_a_broken_plot_input_warns_and_never_raises(tmp_path: Path) -> None:
    report = {"data": {"task": "classification", "classes": ["a", "b"]}}
    # Outputs with the wrong width: predictions.csv cannot be written, the call still returns.
    with pytest.warns(TlcoreWarning, match="^report plots: .*the run itself is complete"):
        write_run_outputs(tmp_path, report, {"test": ["x.png"]}, {"test": np.array([0])}, {"test": np.ones((1, 5))})


# -- Grad-CAM -----------------------------------------------------------------------------------


def test_explain_writes_overlays_that_are_not_blank(runs: dict[str, Path], tl: Tl, tmp_path: Path) -> None:
    images = sorted((runs["colours_data"] / "test" / "red").glob("*.png"))[:2]
    code, out, err = tl("explain", runs["colours"], *images, "--output", tmp_path / "cam", "--class", "green")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [row["explained"] for row in lines] == ["green", "green"]
    assert lines[0]["layer"].startswith("backbone.")
    for row in lines:
        with Image.open(row["overlay"]) as image:
            picture = np.asarray(image.convert("RGB")).astype(float)
        height = picture.shape[0] - 40  # caption strip below
        half = (picture.shape[1] - 6) // 2
        left, right = picture[:height, :half], picture[:height, -half:]
        assert np.abs(left - right).mean() > 10, "the overlay shows no heatmap"
        # A heatmap varies over the image: a blank (constant) map would tint every pixel the same.
        assert (right - left).std(axis=(0, 1)).max() > 5


def test_explain_heatmap_and_layer_through_the_api(runs: dict[str, Path]) -> None:
    from tlcore.models.transfer import load_model
    from tlcore.plugins import get_host
    from tlcore.reports.explain import Explainer

    model, meta = load_model(get_host(), runs["colours"])
    explainer = Explainer(model, meta)
    paths = [str(p) for p in sorted((runs["colours_data"] / "test").rglob("*.png"))]
    explanations = explainer.explain(paths, [None] * len(paths))
    for explanation in explanations:
        assert explanation.heatmap.shape == tuple(meta.preprocess().input_size)
        assert explanation.target == int(explanation.outputs.argmax())
        assert explanation.heatmap.min() >= 0 and explanation.heatmap.max() <= 1
    # Random weights: some maps may hold no positive evidence (blank), but not all of them.
    shown = [e for e in explanations if not e.blank]
    assert shown and all(e.heatmap.max() == pytest.approx(1.0, abs=1e-3) and e.heatmap.std() > 0.05 for e in shown)


class _Flat(nn.Module):
    num_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("arch", "size", "layer", "reshaped"), [("test_vit", 160, "norm1", True), ("test_resnet", 64, "layer4", False)]
)
def test_cam_layer_is_found_for_cnns_and_vits(arch: str, size: int, layer: str, reshaped: bool) -> None:
    import timm

    backbone = timm.create_model(arch, num_classes=0, pretrained=False)
    model = TransferModel(backbone, nn.Linear(backbone.num_features, 2)).eval()
    found = find_cam_layer(model, torch.randn(1, 3, size, size))
    assert found.name.endswith(layer)
    assert (found.reshape is not None) == reshaped


def test_a_model_without_a_spatial_map_gets_a_clear_error() -> None:
    model = TransferModel(_Flat(), nn.Linear(8, 2))
    with pytest.raises(TlcoreError, match="no layer for Grad-CAM"):
        find_cam_layer(model, torch.randn(1, 3, 16, 16))


# -- the HTML report ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def html_report(runs: dict[str, Path], tl_module: Callable[..., int]) -> Path:
    output = runs["alike"] / "page" / "report.html"
    assert tl_module("report", runs["alike"], "--output", output, "--errors", "3") == 0
    return output


def test_report_is_one_self_contained_page_with_every_section(html_report: Path, runs: dict[str, Path]) -> None:
    html = html_report.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    for name in CLASSIFICATION_PLOTS:
        assert f'id="plot-{name}"' in html
    assert html.count('src="data:image/png;base64,') == len(CLASSIFICATION_PLOTS)
    assert 1 <= html.count('src="data:image/jpeg;base64,') <= 3, "the gallery of confident errors is missing"
    assert re.search(r'(src|href)="(?!data:|#)', html) is None, "the page loads something from outside itself"
    report = _report(runs["alike"])
    low, high = report["intervals"]["metrics"]["accuracy"]["low"], report["intervals"]["metrics"]["accuracy"]["high"]
    assert f"[{low:.3f}, {high:.3f}]" in html, "the bootstrap interval of accuracy is not shown"
    assert report["data"]["source"] in html and "test_efficientnet" in html and "feature-extraction" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    _chromium() is None and not os.environ.get("CI"),  # CI installs it (.ci/run): there a missing browser fails
    reason="Debian's chromium is not installed (apt-get install chromium)",
)
def test_report_renders_its_sections_in_headless_chromium(html_report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    assert browser is not None
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    result = subprocess.run(
        [*command, "--dump-dom", html_report.resolve().as_uri()], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom, f"section {section} did not render"
    for heading in ("Summary", "Metrics", "Plots", "Most confident errors", "Data", "Model &amp; weights"):
        assert f"<h2>{heading}</h2>" in dom
    assert dom.count("<img ") >= len(CLASSIFICATION_PLOTS) + 1


# -- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_predicts_what_pytorch_predicts(runs: dict[str, Path], tl: Tl, tmp_path: Path, fmt: str) -> None:
    output = tmp_path / f"model.{fmt}"
    code, out, err = tl("export", runs["colours"], "--format", fmt, "--output", output)
    assert code == 0, err
    result = json.loads(out)
    assert result["max_abs_diff"] < 1e-4 and result["same_predictions"] is True
    assert result["checked_on"].endswith("test image(s)")
    sidecar = json.loads(Path(f"{output}.json").read_text())
    assert sidecar["output"]["classes"] == ["blue", "green", "red"]
    if fmt == "onnx":
        # Independently: raw 0-255 pixels through onnxruntime give the run's own test probabilities.
        import onnxruntime as ort

        from tlcore.reports.explain import ModelInputs

        rows = [r for r in _rows(runs["colours"]) if r["split"] == "test"]
        inputs = ModelInputs(load_meta(runs["colours"]))
        pixels = inputs.batch([inputs.read(r["path"]) for r in rows]).numpy()
        session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        got = session.run(None, {"pixels": pixels})[0]
        expected = np.array([[float(r[f"proba_{c}"]) for c in ("blue", "green", "red")] for r in rows])
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_scikit_learn_heads_cannot_be_exported(runs: dict[str, Path]) -> None:
    meta = load_meta(runs["colours"])
    model = TransferModel(nn.Identity(), EstimatorHead(object()))
    with pytest.raises(TlcoreError, match="scikit-learn estimator"):
        check_exportable(meta, model)


# -- bad run directories ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["report"], ["export", "--format", "onnx"], ["explain", "x.png"]])
def test_a_bad_run_dir_is_one_line_and_exit_2(tl: Tl, tmp_path: Path, command: list[str]) -> None:
    for run_dir in (tmp_path / "missing", tmp_path):
        image = tmp_path / "x.png"
        Image.new("RGB", (8, 8)).save(image)
        argv = [command[0], run_dir, *[image if a == "x.png" else a for a in command[1:]]]
        code, out, err = tl(*argv)
        assert code == 2, (argv, out, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
