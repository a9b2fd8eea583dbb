"""Every command sees a run's model the same way: training's test scores, ``tl evaluate``, ``tl predict``,
``tl explain`` and ``tl report`` agree on the same images, for each task, for float bands and for runs read
through a plugin adapter (DICOM windowing, NIfTI slices).

Tiny generated data and a random-initialised ``test_resnet`` at 32 px (as tests/test_tasks.py) keep each
run to seconds.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import tlcore
import tlcore_medical
from plugins.medical.tests.conftest import brain_volume, write_dicom, write_nifti
from tests.test_tasks import BASE, make_world
from tlcore.config import RunConfig
from tlcore.errors import PluginError
from tlcore.plugins import PluginHost, reset_host
from tlcore.reports.predictions import PREDICTIONS, read_predictions
from tlcore.specs import Augmentation, AugmentationContext
from tlcore.testing import check_augmentation
from tlcore.training.run import run_training

#: How each task's headline metrics must agree: equal (counts of right answers) or to a relative 1e-6.
EQUAL = {"classification": ("accuracy",), "multilabel": ("subset_accuracy",), "regression": ()}
CLOSE = {"classification": ("auc", "balanced_accuracy"), "multilabel": ("auc", "map"), "regression": ("rmse", "mae")}


# -- generated data ----------------------------------------------------------------------------------


def grey_classes(root: Path, classes: dict[str, float], counts: dict[str, int], size: int = 96) -> Path:
    """``root/<split>/<class>/<i>.png``: grey noise around a class's level, with a darker blob; ``size``
    px, larger than the decoded-image cache keeps at 32 px (55), so cached and original pixels differ."""
    rng = np.random.default_rng(0)
    for split, n in counts.items():
        for name, level in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.normal(level, 25, (size, size))
                y, x = rng.integers(0, size // 2, 2)
                pixels[y : y + size // 3, x : x + size // 3] *= 0.6
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{name}_{i:02d}.png")
    return root


def dicom_tree(root: Path) -> Path:
    """train/ and test/ ``{normal,effusion}`` films, two per patient; 'effusion' films are brighter."""
    rng = np.random.default_rng(0)
    for split, patients in (("train", ["p1", "p2", "p3", "p4"]), ("test", ["p8", "p9"])):
        for label, level in (("normal", 800), ("effusion", 2600)):
            for p in patients:
                for i in range(2):
                    stored = (level + rng.integers(0, 900, (40, 36))).astype(np.uint16)
                    write_dicom(root / split / label / f"{p}_{i}.dcm", stored, patient=f"{label}-{p}",
                                window=(2048, 4096))  # fmt: skip
    return root


def nifti_tree(root: Path, patients: int = 6) -> Path:
    """root/images + root/masks: one volume per patient, a lesion in some slices (labels from the masks)."""
    for i in range(patients):
        volume, mask = brain_volume((20, 24, 12), lesion=(4 + i % 3, 7 + i % 3), seed=i)
        write_nifti(root / "images" / f"sub-{i}.nii.gz", volume)
        write_nifti(root / "masks" / f"sub-{i}.nii.gz", mask)
    return root


# -- runs ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_world(tmp_path_factory.mktemp("one-path"), None, tlcore_medical)


#: name -> (data, settings); the data is a generated dataset's name or a function writing a folder.
_FE = {"technique": "feature-extraction", "head": "logistic-regression"}
_NIFTI = {"mode": "2.5d", "context": 1, "min_mask_voxels": 9}
RUNS: dict[str, tuple[str | Callable[[Path], Path], dict[str, Any]]] = {
    # Fine-tuning through the decoded-image cache (96 px images cached at 55 px) with test-time mirroring.
    "classification": (
        lambda root: grey_classes(root, {"dark": 90, "mid": 130, "light": 170}, {"train": 8, "val": 4, "test": 4}),
        {"technique": "fine-tuning", "strategy": "full", "epochs": 1, "tta": True, "head": "linear"},
    ),
    "multilabel": ("squares", _FE),
    "regression": ("brightness", {"technique": "feature-extraction", "head": "ridge"}),
    "bands": ("bands", {"technique": "fine-tuning", "strategy": "full", "epochs": 1, "head": "linear"}),
    "dicom": (dicom_tree, {**_FE, "adapter": "medical/dicom"}),
    "nifti": (nifti_tree, {**_FE, "adapter": "medical/nifti", "adapter_options": _NIFTI}),
}


def trained(world: dict[str, Any], name: str) -> tuple[Path, Path, dict[str, Any]]:
    """The run ``name`` (trained on first use): its directory, its data and its report."""
    if name not in world["runs"]:
        data, settings = RUNS[name]
        root = world["datasets"][data].root if isinstance(data, str) else data(world["base"] / f"{name}-data")
        adapter = {"adapter": f"tasks/{data}"} if isinstance(data, str) else {}
        config = RunConfig(**{**BASE, "cache_dir": str(world["base"] / "features"), **adapter, **settings})
        run = world["base"] / "runs" / name
        report = run_training(world["host"], config, str(root), run, None)
        world["runs"][name] = (run, Path(root), report)
    run, root, report = world["runs"][name]
    return run, root, report


@pytest.fixture
def tl(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, str, str]]]:
    """``tl`` in-process with the test's plugin host: returns (exit code, stdout, stderr)."""
    from tlcore.cli import main

    def run(*argv: Any) -> tuple[int, str, str]:
        reset_host(world["host"])
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    reset_host(None)


