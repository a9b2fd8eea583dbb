"""The Python API (tlcore.train, tlcore.load, tlcore.Run) against the command line, on tiny generated images.

Runs are feature extraction with a random-initialised ``test_resnet`` at 32 px and a logistic-regression
head: a few seconds each on 2 cores.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

import tlcore
from tests.conftest import same_settings_report, write_image_folder
from tlcore.errors import ConfigError, TlcoreError, TlcoreWarning
from tlcore.models.weights import cache_root
from tlcore.plugins import reset_host

Tl = Callable[..., tuple[int, str, str]]
#: Small and quick: a random-initialised tiny timm model, no weights to load.
SETTINGS: dict[str, Any] = {
    "backbone": "test_resnet",
    "weights": "none",
    "image_size": 32,
    "batch_size": 16,
    "head": "logistic-regression",
    "bootstrap": 0,
}
CLASSES = ["blue", "green", "red"]


def cli_settings(settings: dict[str, Any]) -> list[str]:
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A colour dataset and one run trained on it through the API, from a working directory of its own."""
    base = tmp_path_factory.mktemp("api")
    folder = write_image_folder(base / "colours", {"train": 6, "val": 3, "test": 3})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(base)
        mp.setenv("TLCORE_LOAD_PLUGINS", "")
        mp.delenv("TLCORE_DISABLE_PLUGINS", raising=False)
        reset_host(None)
        run = tlcore.train(folder, "feature-extraction", progress=False, **SETTINGS)
        yield {"base": base, "folder": folder, "run": run}
        reset_host(None)


def test_train_writes_a_new_run_named_after_the_preset(world: dict[str, Any]) -> None:
    run = world["run"]
    assert run.dir.parent == world["base"] / "runs"
    assert re.fullmatch(r"feature-extraction-\d{8}-\d{6}", run.dir.name)
    assert run.report["technique"] == "feature-extraction"
    assert run.config["head"] == "logistic-regression" and run.config["progress"] is False
    assert run.report["data"]["classes"] == CLASSES
    assert isinstance(run.metrics, pd.DataFrame)  # a scikit-learn head has no epochs: an empty table
    assert not run.model.training


def test_the_cli_and_the_api_write_the_same_report(world: dict[str, Any]) -> None:
    from tlcore.cli import main

    reset_host(None)
    output = world["base"] / "cli-run"
    args = ["--preset", "feature-extraction", "--data", str(world["folder"]), "--output", str(output)]
    assert main(["train", *args, *cli_settings({**SETTINGS, "progress": "false"})]) == 0
    cli_report = json.loads((output / "report.json").read_text())
    assert same_settings_report(cli_report) == same_settings_report(world["run"].report)


def test_predict_gives_the_probabilities_of_predictions_csv(world: dict[str, Any]) -> None:
    run = tlcore.load(world["run"].dir)
    with (run.dir / "predictions.csv").open(newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["split"] == "test")
    path = row["path"]
    expected = [float(row[f"proba_{c}"]) for c in CLASSES]
    pixels = np.asarray(Image.open(path).convert("RGB"))
    tables = {
        "path": run.predict(path),
        "folder": run.predict(Path(path).parent),
        "pil": run.predict(Image.open(path)),
        "array": run.predict(pixels),
        "float array": run.predict(pixels.astype(np.float32) / 255),
    }
    assert len(tables["folder"]) == len(list(Path(path).parent.iterdir()))
    assert tables["pil"].index.tolist() == tables["array"].index.tolist() == ["image-0"]
    for name, table in tables.items():
        assert list(table.columns) == ["label", *CLASSES], name
        hit = table.loc[[i for i in table.index if i == "image-0" or Path(i).name == Path(path).name]]
        assert len(hit) == 1, name
        np.testing.assert_allclose(hit[CLASSES].to_numpy(dtype=float)[0], expected, atol=1e-5, err_msg=name)
        assert hit["label"].iloc[0] == row["prediction"], name
    mixed = run.predict([path, Image.open(path), pixels])
    assert [Path(i).name for i in mixed.index] == [Path(path).name, "image-0", "image-1"]


def test_evaluate_gives_the_reports_test_scores_and_writes_the_file(world: dict[str, Any]) -> None:
    run = world["run"]
    metrics = run.evaluate(split="test")
    for key in ("n", "accuracy", "balanced_accuracy", "macro_f1", "log_loss"):
        assert metrics[key] == pytest.approx(run.report["test"][key], abs=1e-9), key
    written = json.loads((run.dir / "evaluation-test.json").read_text())
    assert written["split"] == "test" and written["metrics"]["accuracy"] == metrics["accuracy"]


