"""tlcore.advise and tlcore.compare against tl advise and tl compare, on tiny generated images.

Cheap settings: 32 px, two candidates (the offline Lite0 and a random-initialised ``test_resnet``), three
probe folds; the comparison is feature extraction on a random ``test_resnet`` with a logistic-regression head.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import tlcore
from tlcore.advice.advisor import advise_inputs
from tlcore.advice.compare import CSV_FIELDS, compare_options
from tlcore.advice.recommend import Recommendation
from tlcore.api import Advice, Comparison
from tlcore.errors import ConfigError, DataError, TlcoreError
from tlcore.plugins import get_host

Tl = Callable[..., tuple[int, str, str]]
CANDIDATES = ["tf_efficientnet_lite0", "test_resnet@none"]
ADVISE = {"image_size": 32, "similarity_images": 12, "folds": 3}
#: A random test_resnet for every method (the fine-tuning preset's Lite0 is not needed to compare the paths).
COMPARE_SETTINGS = {"backbone": "test_resnet", "weights": "none", "batch_size": 9}
#: What the machine's speed changes between two runs of the same advice.
TIMING = {"seconds", "feature_seconds", "features_cached", "created", "finetune_minutes_estimate"}


def without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_timing(v) for k, v in value.items() if k not in TIMING and k != "cost"}
    if isinstance(value, list):
        return [without_timing(v) for v in value]
    return value


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, make_folder: Callable[..., Path]) -> Path:
    return make_folder(tmp_path_factory.mktemp("api-advise") / "colours", {"train": 6, "val": 2, "test": 2})


def test_advise_gives_what_tl_advise_writes(
    tl: Tl, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_out = tmp_path / "cli"
    options = ["--image-size", "32", "--similarity-images", "12", "--folds", "3"]
    code, _, err = tl("advise", "--data", data, "--candidates", ",".join(CANDIDATES), *options, "-o", cli_out, "-q")
    assert code == 0, err
    written = json.loads((cli_out / "advise.json").read_text())

    capsys.readouterr()
    advice = tlcore.advise(data, candidates=CANDIDATES, output=tmp_path / "api", progress=False, **ADVISE)
    assert capsys.readouterr() == ("", "")  # progress=False: nothing printed
    assert isinstance(advice, Advice) and advice.path == tmp_path / "api" / "advise.json"
    assert json.loads(advice.path.read_text()) == advice.report

    assert without_timing(advice.report) == without_timing(written)  # every score, the options, the advice
    for api_row, cli_row in zip(advice.report["candidates"], written["candidates"], strict=True):
        assert api_row["cost"]["parameters"] == cli_row["cost"]["parameters"]
        assert api_row["cost"]["gflops"] == cli_row["cost"]["gflops"]
    rec = advice.recommendation
    assert isinstance(rec, Recommendation)
    assert (rec.candidate, rec.technique, rec.strategy, rec.reasons) == tuple(
        written["recommendation"][k] for k in ("candidate", "technique", "strategy", "reasons")
    )
    assert rec.command.startswith("tl train --preset") and sorted(rec.ranking) == sorted(CANDIDATES)
    assert repr(advice).startswith(f"Advice({rec.candidate}, {rec.technique}")

    table = advice.candidates
    assert table.index.name == "candidate" and list(table.columns) == list(Advice.COLUMNS)
    assert list(table.index) == rec.ranking and table["rank"].tolist() == [1, 2]
    assert table["recommended"].tolist() == [name == rec.candidate for name in rec.ranking]
    for scores in written["candidates"]:
        row = table.loc[scores["name"]]
        assert row["logme"] == pytest.approx(scores["logme"])
        assert row["linear_probe"] == pytest.approx(scores["linear_probe"]["accuracy"])
        assert row["knn_probe_std_error"] == pytest.approx(scores["knn_probe"]["std_error"])
        assert row["parameters"] == scores["cost"]["parameters"] and row["error"] is None
    lite, scratch = table.loc["tf_efficientnet_lite0"], table.loc["test_resnet@none"]
    assert lite["pretrained"] and lite["weights"] == "default" and 0 <= lite["similarity"] <= 1
    assert isinstance(lite["imagenet_top_class"], str)
    assert not scratch["pretrained"] and scratch["weights"] == "none" and pd.isna(scratch["similarity"])


def test_advise_writes_nothing_without_output(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    advice = tlcore.advise(data, candidates="test_resnet@none", progress=False, **ADVISE)
    assert advice.path is None and list(tmp_path.iterdir()) == []
    assert list(advice.candidates.index) == ["test_resnet@none"] and advice.recommendation.ranking == [
        "test_resnet@none"
    ]


def test_compare_gives_what_tl_compare_writes(
    tl: Tl, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_out = tmp_path / "cli"
    settings = [arg for key, value in COMPARE_SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    code, _, err = tl(
        "compare", "--preset", "fine-tuning", "--data", data, "--fractions", "0.5,1.0",
        "--methods", "feature-extraction", "--image-size", "32", *settings, "-o", cli_out, "-q",
    )  # fmt: skip
    assert code == 0, err
    written = json.loads((cli_out / "compare.json").read_text())

    capsys.readouterr()
    result = tlcore.compare(
        data, "fine-tuning", fractions=[1.0, 0.5], methods=["feature-extraction"], image_size=32, progress=False,
        **COMPARE_SETTINGS,
    )  # fmt: skip
    assert capsys.readouterr() == ("", "")  # progress=False: not even the per-run lines
    assert isinstance(result, Comparison) and result.path is None and result.plots == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli"]  # no output: nothing written (cwd is tmp_path)

    same = ("preset", "data", "options", "configs", "summary")
    assert {k: result.report[k] for k in same} == {k: written[k] for k in same}
    clock = {"wall_clock_s", "train_s", "wall_clock_s_mean"}
    for key in ("runs", "curves"):
        api_rows = [{k: v for k, v in r.items() if k not in clock} for r in result.report[key]]
        assert api_rows == [{k: v for k, v in r.items() if k not in clock} for r in written[key]], key
    assert result.summary == written["summary"] and "With 50% of the labels" in result.summary["text"]

    curves = result.curves
    assert list(curves.columns) == list(written["curves"][0])
    assert curves[["method", "fraction", "labelled_images", "runs"]].values.tolist() == [
        ["feature-extraction", 0.5, 9, 1],
        ["feature-extraction", 1.0, 18, 1],
    ]
    assert curves["test_accuracy_mean"].tolist() == [c["test_accuracy_mean"] for c in written["curves"]]
    runs = result.runs
    assert list(runs.columns) == list(CSV_FIELDS) and len(runs) == 2
    cli_csv = pd.read_csv(cli_out / "compare.csv")
    pd.testing.assert_series_equal(runs["test_accuracy"], cli_csv["test_accuracy"])
    pd.testing.assert_series_equal(runs["labelled_images"], cli_csv["labelled_images"])

    opened = Comparison(written, cli_out)  # the object over files tl compare wrote: its plots are there
    assert [p.name for p in opened.plots] == ["accuracy_vs_labels.png", "accuracy_vs_time.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in opened.plots)


def test_the_cli_and_the_api_build_the_same_options(fresh_host: None) -> None:
    cli = compare_options(
        fractions="1.0,0.25", methods="scratch,fine-tuning", image_size=64, settings={"seed": 3, "progress": False}
    )
    api = compare_options(
        fractions=[0.25, 1.0], methods=["scratch", "fine-tuning"], image_size=64, settings={"seed": 3}, progress=False
    )
    assert cli == api and cli.fractions == [0.25, 1.0] and cli.seed == 3 and not cli.progress
    assert cli.overrides == {"image_size": 64}
    host = get_host()
    text = advise_inputs(host, candidates="a, b@none", settings={"device": "cpu"}, progress=False)
    listed = advise_inputs(host, candidates=["a", "b@none"], settings={"device": "cpu"}, progress=False)
    assert text == listed and [c.name for c in text.candidates] == ["a", "b@none"]
    assert text.config.technique == "feature-extraction" and text.options.finetune_epochs >= 1


def run_bad(tl: Tl, command: str, data: Path, option: list[str], call: Callable[[], object]) -> TlcoreError:
    """The API's error, checked to be the line the command prints for the same input (and its exit code 2)."""
    with pytest.raises(TlcoreError) as info:
        call()
    preset = ["--preset", "fine-tuning"] if command == "compare" else []
    code, _, err = tl(command, *preset, "--data", data, *option)
    assert (code, err.strip()) == (2, f"error: {info.value}")
    return info.value


