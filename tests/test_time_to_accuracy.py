"""benchmarks/time_to_accuracy.py: the time-to-target rule on synthetic histories (no training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "time_to_accuracy.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("time_to_accuracy", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_first_epoch_at_or_above_the_target_counts_even_if_later_ones_fall(bench: ModuleType) -> None:
    history = [(10.0, 0.70), (20.0, 0.85), (30.0, 0.90), (40.0, 0.80), (50.0, 0.95)]
    assert bench.time_to_target(history, 0.90) == 30.0  # reaching exactly the target counts
    assert bench.time_to_target(history, 0.86) == 30.0
    assert bench.time_to_target(history, 0.50) == 10.0


def test_a_target_never_reached_gives_none(bench: ModuleType) -> None:
    assert bench.time_to_target([(10.0, 0.5), (20.0, None), (30.0, 0.89)], 0.9) is None
    assert bench.time_to_target([], 0.9) is None


def test_epochs_without_a_val_accuracy_are_skipped(bench: ModuleType) -> None:
    assert bench.time_to_target([(5.0, None), (9.0, 0.93)], 0.9) == 9.0
