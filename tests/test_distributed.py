"""Scale-out: ``torchrun`` with 2 CPU processes (gloo) trains the same model as one process.

``batch_size`` is the global batch, and one process uses the same sampler as N, so with nothing that
depends on the per-process batch (no BatchNorm in training mode, no augmentation or dropout draws that
depend on which process sees an image) 2 processes follow one process up to float summation order.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tlcore.config import RunConfig
from tlcore.errors import ConfigError
from tlcore.training import distributed

Tl = Callable[..., tuple[int, str, str]]
#: ConvNeXt normalises with LayerNorm, so per-process batches do not change the forward pass.
TINY_RUN = [
    "--preset", "fine-tuning",
    "--set", "backbone=test_convnext", "--set", "weights=none", "--set", "strategy=full",
    "--set", "lr=0.005", "--set", "tta=false", "--set", "checkpoint=last", "--set", "augmentation=none",
    "--set", "drop_rate=0", "--set", "epochs=2", "--set", "image_size=32", "--set", "batch_size=8", "--quiet",
]  # fmt: skip
TIMING_COLUMNS = {"seconds", "train_images_per_s", "elapsed_s"}


def metrics_rows(run: Path) -> list[dict[str, float]]:
    with (run / "metrics.csv").open(newline="") as fh:
        return [{k: float(v) for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(fh)]


def report(run: Path) -> dict[str, Any]:
    return json.loads((run / "report.json").read_text())


@pytest.mark.slow  # three fresh interpreters (torchrun and 2 workers): about 45 s on 2 busy cores
def test_two_gloo_processes_match_one_process(
    tmp_path: Path, make_folder: Callable[..., Path], tl: Tl, subprocess_env: dict[str, str]
) -> None:
    data = make_folder(tmp_path / "data", {"train": 6, "val": 2, "test": 2}, seed=4)  # 18 train images
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    code, _, err = tl("train", "--data", data, "--output", single, *TINY_RUN)
    assert code == 0, err

    env = {**subprocess_env, "TLCORE_LOAD_PLUGINS": ""}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    argv = [*torchrun, "-m", "tlcore.cli", "train", "--data", str(data), "--output", str(ddp), *TINY_RUN]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run written to") == 1  # rank 0 alone reports

    assert report(ddp)["environment"]["processes"] == 2
    assert report(single)["environment"]["processes"] == 1
    two, one = metrics_rows(ddp), metrics_rows(single)
    assert [r["epoch"] for r in two] == [1, 2]
    for a, b in zip(two, one, strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-5)
    for split in ("val", "test"):
        keys = ("accuracy", "macro_f1", "log_loss")
        got, want = report(ddp)[split], report(single)[split]
        assert {k: got[k] for k in keys} == pytest.approx({k: want[k] for k in keys}, rel=1e-4, abs=1e-5)
    assert not list(ddp.glob(".*.tmp"))


# -- the parts that need no processes -------------------------------------------------------------


def test_a_single_process_context_is_a_no_op() -> None:
    ctx = distributed.current()
    assert (ctx.enabled, ctx.is_main, ctx.world_size) == (False, True, 1)
    assert ctx.sum(3.0, 4.0) == (3.0, 4.0)
    assert ctx.local_batch(32) == 32


@pytest.mark.parametrize(("n", "batch", "drop_last", "world", "steps"), [(18, 8, False, 1, 3), (18, 4, False, 2, 3),
                         (17, 4, False, 2, 3), (18, 4, True, 2, 2), (3, 4, True, 2, 1)])  # fmt: skip
def test_steps_per_epoch_follow_the_padded_shards(n: int, batch: int, drop_last: bool, world: int, steps: int) -> None:
    assert distributed.Context(0, world).steps_per_epoch(n, batch, drop_last) == steps


def test_ranks_split_the_single_process_permutation() -> None:
    data = list(range(10))
    one = list(distributed.Context(0, 1).sampler(data, seed=7, epoch=3))  # type: ignore[arg-type]
    shards = [list(distributed.Context(r, 2).sampler(data, seed=7, epoch=3)) for r in (0, 1)]  # type: ignore[arg-type]
    assert shards[0] == one[0::2] and shards[1] == one[1::2]
    assert one != list(distributed.Context(0, 1).sampler(data, seed=7, epoch=4))  # type: ignore[arg-type]


def test_the_global_batch_must_split_evenly() -> None:
    with pytest.raises(ConfigError, match="batch_size 30 is the global batch") as info:
        distributed.Context(0, 4).local_batch(30)
    assert "batch_size=32" in str(info.value.hint)
    assert distributed.Context(1, 4).local_batch(32) == 8


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"technique": "feature-extraction"}, "torchrun distributes fine-tuning only"),
        ({"balanced_sampling": True}, "balanced_sampling is not available"),
        ({"device": "cuda:1"}, "pins every process to one GPU"),
        ({"batch_size": 5}, "cannot be split evenly over 2 processes"),
    ],
)
def test_unsupported_distributed_settings_fail_before_joining(
    settings: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match=message), distributed.session(RunConfig(**settings)):
        pass
    assert distributed.current().world_size == 1