def _test_rows(run: Path, report: dict[str, Any]) -> Any:
    task = report["task"]["task"]
    classes = json.loads((run / "model.json").read_text())["classes"]
    return read_predictions(run / PREDICTIONS, task, classes)["test"]


# -- agreement -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(RUNS))
def test_evaluate_reproduces_the_reports_test_metrics(
    world: dict[str, Any], tl: Callable[..., tuple[int, str, str]], name: str
) -> None:
    run, root, report = trained(world, name)
    code, _, err = tl("evaluate", run, "--data", root, "--split", "test")
    assert code == 0, err
    task = report["task"]["task"]
    metrics = json.loads((run / "evaluation-test.json").read_text())["metrics"]
    assert metrics["n"] == report["test"]["n"]
    for key in EQUAL[task]:
        assert metrics[key] == report["test"][key], key
    for key in CLOSE[task]:
        assert metrics[key] == pytest.approx(report["test"][key], rel=1e-6), key
    if name == "classification":  # the fine-tuning scores went through the cache's shrunk copies before
        assert report["training"]["decoded_cache"] is not None


def _printed_outputs(line: dict[str, Any], classes: list[str]) -> list[float]:
    if "predictions" in line:  # classification: the top-k classes
        probability = {p["label"]: p["probability"] for p in line["predictions"]}
        return [probability[c] for c in classes]
    values = line.get("probabilities") or line["values"]
    return [values[c] for c in classes]


@pytest.mark.parametrize("name", list(RUNS))
def test_predict_returns_the_probabilities_in_predictions_csv(
    world: dict[str, Any], tl: Callable[..., tuple[int, str, str]], name: str
) -> None:
    run, _, report = trained(world, name)
    rows = _test_rows(run, report)
    classes = json.loads((run / "model.json").read_text())["classes"]
    picked = [0, len(rows) // 2, len(rows) - 1]
    items = [rows.paths[i] for i in picked]  # files, or VOLUME::SLICE addresses of a NIfTI run
    code, out, err = tl("predict", run, *items, "--top-k", len(classes))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["image"] for line in lines] == items
    for line, i in zip(lines, picked, strict=True):
        np.testing.assert_allclose(_printed_outputs(line, classes), rows.outputs[i], rtol=1e-5, atol=1e-5)


