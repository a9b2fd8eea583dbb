"""Slow tests on the real datasets in ../shared/datasets (run with `pytest -m slow`).

They check the issue's acceptance numbers with the presets untouched; they are skipped where the
shared datasets are not present.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tlcore.cli import main
from tlcore.plugins import reset_host

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
BEANS = SHARED / "beans"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BEANS.is_dir(), reason="../shared/datasets/beans not present"),
]


@pytest.fixture(autouse=True)
def all_torch_threads() -> Iterator[None]:
    """Real-data runs are timed against the issue's limits: give them every core (the fast suite pins one)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield
    torch.set_num_threads(before)


def _train(preset: str, out: Path, *extra: str) -> dict:
    reset_host(None)
    assert main(["train", "--preset", preset, "--data", str(BEANS), "--output", str(out), "--quiet", *extra]) == 0
    return json.loads((out / "report.json").read_text())


def test_feature_extraction_preset_on_beans(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _train("feature-extraction", tmp_path / "fe")
    assert report["test"]["accuracy"] >= 0.88
    assert report["model"]["weights"]["source"] == "file"
    assert report["data"]["counts"] == {"train": 1034, "val": 133, "test": 128}
    assert report["timing"]["total_s"] < 180
    # The model a user validates is the model they deploy: `tl evaluate` prints the report's own test scores.
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "fe"), "--data", str(BEANS), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["accuracy"] == report["test"]["accuracy"] and printed["n"] == 128


def test_fine_tuning_preset_on_beans(tmp_path: Path) -> None:
    report = _train("fine-tuning", tmp_path / "ft")
    assert report["test"]["accuracy"] >= 0.95
    assert report["timing"]["total_s"] < 20 * 60
