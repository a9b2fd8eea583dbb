"""Precision and memory settings: which arithmetic a (precision, device) pair gets, gradient accumulation
(``grad_accumulation``), gradient clipping (``grad_clip``) and fp16 loss scaling, with its scale resumed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tests.conftest import ctrl_c_after_epoch
from tlcore import runtime
from tlcore.errors import ConfigError
from tlcore.predict import predict_proba
from tlcore.runtime import autocast, grad_scaler, resolve_precision
from tlcore.training import finetune
from tlcore.training.finetune import Stepper

Tl = Callable[..., tuple[int, str, str]]
CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


def fake_gpu(monkeypatch: pytest.MonkeyPatch, capability: tuple[int, int], bf16: bool) -> None:
    """A CUDA GPU of ``capability`` that torch reports bf16 support (emulated or native) for or not."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla P100")


#: (precision, device, GPU capability, torch's bf16 support) -> the precision forward passes run in.
TABLE = [
    ("auto", CUDA, (9, 0), True, "bf16"),  # H100
    ("auto", CUDA, (8, 0), True, "bf16"),  # A100
    ("auto", CUDA, (7, 5), True, "fp16"),  # T4: bf16 only emulated, so fp16 with loss scaling
    ("auto", CUDA, (6, 0), False, "fp16"),  # P100
    ("auto", CPU, None, None, "fp32"),
    ("auto", MPS, None, None, "fp32"),
    ("bf16", CUDA, (8, 6), True, "bf16"),
    ("bf16", CUDA, (7, 0), True, "bf16"),  # asked for: torch emulates it
    ("bf16", CPU, None, None, "bf16"),
    ("fp16", CUDA, (9, 0), True, "fp16"),
    ("fp16", CPU, None, None, "fp16"),
    ("fp32", CUDA, (9, 0), True, "fp32"),
    ("fp32", CPU, None, None, "fp32"),
]