BAD: list[tuple[str, list[str], dict[str, Any], type[TlcoreError], str]] = [
    ("advise", ["--candidates", "a,a"], {"candidates": "a,a"}, ConfigError, "twice"),
    ("advise", ["--folds", "1"], {"folds": 1}, ConfigError, "--folds"),
    ("advise", ["--set", "epohcs=3"], {"epohcs": 3}, ConfigError, "unknown key"),
    ("compare", ["--fractions", "0,0.5"], {"fractions": [0, 0.5]}, ConfigError, "in \\(0, 1\\]"),
    ("compare", ["--methods", "transfer"], {"methods": "transfer"}, ConfigError, "unknown transfer"),
    ("compare", ["--repeats", "0"], {"repeats": 0}, ConfigError, "--repeats"),
]


@pytest.mark.parametrize(("command", "option", "keywords", "kind", "match"), BAD, ids=[b[1][0] for b in BAD])
def test_bad_input_is_the_error_the_cli_prints(
    tl: Tl,
    data: Path,
    command: str,
    option: list[str],
    keywords: dict[str, Any],
    kind: type[TlcoreError],
    match: str,
) -> None:
    function = tlcore.advise if command == "advise" else tlcore.compare
    error = run_bad(tl, command, data, option, lambda: function(data, progress=False, **keywords))
    assert type(error) is kind and re.search(match, str(error)), error
    assert error.hint  # what to do instead, as the command says it


def test_a_missing_folder_and_a_preset_that_does_not_fine_tune(tl: Tl, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    candidate = "test_resnet@none"
    call = lambda: tlcore.advise(missing, candidates=candidate, progress=False)  # noqa: E731
    error = run_bad(tl, "advise", missing, ["--candidates", candidate], call)
    assert isinstance(error, DataError)
    with pytest.raises(ConfigError, match="does not fine-tune") as info:
        tlcore.compare(tmp_path, "feature-extraction", progress=False)
    code, _, err = tl("compare", "--preset", "feature-extraction", "--data", tmp_path)
    assert code == 2 and err.strip() == f"error: {info.value}"


def test_advise_and_compare_are_the_apis_functions() -> None:
    import tlcore.advice.advisor  # the subpackage that does the work; importing it leaves tlcore.advise alone

    assert tlcore.advise is tlcore.api.advise and tlcore.compare is tlcore.api.compare
    assert tlcore.Advice is Advice and tlcore.Comparison is Comparison
    assert {"advise", "compare", "Advice", "Comparison"} <= set(tlcore.__all__)
    from tlcore import advise

    assert advise is tlcore.api.advise
