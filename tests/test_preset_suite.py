"""benchmarks/presets.py: an interrupted preset run continues with ``tl train --resume`` (one that never
wrote its config starts again from nothing); the commit it records is that of the tlcore code.

``tl`` itself is replaced by a stand-in that parses its command line with the real parser and writes a
report: what ``--resume`` does to the model is held by tests/test_resume.py."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tlcore.cli import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "presets.py"
SCORES = {"accuracy": 0.9, "balanced_accuracy": 0.8, "per_class": {"a": {"recall": 0.8}}}


@pytest.fixture(scope="module")
def suite() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("preset_suite", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)  # the script puts benchmarks/ first on sys.path: undone after these tests
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:] = path
        del sys.modules[spec.name]


@pytest.fixture
def calls(suite: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Each ``tl`` command line the suite runs; the stand-in writes the report a run leaves."""
    seen: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        args = build_parser().parse_args(cmd[1:])  # the real tl parser: a command tl would refuse fails here
        run_dir = Path(args.resume or args.output)
        run_dir.mkdir(parents=True, exist_ok=True)
        report = {"val": SCORES, "test": SCORES, "config": {"epochs": 4}, "timing": {"total_s": 1234.5}}
        (run_dir / "report.json").write_text(json.dumps(report))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(suite.subprocess, "run", fake_run)
    return seen


def job(suite: ModuleType) -> Any:
    return suite.Job("medical", "busbra", "medical/breast-ultrasound+ema", 0, ("ema=0.998",))


def leftover(suite: ModuleType, work: Path, files: dict[str, bytes]) -> Path:
    """The run directory an interrupted attempt left in ``work``, holding ``files``."""
    run_dir = work / "runs" / job(suite).key
    run_dir.mkdir(parents=True)
    for name, content in files.items():
        (run_dir / name).write_bytes(content)
    return run_dir


def test_an_interrupted_run_that_wrote_its_config_is_resumed_not_deleted(
    suite: ModuleType, calls: list[list[str]], tmp_path: Path
) -> None:
    run_dir = leftover(suite, tmp_path, {"config.yaml": b"config: {}\n", "checkpoint_state.pt": b"epochs trained"})

    result = suite.run_preset(job(suite), tmp_path / "data", tmp_path, env={})

    assert calls[0][1:] == ["train", "--resume", str(run_dir), "--quiet"]  # its settings are in its config.yaml
    assert (run_dir / "checkpoint_state.pt").read_bytes() == b"epochs trained"
    assert result["resumed"] is True
    assert result["wall_s"] == 1234.5  # the run's own clock, across the interruption
    assert "--resume" not in result["command"]  # the command that reproduces the run
    assert "resumed" in (tmp_path / "logs" / f"{job(suite).key}.log").read_text()


def test_a_run_that_never_wrote_its_config_starts_again_from_nothing(
    suite: ModuleType, calls: list[list[str]], tmp_path: Path
) -> None:
    run_dir = leftover(suite, tmp_path, {"stray": b"left by an attempt killed before it wrote anything"})

    result = suite.run_preset(job(suite), tmp_path / "data", tmp_path, env={})

    assert "--resume" not in calls[0]
    assert not (run_dir / "stray").exists()
    assert result["resumed"] is False
    assert calls[0][calls[0].index("--preset") + 1] == "medical/breast-ultrasound"
    assert calls[0][-2:] == ["--set", "ema=0.998"]


def test_the_recorded_commit_is_dirty_only_when_tlcore_or_a_plugin_differs(
    suite: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    for path in ("tlcore/a.py", "plugins/medical/b.py", "benchmarks/presets.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    monkeypatch.setattr(suite, "ROOT", tmp_path)
    head = suite._git()
    assert head and not head.endswith("-dirty")

    (tmp_path / "benchmarks/presets.py").write_text("x = 2\n")  # the harness: the code that trained is the same
    assert suite._git() == head
    (tmp_path / "plugins/medical/b.py").write_text("x = 2\n")
    assert suite._git() == head + "-dirty"


def test_a_lever_is_read_against_the_preset_rerun_at_its_commit_else_the_untouched_row(suite: ModuleType) -> None:
    def cell(val: float, commit: str, out_of_fold: bool = False, auc: float = 0.9) -> dict[str, Any]:
        by_seed = {0: {"balanced_accuracy": val, "auc": auc}}
        return {"val_by_seed": by_seed, "commits": [commit], "out_of_fold": out_of_fold}

    p = "medical/breast-ultrasound"
    cells = {
        ("bus", p): cell(0.80, "old"),
        ("bus", f"{p}+ctl"): cell(0.78, "new"),
        ("bus", f"{p}+ema"): cell(0.79, "new", auc=0.93),  # same commit as +ctl: read against it
        ("bus", f"{p}+plain-loss"): cell(0.77, "old"),  # no control at its commit: the untouched row
        ("bus", f"{p}+cv3"): cell(0.70, "new", out_of_fold=True),
        ("bus", f"{p}+tta-off+cv3"): cell(0.67, "tta", out_of_fold=True),
        ("bus", "plain+cv3"): cell(0.60, "new", out_of_fold=True),  # a baseline: no lever
    }
    lines = suite.lever_gains(cells, {"bus": p})
    assert lines[1:] == [
        f"- bus, {p}+ema: 0.790 (+0.010 against {p}+ctl; AUC +0.030; seed 0)",
        f"- bus, {p}+plain-loss: 0.770 (-0.030 against {p}; AUC +0.000; seed 0)",
        f"- bus, {p}+tta-off+cv3: 0.670 (-0.030 against {p}+cv3; AUC +0.000; seed 0)",
    ]

    # A control with a second seed: the lever (seed 0 only) is read against the control's seed 0, not its mean.
    cells[("bus", f"{p}+ctl")]["val_by_seed"][1] = {"balanced_accuracy": 0.84, "auc": 0.95}
    ema_seed0 = f"- bus, {p}+ema: 0.790 (+0.010 against {p}+ctl; AUC +0.030; seed 0)"
    assert suite.lever_gains(cells, {"bus": p})[1] == ema_seed0
    cells[("bus", f"{p}+ema")]["val_by_seed"][1] = {"balanced_accuracy": 0.80, "auc": 0.95}
    assert suite.lever_gains(cells, {"bus": p})[1] == (
        f"- bus, {p}+ema: 0.795 (-0.015 against {p}+ctl; AUC +0.015; seeds 0, 1)"
    )

    # The lever's second seed ran at a later commit: the control that shares its first commit still stands,
    # and the seed compared across two commits is named.
    cells[("bus", f"{p}+ema")]["val_by_seed"][1]["commit"] = "newer"
    cells[("bus", f"{p}+ema")]["commits"] = ["new", "newer"]
    cells[("bus", f"{p}+ctl")]["val_by_seed"][1]["commit"] = "new"
    cells[("bus", f"{p}+ctl")]["val_by_seed"][0]["commit"] = "new"
    cells[("bus", f"{p}+ema")]["val_by_seed"][0]["commit"] = "new"
    assert suite.lever_gains(cells, {"bus": p})[1] == (
        f"- bus, {p}+ema: 0.795 (-0.015 against {p}+ctl; AUC +0.015; seeds 0, 1; seed 1 at two commits: newer, new)"
    )