@pytest.mark.parametrize(("setting", "device", "capability", "bf16", "expected"), TABLE)
def test_the_precision_of_each_setting_and_device(
    setting: str,
    device: torch.device,
    capability: tuple[int, int] | None,
    bf16: bool | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if capability is not None:
        fake_gpu(monkeypatch, capability, bool(bf16))
    assert resolve_precision(setting, device) == expected
    assert runtime.AUTOCAST_DTYPES[expected] == {"bf16": torch.bfloat16, "fp16": torch.float16}.get(expected)


def test_an_impossible_precision_is_one_line_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_gpu(monkeypatch, (6, 0), bf16=False)
    with pytest.raises(ConfigError) as err:
        resolve_precision("bf16", CUDA)
    assert "precision=bf16 but Tesla P100 cannot compute in bf16" in err.value.message
    assert err.value.hint is not None and "precision=fp16" in err.value.hint
    assert "\n" not in str(err.value)
    monkeypatch.setattr(torch.backends.mps, "is_macos_or_newer", lambda major, minor: False)
    with pytest.raises(ConfigError, match="macOS 14"):
        resolve_precision("bf16", MPS)
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", CPU)


def test_autocast_and_the_scaler_follow_the_rule_on_the_cpu() -> None:
    layer = nn.Linear(4, 2)
    x = torch.randn(3, 4)
    for setting, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        with autocast(CPU, setting):
            assert layer(x).dtype == dtype, setting
    with autocast(CPU):  # auto: full precision on the CPU, as before
        assert layer(x).dtype == torch.float32
    scaler = grad_scaler("fp16", CPU)
    assert isinstance(scaler, torch.amp.GradScaler) and scaler.is_enabled()
    assert grad_scaler("bf16", CPU) is None and grad_scaler("auto", CPU) is None


class Images(Dataset[tuple[torch.Tensor, int]]):
    """Eight random 3x8x8 "images", normalised as ImageDataset does (to float on the device)."""

    def __init__(self) -> None:
        self.x = torch.rand(8, 3, 8, 8)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], 0

    def normalize(self, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        return x.to(device).float()


class Recorder(nn.Module):
    """A classifier that records the autocast dtype its forward passes run under."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 2)
        self.seen: list[torch.dtype | None] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None)
        return self.fc(x.flatten(1))


def test_scoring_uses_the_same_rule() -> None:
    """Val scores during training, report.json and every command score through predict_proba."""
    loader = DataLoader(Images(), batch_size=4)
    model = Recorder()
    full = predict_proba(model, loader, CPU)
    assert model.seen == [None, None]
    low = predict_proba(model, loader, CPU, precision="bf16")
    assert model.seen[2:] == [torch.bfloat16, torch.bfloat16]
    assert np.abs(low - full).max() < 0.05 and not np.array_equal(low, full)


# -- the optimizer step: accumulation, clipping, loss scaling ---------------------------------------


def regression(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, generator=g), torch.randn(8, 3, generator=g) * 10


def stepper(
    model: nn.Module, accumulation: int = 1, clip: float | None = None, scaler: Any = None, adam: bool = False
) -> Stepper:
    params = model.parameters()
    optimizer = torch.optim.AdamW(params, lr=0.1) if adam else torch.optim.SGD(params, lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return Stepper(optimizer, scheduler, accumulation, clip, scaler)


def fresh_model() -> nn.Linear:
    torch.manual_seed(3)
    return nn.Linear(5, 3)  # no BatchNorm, no dropout


@pytest.mark.parametrize("adam", [False, True])
def test_two_accumulated_batches_make_the_step_of_one_batch_twice_as_large(adam: bool) -> None:
    x, y = regression()
    big, small = fresh_model(), fresh_model()
    one = stepper(big, adam=adam)
    for _ in range(3):  # three steps, so AdamW's moments see the gradients' scale too
        assert one.backward(nn.functional.mse_loss(big(x), y), 0, 1)
    two = stepper(small, accumulation=2, adam=adam)
    for _ in range(3):
        assert not two.backward(nn.functional.mse_loss(small(x[:4]), y[:4]), 0, 2)  # gradients only add up
        assert two.backward(nn.functional.mse_loss(small(x[4:]), y[4:]), 1, 2)  # the group's last: a step
    assert two.scheduler.last_epoch == one.scheduler.last_epoch == 3  # the schedule counts optimizer steps
    assert not torch.equal(big.weight, fresh_model().weight)
    torch.testing.assert_close(small.weight, big.weight, rtol=0, atol=1e-6)
    torch.testing.assert_close(small.bias, big.bias, rtol=0, atol=1e-6)


def test_the_last_partial_group_of_an_epoch_steps() -> None:
    x, y = regression()
    model = fresh_model()
    run = stepper(model, accumulation=2)
    stepped = [run.backward(nn.functional.mse_loss(model(x[i : i + 3]), y[i : i + 3]), b, 3)
               for b, i in enumerate((0, 3, 6))]  # fmt: skip
    assert stepped == [False, True, True]
    assert run.scheduler.last_epoch == Stepper.steps(3, 2) == 2
    assert [Stepper.steps(n, 4) for n in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]


def applied_gradients(run: Stepper) -> list[torch.Tensor]:
    """The gradients each optimizer step applies, as it applies them."""
    seen: list[torch.Tensor] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad.detach().clone().flatten() for g in optimizer.param_groups for p in g["params"]]
        seen.append(torch.cat(grads))

    run.optimizer.register_step_pre_hook(record)
    return seen


@pytest.mark.parametrize("scaled", [False, True], ids=["fp32", "fp16-scaler"])
def test_grad_clip_bounds_the_norm_the_optimizer_applies(scaled: bool) -> None:
    x, y = regression()
    reference = fresh_model()
    nn.functional.mse_loss(reference(x), y).backward()
    grads = [p.grad for p in reference.parameters() if p.grad is not None]
    raw = torch.cat([g.flatten() for g in grads]).clone()
    assert raw.norm() > 5  # well above the bound: clipping has work to do
    torch.nn.utils.clip_grad_norm_(list(reference.parameters()), 0.5)
    expected = torch.cat([p.grad.flatten() for p in reference.parameters() if p.grad is not None])

    model = fresh_model()
    run = stepper(model, clip=0.5, scaler=torch.amp.GradScaler("cpu", init_scale=1024.0) if scaled else None)
    seen = applied_gradients(run)
    assert run.backward(nn.functional.mse_loss(model(x), y), 0, 1)
    assert len(seen) == 1
    assert seen[0].norm() <= 0.5 * (1 + 1e-5)  # clipped after unscaling, not the scaled gradients
    torch.testing.assert_close(seen[0], expected, rtol=1e-5, atol=1e-7)

    unclipped = fresh_model()
    free = stepper(unclipped)
    seen_free = applied_gradients(free)
    free.backward(nn.functional.mse_loss(unclipped(x), y), 0, 1)
    torch.testing.assert_close(seen_free[0], raw)  # without grad_clip the gradients pass untouched


def test_the_scaler_skips_a_step_whose_gradients_overflowed() -> None:
    model = fresh_model()
    before = model.weight.detach().clone()
    run = stepper(model, scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    loss = model(torch.full((2, 5), float("inf"))).sum()
    assert run.backward(loss, 0, 1)
    assert torch.equal(model.weight, before)  # skipped
    assert run.scaler is not None and run.scaler.get_scale() == 512.0  # and the scale backed off
    assert run.scheduler.last_epoch == 1  # the schedule still counts the step


# -- end to end: the optimizer steps of a run, and fp16's loss scale across a resume ------------------

RUN = [
    "--preset", "fine-tuning",
    "--set", "backbone=test_resnet", "--set", "weights=none", "--set", "strategy=full", "--set", "lr=0.01",
    "--set", "tta=false", "--set", "checkpoint=last", "--set", "epochs=2", "--set", "image_size=32",
    "--set", "batch_size=8", "--set", "grad_accumulation=2", "--set", "grad_clip=1.0", "--set", "precision=fp16",
    "--set", "bootstrap=0", "--set", "shift_check=false", "--quiet",
]  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> Path:
    # 18 training images in batches of 8: 3 batches an epoch, 2 optimizer steps with grad_accumulation=2
    return make_folder(tmp_path_factory.mktemp("precision") / "data", {"train": 6, "val": 2, "test": 2}, seed=7)


def test_an_fp16_run_steps_per_group_and_resumes_its_loss_scale(data: Path, tl: Tl) -> None:
    run = data.parent / "fp16"
    with ctrl_c_after_epoch(1):
        assert tl("train", "--data", data, "--output", run, *RUN)[0] == 130
    path = run / finetune.CHECKPOINT_STATE
    state = torch.load(path, weights_only=True)
    assert state["scheduler"]["last_epoch"] == 2  # ceil(3 batches / 2): the partial group steps too
    assert state["scaler"]["scale"] >= 2.0**12  # GradScaler's 65536, less a few back-offs at most
    state["scaler"]["scale"] = 256.0  # a scale the run would not reach by itself in 4 steps
    torch.save(state, path)

    code, _, err = tl("train", "--resume", run)
    assert code == 0, err
    final = torch.load(path, weights_only=True)
    assert final["scheduler"]["last_epoch"] == 4
    assert 1 <= int(next(iter(final["optimizer"]["state"].values()))["step"]) <= 4  # overflows skip steps
    assert 0 < final["scaler"]["scale"] <= 256.0  # restored, not started afresh at 65536
    report = json.loads((run / "report.json").read_text())
    assert report["environment"]["precision"] == "fp16"
    assert report["config"]["grad_accumulation"] == 2 and report["config"]["grad_clip"] == 1.0
    assert 0 <= report["test"]["accuracy"] <= 1