def test_report_explain_stress_and_export_write_what_the_commands_write(world: dict[str, Any]) -> None:
    run = world["run"]
    page = run.html_report(errors=2)
    assert page == run.dir / "report.html" and page.stat().st_size > 0
    image = next((world["folder"] / "test" / "red").glob("*.png"))
    [row] = run.explain(image)
    assert Path(row["overlay"]).is_file() and row["explained"] in CLASSES
    report = run.stress(only=["blur"])
    assert [p["name"] for p in report["perturbations"]] == ["blur"] and (run.dir / "stress-val.json").is_file()
    exported = run.export("torchscript")
    assert Path(exported["output"]).is_file() and exported["max_abs_diff"] <= exported["tolerance"]


def test_train_from_a_dataframe_writes_a_manifest_tl_evaluate_reads(world: dict[str, Any], tmp_path: Path) -> None:
    from tlcore.cli import main

    folder = world["folder"]
    rows = [
        {"path": str(p), "label": p.parent.name, "split": p.parent.parent.name} for p in sorted(folder.rglob("*.png"))
    ]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    frame = pd.DataFrame([*rows, {"path": str(broken), "label": "red", "split": "train"}])
    with pytest.warns(TlcoreWarning, match=r"skipped 1 unreadable image"):
        run = tlcore.train(frame, "feature-extraction", tmp_path / "frame-run", progress=False, **SETTINGS)
    manifest = Path(yaml.safe_load((run.dir / "config.yaml").read_text())["data"])
    assert manifest.parent == cache_root() / "manifests"
    assert manifest.stem == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert run.report["data"]["adapter"] == "csv-manifest"
    assert run.report["data"]["counts"] == {"train": 18, "val": 9, "test": 9}
    reset_host(None)
    assert main(["evaluate", str(run.dir)]) == 0
    evaluated = json.loads((run.dir / "evaluation-test.json").read_text())["metrics"]
    assert evaluated["accuracy"] == pytest.approx(run.report["test"]["accuracy"])
    assert run.evaluate(pd.DataFrame(rows))["n"] == 9


@pytest.mark.parametrize(("setting", "cli"), [({"epohcs": 3}, "epohcs=3"), ({"epochs": 0}, "epochs=0")])
def test_a_bad_setting_is_the_error_the_cli_prints(
    world: dict[str, Any], tl: Tl, setting: dict[str, Any], cli: str
) -> None:
    with pytest.raises(ConfigError) as info:
        tlcore.train(world["folder"], "feature-extraction", **setting)
    code, _, err = tl("train", "--preset", "feature-extraction", "--data", world["folder"], "--set", cli)
    assert code == 2 and err.strip() == f"error: {info.value}"


def test_a_missing_or_unfinished_run_is_the_error_the_cli_prints(tl: Tl, tmp_path: Path) -> None:
    with pytest.raises(TlcoreError, match="does not exist") as info:
        tlcore.load(tmp_path / "nowhere")
    code, _, err = tl("evaluate", tmp_path / "nowhere")
    assert code == 2 and err.strip() == f"error: {info.value}"
    half = tmp_path / "half"
    half.mkdir()
    (half / "incomplete.json").write_text("{}")
    with pytest.raises(TlcoreError, match="unfinished"):
        tlcore.load(half)


def test_import_tlcore_loads_neither_torch_nor_the_api() -> None:
    code = (
        "import sys, tlcore; light = ('torch' in sys.modules, 'tlcore.api' in sys.modules); "
        # The training engine (tlcore.training) loaded too: tlcore.train is still the API's function.
        "from tlcore.training.run import run_training; import tlcore.api; "
        "print(*light, tlcore.train is tlcore.api.train)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "True"]


def test_train_without_progress_prints_nothing(
    world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLCORE_LOAD_PLUGINS", "")
    reset_host(None)
    capsys.readouterr()
    run = tlcore.train(world["folder"], "feature-extraction", tmp_path / "quiet", progress=False, **SETTINGS)
    assert capsys.readouterr() == ("", "")
    assert (run.dir / "predictions.csv").is_file()  # the run wrote what the engine's status lines announce
    reset_host(None)
