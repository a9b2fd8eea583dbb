"""tl compare: subsets, method configurations, the gain summary, and one tiny end-to-end run."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tlcore.advice.compare import CompareOptions, aggregate, method_configs, parse_fractions, summarise
from tlcore.errors import ConfigError
from tlcore.plugins import get_host


def test_method_configs_share_the_preset_and_differ_only_where_they_should(fresh_host: None) -> None:
    configs = method_configs(get_host(), "fine-tuning", CompareOptions(epochs=3, overrides={"image_size": 96}))
    ft, scratch, fe = configs["fine-tuning"], configs["scratch"], configs["feature-extraction"]
    assert ft.weights == "default" and scratch.weights == "none"
    assert ft.model_dump(exclude={"weights"}) == scratch.model_dump(exclude={"weights"})  # same schedule
    assert ft.epochs == 3 and ft.strategy == "lp-ft" and ft.image_size == 96
    assert fe.technique == "feature-extraction" and fe.backbone == ft.backbone and fe.image_size == 96
    with pytest.raises(ConfigError, match="does not fine-tune"):
        method_configs(get_host(), "feature-extraction", CompareOptions())


def test_parse_fractions() -> None:
    assert parse_fractions("1.0,0.1,0.1") == [0.1, 1.0]
    for bad in ("0,0.5", "1.5", "x"):
        with pytest.raises(ConfigError):
            parse_fractions(bad)


def _row(method: str, fraction: float, acc: float, repeat: int = 0) -> dict[str, object]:
    return {
        "method": method,
        "fraction": fraction,
        "repeat": repeat,
        "labelled_images": int(1000 * fraction),
        "test_accuracy": acc,
        "wall_clock_s": 10.0,
    }


def test_summary_reports_the_gain_at_ten_percent_in_points() -> None:
    runs = [
        _row("scratch", 0.1, 0.50, 0),
        _row("scratch", 0.1, 0.60, 1),
        _row("fine-tuning", 0.1, 0.80, 0),
        _row("fine-tuning", 0.1, 0.90, 1),
        _row("feature-extraction", 0.1, 0.75),
        _row("scratch", 1.0, 0.80),
        _row("fine-tuning", 1.0, 0.95),
    ]
    curves = aggregate(runs)
    scratch = next(c for c in curves if c["method"] == "scratch" and c["fraction"] == 0.1)
    assert scratch["test_accuracy_mean"] == pytest.approx(0.55) and scratch["runs"] == 2
    assert scratch["test_accuracy_std"] == pytest.approx(0.0707, abs=1e-3)
    summary = summarise(curves, 1000)
    assert summary["fraction"] == 0.1
    assert summary["gain_points"] == {"fine-tuning": 30.0, "feature-extraction": 20.0}
    assert "+30.0 points for fine-tuning" in summary["text"] and "100 of 1000" in summary["text"]
    assert "+15.0 points" in summary["text"]  # the gap with all labels
    nearest = summarise(aggregate([_row("scratch", 0.25, 0.5), _row("fine-tuning", 0.25, 0.7)]), 1000)
    assert nearest["fraction"] == 0.25 and "nearest" in nearest["text"]


def test_tl_compare_end_to_end(
    tl: Callable[..., tuple[int, str, str]], make_folder: Callable[..., Path], tmp_path: Path
) -> None:
    data = make_folder(tmp_path / "colours", {"train": 6, "val": 2, "test": 2})
    out = tmp_path / "cmp"
    code, _, err = tl(
        "compare", "--preset", "fine-tuning", "--data", data, "--fractions", "0.5,1.0", "--epochs", "1",
        "--image-size", "32", "--set", "batch_size=9", "--methods", "feature-extraction,fine-tuning",
        "--output", out, "--quiet",
    )  # fmt: skip
    # scratch is the fine-tuning path with weights=none (test_method_configs_...): not run again here
    assert code == 0, err
    result = json.loads((out / "compare.json").read_text())
    assert result["data"]["train_images"] == 18 and result["options"]["fractions"] == [0.5, 1.0]
    runs = result["runs"]
    assert {(r["method"], r["fraction"]) for r in runs} == {
        (m, f) for m in ("feature-extraction", "fine-tuning") for f in (0.5, 1.0)
    }
    assert {r["labelled_images"] for r in runs} == {9, 18}  # stratified: 3 of 6 per class, then all
    assert all(0 <= r["test_accuracy"] <= 1 and r["wall_clock_s"] >= 0 for r in runs)
    assert len(result["curves"]) == 4 and "With 50% of the labels" in result["summary"]["text"]
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert len(rows) == 4 and {r["method"] for r in rows} == {"feature-extraction", "fine-tuning"}
    for png in ("accuracy_vs_labels.png", "accuracy_vs_time.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((out / "reports").glob("*.json"))) == 4 and not (out / "runs").exists()
