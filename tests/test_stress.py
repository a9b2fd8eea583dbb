"""tl stress: the same images under acquisition changes, and which cues a model leans on."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tlcore.errors import PluginError, UnknownNameError
from tlcore.plugins import PluginHost
from tlcore.registry import Entry, Registry
from tlcore.reports import stress
from tlcore.specs import Perturbation

CORE: Registry[Perturbation] = PluginHost(load_entrypoints=False).perturbations

Tl = Callable[..., tuple[int, str, str]]


def textured(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    """A mid-grey image with a bright centre square and noise: every change below moves some pixel."""
    rng = np.random.default_rng(seed)
    u = np.full(shape, 0.45, np.float32) + rng.normal(0, 0.08, shape).astype(np.float32)
    h, w = shape[:2]
    u[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] += 0.3
    u = np.clip(u, 0, 1)
    return np.round(u * 255).astype(np.uint8) if dtype == np.uint8 else (u * 1000 - 200).astype(dtype)


@pytest.mark.parametrize("shape,dtype", [((40, 48, 3), np.uint8), ((40, 48, 1), np.uint8), ((40, 48, 4), np.float32)])
def test_every_change_keeps_shape_dtype_and_range_and_moves_pixels(shape: tuple[int, ...], dtype: type) -> None:
    image = textured(shape, dtype)
    assert len(CORE) == 16
    for p in stress.select(CORE, None):
        out = stress.perturb(image, p)
        assert out.shape == image.shape and out.dtype == image.dtype, p.name
        if dtype != np.uint8:  # other data stays inside the image's own range (uint8: 0-255 by its dtype)
            assert out.min() >= image.min() - 1e-3 and out.max() <= image.max() + 1e-3, p.name
        assert not np.array_equal(out, image), p.name


def test_changes_do_what_their_names_say() -> None:
    image = textured((60, 60, 3))
    def run(name: str, img: np.ndarray = image) -> np.ndarray:
        return stress.perturb(img, CORE.entry(name)).astype(np.float32)

    grey = image.astype(np.float32)
    assert run("darker").mean() < grey.mean() - 20 and run("brighter").mean() > grey.mean() + 20
    assert run("low-contrast").std() < grey.std() < run("high-contrast").std()
    sharpness = lambda a: cv2.Laplacian(a, cv2.CV_32F).var()  # noqa: E731
    assert sharpness(run("blur")) < sharpness(grey) / 2 and sharpness(run("downscale")) < sharpness(grey)
    assert sharpness(run("sharpen")) > sharpness(grey)
    # framing: the bright centre square grows when zoomed in and shrinks, inside a black border, when zoomed out
    square = np.full((60, 60, 3), 100, np.uint8)
    square[20:40, 20:40] = 200
    bright = lambda a: int((a[:, :, 0] > 150).sum())  # noqa: E731
    assert bright(square) == 400
    assert bright(run("zoom-in", square)) == pytest.approx(400 * 1.2**2, rel=0.1)
    assert bright(run("zoom-out", square)) == pytest.approx(400 * 0.8**2, rel=0.1)
    assert run("zoom-out")[0, 0].max() == 0 and run("narrow")[:, 0].max() == 0
    assert run("rotate")[0, 0].max() == 0
    # noise and JPEG are the same on every run (seeded by the image), and noise differs between images
    np.testing.assert_array_equal(run("noise"), run("noise"))
    np.testing.assert_array_equal(run("jpeg"), run("jpeg"))
    other = textured((60, 60, 3), seed=1)
    assert not np.array_equal(run("noise") - grey, run("noise", other) - other.astype(np.float32))


def test_select_keeps_the_catalogue_order_and_suggests_a_name_on_a_typo() -> None:
    assert [e.name for e in stress.select(CORE, ["zoom-in", "blur"])] == ["blur", "zoom-in"]
    everything = [e.name for e in stress.select(CORE, None)]
    assert everything[:5] == ["blur", "downscale", "sharpen", "jpeg", "noise"] and everything[-1] == "rotate"
    with pytest.raises(UnknownNameError, match="unknown perturbation 'blurr'") as info:
        stress.select(CORE, ["blurr"])
    assert "did you mean 'blur'?" in (info.value.hint or "") and "tl list perturbations" in (info.value.hint or "")


def test_a_broken_plugin_change_fails_with_one_line_naming_the_plugin() -> None:
    image = textured((8, 8, 3))
    crash = Entry("acme/crash", Perturbation("acme/crash", "raises", lambda u: 1 / 0), "acme")
    with pytest.raises(PluginError, match="perturbation 'acme/crash' from plugin 'acme' failed: ZeroDivisionError"):
        stress.perturb(image, crash)
    shrink = Entry("acme/shrink", Perturbation("acme/shrink", "crops", lambda u: u[:4]), "acme")
    with pytest.raises(PluginError, match=r"turned a \(8, 8, 3\) image into \(4, 8, 3\)"):
        stress.perturb(image, shrink)


def test_summary_flags_changes_that_flip_predictions_and_names_the_class_hit() -> None:
    classes = ["NORMAL", "PNEUMONIA"]
    y = np.array([0] * 10 + [1] * 10)
    clean = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    flipped = clean.copy()
    flipped[:3] = [0.2, 0.8]  # three normals now called pneumonia
    same = clean * 0.99 + 0.005
    from tlcore.metrics.classification import classification_metrics

    blur, jpeg = stress.select(CORE, ["blur", "jpeg"])
    report = stress.summarise(
        "classification", classification_metrics(y, clean, classes), clean,
        [(blur, classification_metrics(y, same, classes), same),
         (jpeg, classification_metrics(y, flipped, classes), flipped)],
    )
    rows = {r["name"]: r for r in report["perturbations"]}
    assert report["metric"] == "balanced_accuracy" and report["clean"]["balanced_accuracy"] == 1.0
    assert rows["blur"]["changed"] == 0.0 and not rows["blur"]["flagged"]
    assert rows["jpeg"]["changed"] == pytest.approx(0.15) and rows["jpeg"]["drop"] == pytest.approx(0.15)
    assert rows["jpeg"]["worst_class"] == {"class": "NORMAL", "recall": 0.7, "clean_recall": 1.0}
    assert rows["jpeg"]["recall"] == {"NORMAL": 0.7, "PNEUMONIA": 1.0} and report["clean"]["recall"]["NORMAL"] == 1.0
    assert report["flagged"] == ["jpeg"]
    assert report["thresholds"] == {"drop": 0.03, "changed": 0.05, "class_recall_fall": 0.05}
    (line,) = stress.warning_lines(report)
    assert line.startswith("warning: jpeg (") and "changes 15% of predictions" in line
    assert "NORMAL recall 1.00 -> 0.70" in line


def test_predictions_that_only_wobble_are_not_flagged() -> None:
    """10 % of the calls change, but one normal that was wrong is now right and one that was right is now
    wrong: no class loses recall and the score holds, so nothing the model leans on was found."""
    from tlcore.metrics.classification import classification_metrics

    classes = ["NORMAL", "PNEUMONIA"]
    y = np.array([0] * 10 + [1] * 10)
    clean = np.where(y[:, None] == np.arange(2), 0.9, 0.1)
    clean[9] = [0.4, 0.6]
    moved = clean.copy()
    moved[9], moved[8] = [0.6, 0.4], [0.4, 0.6]
    (noise,) = stress.select(CORE, ["noise"])
    report = stress.summarise("classification", classification_metrics(y, clean, classes), clean,
                              [(noise, classification_metrics(y, moved, classes), moved)])
    (row,) = report["perturbations"]
    assert row["changed"] == pytest.approx(0.10) and row["drop"] == pytest.approx(0.0)
    assert not row["flagged"] and stress.warning_lines(report) == []


def framing_folder(root: Path, per_class: dict[str, int]) -> Path:
    """Two classes told apart only by framing: the same bright disk on a noisy background, its radius 1.25x
    larger in one class. A model trained on it leans on framing, which `tl stress` must find."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for name, radius in (("near", 20), ("far", 16)):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                u = rng.normal(90, 12, (64, 64)).astype(np.float32)
                centre = (32 + int(rng.integers(-3, 4)), 32 + int(rng.integers(-3, 4)))
                cv2.circle(u, centre, radius, 200.0, thickness=-1)
                Image.fromarray(np.clip(u, 0, 255).astype(np.uint8)).convert("RGB").save(folder / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def framing_run(tmp_path_factory: pytest.TempPathFactory, tl_module: Callable[..., int],
                  fast: list[str]) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("stress")
    data = framing_folder(base / "framing", {"train": 16, "val": 8, "test": 4})
    out = base / "run"
    assert tl_module("train", "--preset", "feature-extraction", "--data", data, "--output", out, *fast) == 0
    return {"data": data, "run": out}


def test_stress_finds_the_cue_a_model_leans_on(framing_run: dict[str, Path], tl: Tl) -> None:
    run = framing_run["run"]
    code, _, err = tl("stress", run, "--only", "blur,darker,zoom-in", "--quiet")
    assert code == 0, err
    report = json.loads((run / "stress-val.json").read_text())
    assert report["split"] == "val" and [r["name"] for r in report["perturbations"]] == ["blur", "darker", "zoom-in"]
    rows = {r["name"]: r for r in report["perturbations"]}
    # a far disk framed tighter looks near: the far images change class; exposure changes nothing
    assert report["clean"]["balanced_accuracy"] == 1.0
    assert rows["zoom-in"]["flagged"] and rows["zoom-in"]["changed"] >= 0.3
    assert rows["zoom-in"]["worst_class"]["class"] == "far" and rows["zoom-in"]["worst_class"]["recall"] < 0.5
    assert not rows["darker"]["flagged"] and rows["darker"]["changed"] < 0.05
    assert "warning: zoom-in (" in err and "far recall 1.00 -> " in err
    assert (run / "stress-val.png").stat().st_size > 1000
    code, _, err = tl("report", run, "--errors", "0")
    assert code == 0, err
    assert "Stress test (val split)" in (run / "report.html").read_text()
    # the clean score is the plain evaluation's
    code, _, err = tl("evaluate", run, "--split", "val")
    assert code == 0, err
    plain = json.loads((run / "evaluation-val.json").read_text())["metrics"]
    assert report["clean"]["metrics"]["balanced_accuracy"] == pytest.approx(plain["balanced_accuracy"])
    assert report["clean"]["metrics"]["n"] == plain["n"] == 16


def test_stress_bad_input_is_one_line(framing_run: dict[str, Path], tl: Tl) -> None:
    code, out, err = tl("stress", framing_run["run"], "--only", "blurr")
    assert code != 0 and out == ""
    assert "unknown perturbation 'blurr'" in err and len(err.strip().splitlines()) == 1
    # the run's stress_perturbations are run too (a preset names its modality's): an unknown one is one line
    code, out, err = tl("stress", framing_run["run"], "--set", "stress_perturbations=[acme/fog]")
    assert code != 0 and "unknown perturbation 'acme/fog'" in err and len(err.strip().splitlines()) == 1
    code, out, err = tl("stress", framing_run["run"], "--split", "holdout")
    assert code != 0 and "has no 'holdout' split" in err and len(err.strip().splitlines()) == 1