def test_a_slice_of_a_nifti_run_is_explained_as_the_model_saw_it(
    world: dict[str, Any], tl: Callable[..., tuple[int, str, str]]
) -> None:
    run, _, report = trained(world, "nifti")
    rows = _test_rows(run, report)
    item = rows.paths[0]
    assert "::" in item
    code, out, err = tl("explain", run, item, "--output", world["base"] / "nifti-cam")
    assert code == 0, err
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["image"] == item and Path(row["overlay"]).is_file()
    classes = json.loads((run / "model.json").read_text())["classes"]
    # The heatmap explains the output the run recorded for this slice: same pixels, same model.
    assert row["output"] == pytest.approx(rows.outputs[0][classes.index(row["explained"])], abs=1e-5)


def test_the_reports_gallery_reads_the_slices_of_a_nifti_run(
    world: dict[str, Any], tl: Callable[..., tuple[int, str, str]]
) -> None:
    run, _, report = trained(world, "nifti")
    assert report["test"]["accuracy"] < 1.0  # there are errors to show
    code, _, err = tl("report", run, "--errors", "4")
    assert code == 0, err
    html = (run / "report.html").read_text()
    errors = round((1 - report["test"]["accuracy"]) * report["test"]["n"])
    assert html.count("data:image/jpeg;base64,") == min(4, errors)  # every one read and explained
    assert "heatmaps from layer" in html and "no longer at their recorded paths" not in html
    assert ".nii.gz::" in html  # captions name the slice


def test_evaluate_of_a_run_with_a_plugin_augmentation_prints_the_reports_accuracy(
    world: dict[str, Any], tl: Callable[..., tuple[int, str, str]]
) -> None:
    """Feature extraction with a medical augmentation's augmented views, on a 3-class ultrasound-like set."""
    root = grey_classes(world["base"] / "busi", {"benign": 100, "malignant": 140, "normal": 180},
                        {"train": 6, "val": 3, "test": 4}, size=64)  # fmt: skip
    run = world["base"] / "busi-run"
    sets = [a for k, v in {**BASE, "augmentation": "medical/ultrasound", "feature_views": 1}.items()
            for a in ("--set", f"{k}={v}")]  # fmt: skip
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", root, "--output", run, *sets)
    assert code == 0, err
    report = json.loads((run / "report.json").read_text())
    code, out, err = tl("evaluate", run, "--data", root, "--split", "test")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["accuracy"] == report["test"]["accuracy"]


# -- the eval view ---------------------------------------------------------------------------------


def _own_eval(ctx: AugmentationContext) -> Any:
    """An augmentation whose eval half squashes instead of resize + centre crop."""
    import albumentations as A

    return A.Compose([A.Resize(*ctx.image_size)])


def test_an_eval_half_other_than_the_eval_view_breaks_the_contract_and_is_refused_by_training(
    world: dict[str, Any],
) -> None:
    squash = Augmentation(name="acme/squash", description="squashes for eval", build=_own_eval)
    with pytest.raises(AssertionError, match="not the eval view"):
        check_augmentation(squash)

    class Acme:
        @tlcore.hookimpl
        def register_augmentations(self, register: Callable[[Augmentation], None]) -> None:
            register(squash)

    host = PluginHost(load_entrypoints=False)
    assert host.add_plugin(Acme(), name="acme")
    root = grey_classes(world["base"] / "squash", {"a": 80, "b": 170}, {"train": 4, "val": 2, "test": 2}, size=40)
    config = RunConfig(**{**BASE, "augmentation": "acme/squash", "cache_dir": str(world["base"] / "features")})
    with pytest.raises(PluginError, match=r"eval transform .* is not the eval view") as caught:
        run_training(host, config, str(root), world["base"] / "squash-run", None)
    assert "\n" not in str(caught.value) and "acme" in str(caught.value)
    assert not (world["base"] / "squash-run").exists()  # refused before the run directory is written


def test_library_code_never_imports_the_command_line() -> None:
    package = Path(tlcore.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.is_relative_to(package / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n == "tlcore.cli" or n.startswith("tlcore.cli.") for n in names):
                offenders.append(str(path.relative_to(package)))
    assert offenders == []
