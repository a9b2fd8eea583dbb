"""Weight averaging (``--set ema=DECAY``): the run keeps, scores and saves the averaged weights, and an
interrupted run resumes its average exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.conftest import ctrl_c_after_epoch
from tlcore.training.finetune import weight_average

Tl = Callable[..., tuple[int, str, str]]
RUN = [
    "--preset", "fine-tuning",
    "--set", "backbone=test_resnet", "--set", "weights=none", "--set", "strategy=full", "--set", "lr=0.01",
    "--set", "tta=false", "--set", "checkpoint=last", "--set", "epochs=3", "--set", "image_size=32",
    "--set", "batch_size=8", "--set", "ema=0.9", "--quiet",
]  # fmt: skip


def test_the_average_warms_up_and_lags_behind_the_weights() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    ema = weight_average(model, 0.99, None)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, step=1)  # warm-up: the first update's decay is 0, the average jumps to the weights
    assert torch.allclose(ema.module.weight, model.weight)
    with torch.no_grad():
        model.weight.add_(1.0)
    for step in range(2, 6):
        ema.update(model, step=step)
    between = ema.module.weight
    assert bool((between > start + 1.0).all()) and bool((between < model.weight).all())
    assert weight_average(model, None, None) is None


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> Path:
    return make_folder(tmp_path_factory.mktemp("ema") / "data", {"train": 6, "val": 2, "test": 2}, seed=5)


def test_the_run_scores_and_saves_the_averaged_weights(data: Path, tl: Tl) -> None:
    run = data.parent / "ema"
    code, _, err = tl("train", "--data", data, "--output", run, *RUN)
    assert code == 0, err
    state = torch.load(run / "checkpoint_state.pt", weights_only=True)
    saved = load_file(str(run / "model.safetensors"))
    averaged, raw = state["ema"], state["model"]
    for key, value in averaged.items():
        assert torch.equal(saved[f"{key}"], value), key  # the run's model is the average
    moved = [k for k in averaged if averaged[k].is_floating_point() and not torch.equal(averaged[k], raw[k])]
    assert moved  # and the average is not the last step's weights
    assert json.loads((run / "report.json").read_text())["config"]["ema"] == 0.9


def test_an_interrupted_run_resumes_its_average_exactly(data: Path, tl: Tl) -> None:
    reference, run = data.parent / "ema-reference", data.parent / "ema-resumed"
    assert tl("train", "--data", data, "--output", reference, *RUN)[0] == 0
    with ctrl_c_after_epoch(1):
        assert tl("train", "--data", data, "--output", run, *RUN)[0] == 130
    code, _, err = tl("train", "--resume", run)
    assert code == 0, err
    ours, theirs = load_file(str(run / "model.safetensors")), load_file(str(reference / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
