"""Crashes and reproducibility: ``kill -9`` mid-epoch, then ``tl train --resume RUN_DIR``, ends where an
uninterrupted run with the same seed ends; and the same seed twice gives the same report on CPU."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Tl = Callable[..., tuple[int, str, str]]
#: A tiny timm model from scratch, so a run takes seconds; 18 train images, batches of 8 (the last one 2).
TINY_RUN = [
    "--preset", "fine-tuning",
    "--set", "backbone=test_resnet", "--set", "weights=none", "--set", "strategy=full",
    "--set", "lr=0.01", "--set", "tta=false", "--set", "checkpoint=last",
    "--set", "epochs=4", "--set", "image_size=32", "--set", "batch_size=8", "--quiet",
]  # fmt: skip
#: Columns that measure the machine, not the model.
TIMING_COLUMNS = {"seconds", "train_images_per_s", "elapsed_s"}

#: Runs ``tl`` with ImageDataset patched so that, a few images into the epoch after the first checkpoint,
#: it touches a marker and waits: the test then kills it with SIGKILL, in the middle of that epoch.
STALL_MID_EPOCH = """
import sys, time
from pathlib import Path
from tlcore.data import dataset

run, marker = Path(sys.argv[1]), Path(sys.argv[2])
original = dataset.ImageDataset.__getitem__
seen = 0

def getitem(self, index):
    global seen
    if (run / "checkpoint_state.pt").exists():
        seen += 1
        if seen == 5:
            marker.touch()
            time.sleep(600)
    return original(self, index)

dataset.ImageDataset.__getitem__ = getitem
from tlcore.cli import main
sys.exit(main(sys.argv[3:]))
"""


def metrics_rows(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [{k: float(v) for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(fh)]


def report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())


def scores(rep: dict[str, Any]) -> dict[str, Any]:
    keys = ("accuracy", "balanced_accuracy", "macro_f1", "auc", "log_loss")
    return {split: {k: rep[split][k] for k in keys} for split in ("val", "test")}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> Path:
    return make_folder(tmp_path_factory.mktemp("resume") / "data", {"train": 6, "val": 2, "test": 2}, seed=4)


@pytest.fixture(scope="module")
def reference(data: Path, tl_module: Callable[..., int]) -> Path:
    """An uninterrupted run."""
    run = data.parent / "reference"
    assert tl_module("train", "--data", data, "--output", run, *TINY_RUN) == 0
    return run


def test_the_same_seed_twice_gives_the_same_report_on_cpu(data: Path, reference: Path, tl: Tl) -> None:
    again = data.parent / "again"
    code, _, err = tl("train", "--data", data, "--output", again, *TINY_RUN)
    assert code == 0, err
    assert metrics_rows(again) == metrics_rows(reference)  # exactly: every loss of every epoch
    assert scores(report(again)) == scores(report(reference))
    assert report(again)["test"]["confusion_matrix"] == report(reference)["test"]["confusion_matrix"]


def test_a_different_seed_gives_a_different_run(data: Path, reference: Path, tl: Tl) -> None:
    # The control for the test above: the seed really drives the run.
    other = data.parent / "other-seed"
    code, _, err = tl("train", "--data", data, "--output", other, *TINY_RUN, "--set", "seed=1")
    assert code == 0, err
    assert [r["train_loss"] for r in metrics_rows(other)] != [r["train_loss"] for r in metrics_rows(reference)]


def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_run(
    data: Path, reference: Path, tl: Tl, subprocess_env: dict[str, str]
) -> None:
    run = data.parent / "killed"
    marker = data.parent / "mid-epoch"
    env = {**subprocess_env, "TLCORE_LOAD_PLUGINS": ""}
    argv = ["train", "--data", str(data), "--output", str(run), *TINY_RUN]
    proc = subprocess.Popen(
        [sys.executable, "-c", STALL_MID_EPOCH, str(run), str(marker), *argv],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, f"the run ended before it was killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    # Killed in epoch 2: epoch 1 is checkpointed, nothing of a finished run exists, nothing is half-written.
    assert len(metrics_rows(run)) == 1
    assert (run / "checkpoint.safetensors").exists()
    assert not (run / "report.json").exists() and not (run / "model.safetensors").exists()
    assert not list(run.glob(".*.tmp"))

    code, _, err = tl("train", "--resume", run)  # the config comes from the run directory
    assert code == 0, err
    assert "resuming after epoch 1" in err
    resumed, uninterrupted = metrics_rows(run), metrics_rows(reference)
    with (run / "metrics.csv").open(newline="") as fh:
        elapsed = [float(row["elapsed_s"]) for row in csv.DictReader(fh)]
    assert elapsed[0] > 0 and elapsed == sorted(set(elapsed))  # rising: the clock survives the kill
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(resumed, uninterrupted, strict=True):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    got, want = scores(report(run)), scores(report(reference))
    for split in ("val", "test"):
        assert got[split] == pytest.approx(want[split], rel=1e-5, abs=1e-6)
